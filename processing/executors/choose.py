"""Which executor runs a build: the one ``build.executor`` names, refused at once when it cannot run here.

Kept apart from the package's table of contents (``__init__``): choosing imports the executors, and they
import the stages the pipeline lists. scripts/build.py chooses; ``run_build`` falls back to it when given none.
"""
from __future__ import annotations

from ..config import ConfigError, PipelineConfig
from .base import Executor

RAY_INSTALL = "pip install -e '.[ray]'  (or: pip install 'ray==2.60.0')"


class ExecutorUnavailable(ConfigError):
    """The configured executor cannot run here (e.g. Ray is not installed); the message says how to fix it."""


def make_executor(cfg: PipelineConfig, only_build: bool = False) -> Executor:
    """The executor that ``build.executor`` names; fails at once when it cannot run here. ``only_build``: this
    build is the only one its process runs (scripts/build.py), so the local executor's workers are warmed for
    it alone (without analysis: not the analysis libraries)."""
    if cfg.build.executor == "local":
        from .local import LocalExecutor

        return LocalExecutor(cfg.resolved_workers, warm="stages" if only_build and not cfg.analyse.enabled else "all")
    if cfg.build.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorUnavailable(f"build.executor=ray needs Ray, which is not installed: {RAY_INSTALL}") from None
        from .ray import RayExecutor

        return RayExecutor(cfg.build.ray_address)
    raise ConfigError(f"build.executor={cfg.build.executor!r} unknown; use local or ray")
