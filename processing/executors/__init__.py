"""How a build's stages are scheduled: executors run the pipeline's task functions somewhere.

base.py  what executors and the pipeline exchange (BuildContext, SongOutcome, SongTasks, Executor)
local.py the default: worker processes on every core, one model worker on the GPU
"""
from __future__ import annotations

from ..config import ConfigError, PipelineConfig
from .base import Executor


def make_executor(cfg: PipelineConfig) -> Executor:
    """The executor that ``build.executor`` names."""
    if cfg.build.executor == "local":
        from .local import LocalExecutor

        return LocalExecutor(cfg.resolved_workers)
    raise ConfigError(f"build.executor={cfg.build.executor!r} unknown; use local")
