"""Level measures that several stages share: RMS in dBFS and EBU R128 integrated loudness (pyloudnorm)."""
from __future__ import annotations

import math

import numpy as np

from .types import AudioData

MIN_LOUDNESS_LUFS = -70.0  # EBU R128 absolute gate: quieter is reported as this


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS of any array (-inf-safe: silent -> -200)."""
    energy = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(energy) if energy > 1e-20 else -200.0


MAX_LOUDNESS_CHANNELS = 5  # pyloudnorm (BS.1770's 5.0 layout: L, R, C, Ls, Rs) measures at most this many


def loudness(audio: AudioData) -> float:
    """EBU R128 integrated loudness (LUFS) with pyloudnorm, over all channels.

    More than five channels (6-, 8-channel files: layouts pyloudnorm has no weights for) are
    measured on their mono downmix, the channel average that the dataset's chunks are made of.
    """
    import pyloudnorm

    data = audio.samples.T.astype(np.float64)
    if data.shape[1] > MAX_LOUDNESS_CHANNELS:
        data = data.mean(axis=1, keepdims=True)
    block = 0.4
    if audio.duration_s < block:  # pyloudnorm needs one 400 ms block: measure on a zero-padded copy
        data = np.pad(data, ((0, int(block * audio.sample_rate) + 1 - len(data)), (0, 0)))
    value = pyloudnorm.Meter(audio.sample_rate, block_size=block).integrated_loudness(data)
    return float(max(MIN_LOUDNESS_LUFS, value)) if np.isfinite(value) else MIN_LOUDNESS_LUFS
