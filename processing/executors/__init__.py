"""How a build's stages are scheduled: executors run the pipeline's task functions somewhere.

base.py  what executors and the pipeline exchange (BuildContext, SongOutcome, SongTasks, Executor)
local.py the default: worker processes on every core, one model worker on the GPU
ray.py   a Ray cluster: CPU tasks on every node, one model actor per GPU (optional extra: '.[ray]')
"""
from __future__ import annotations

from ..config import ConfigError, PipelineConfig
from .base import Executor

RAY_INSTALL = "pip install -e '.[ray]'  (or: pip install 'ray==2.60.0')"


class ExecutorUnavailable(ConfigError):
    """The configured executor cannot run here (e.g. Ray is not installed); the message says how to fix it."""


def make_executor(cfg: PipelineConfig) -> Executor:
    """The executor that ``build.executor`` names; fails at once when it cannot run here."""
    if cfg.build.executor == "local":
        from .local import LocalExecutor

        return LocalExecutor(cfg.resolved_workers)
    if cfg.build.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorUnavailable(f"build.executor=ray needs Ray, which is not installed: {RAY_INSTALL}") from None
        from .ray import RayExecutor

        return RayExecutor(cfg.build.ray_address)
    raise ConfigError(f"build.executor={cfg.build.executor!r} unknown; use local or ray")
