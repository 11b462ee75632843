"""The chunk stage's hand-over to analysis: the instrumental as the beat network reads it, written once.

While the chunk stage streams the instrumental it also writes, when asked (``chunk_song(..., handover=folder)``),
``folder / BEAT_INPUT``: the instrumental as decoded (before the training-format conversion and before any
gain), downmixed to mono by channel mean and resampled to 44,100 Hz as ``processing.analyse.features.to_mono``
does (soxr at its default quality), raw float32 little-endian without a header. It is a scratch file outside
the cache entry: the caller deletes it. Both sides name it here, once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

BEAT_INPUT = "beat_input.f32"
BEAT_RATE = 44100  # Hz, the beat network's input rate
BEAT_DTYPE = np.dtype("<f4")


def read_beat_input(path: Path) -> np.memmap:
    """The hand-over file as a read-only memory map (mono float32 at BEAT_RATE): windows of it are read on demand."""
    return np.memmap(Path(path), dtype=BEAT_DTYPE, mode="r")
