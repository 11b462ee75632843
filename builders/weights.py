"""Sampling weights: one ``weight`` per chunk, so that a trainer sampling by weight sees a balanced dataset.

``curate.weighting``:

- ``balanced`` (default): the chunks are grouped by their value of ``curate.balance_on`` (one field, or the
  combination of several; mood and instrument, which are lists, count by their first value; a chunk without
  a value forms its own group) and every group gets the same total weight. No chunk weighs more than
  ``curate.max_weight_ratio`` times the median weight: a group of one chunk among hundreds would otherwise
  be drawn as often as all of them, the same 30 s over and over.
- ``none``: every weight is 1.0.

Weights are computed within each split and scaled so that they average 1.0 (the sum is the number of
chunks). They are inert unless a trainer samples by them: audiocraft's ``MusicDataset`` with
``sample_on_weight``, ``scripts/finetune_musicgen.py --weighted``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from processing.config import CurateConfig

from .diversity import group_of


def sampling_weights(rows: Sequence[dict[str, Any]], cfg: CurateConfig) -> list[float]:
    """The weight of each row (see the module docstring), in the rows' order."""
    if not rows:
        return []
    if cfg.weighting == "none":
        return [1.0] * len(rows)
    groups = [group_of(r, cfg.balance_on) for r in rows]
    sizes = Counter(groups)
    w = np.array([1.0 / (len(sizes) * sizes[g]) for g in groups])
    w = np.minimum(w, cfg.max_weight_ratio * float(np.median(w)))
    w *= len(w) / w.sum()
    return [round(float(x), 6) for x in w]


def weighting_settings(cfg: CurateConfig) -> dict[str, Any]:
    """What report.json, the card and build_info.json record about the weights."""
    out: dict[str, Any] = {"weighting": cfg.weighting}
    if cfg.weighting == "balanced":
        out.update(balance_on=list(cfg.balance_on), max_weight_ratio=cfg.max_weight_ratio)
    return out
