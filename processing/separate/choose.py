"""The configured separator (``separate.model``): none, offline, or a demucs model, whose weights are
loaded now so that missing weights fail before any work. Apart from base.py, which every separator
imports: the factory imports them all."""
from __future__ import annotations

from ..config import SeparateConfig
from .base import PassThroughSeparator, Separator


def make_separator(cfg: SeparateConfig) -> Separator:
    """Build the configured separator; load weights now so a missing file fails before any work."""
    if cfg.model == "none":
        return PassThroughSeparator()
    if cfg.model == "offline":
        from .offline_separator import OfflineSeparator

        return OfflineSeparator(cfg)
    from .demucs_separator import DemucsSeparator

    return DemucsSeparator(cfg)
