"""Convert: MusicGen's training format (32 kHz mono by default), peak-safe.

Resampling uses soxr at its very-high-quality setting. Downmixing averages the
channels (it cannot raise the peak); resampling can overshoot slightly, so
each chunk is scaled down (never up) when its peak exceeds ``peak_limit``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from .. import audio_io
from ..config import ConvertConfig
from ..types import AudioData


def to_training_format(audio: AudioData, cfg: ConvertConfig) -> AudioData:
    """Downmix/upmix to ``cfg.channels`` and resample to ``cfg.sample_rate``."""
    samples = audio.samples
    if cfg.channels == 1 and audio.channels > 1:
        samples = samples.mean(axis=0, keepdims=True)
    elif cfg.channels == 2 and audio.channels == 1:
        samples = np.repeat(samples, 2, axis=0)
    elif cfg.channels == 2 and audio.channels > 2:
        samples = samples[:2]
    if audio.sample_rate != cfg.sample_rate:
        # soxr takes (frames, channels); VHQ is its best-quality linear-phase filter.
        resampled = soxr.resample(np.ascontiguousarray(samples.T), audio.sample_rate, cfg.sample_rate, quality="VHQ")
        samples = np.ascontiguousarray(resampled.T)
    return AudioData(samples.astype(np.float32, copy=False), cfg.sample_rate)


def peak_safe(audio: AudioData, limit: float) -> tuple[AudioData, float]:
    """Scale down so that |peak| <= limit; return (audio, gain applied)."""
    peak = float(np.abs(audio.samples).max(initial=0.0))
    if peak <= limit or peak == 0.0:
        return audio, 1.0
    gain = limit / peak
    return AudioData(audio.samples * np.float32(gain), audio.sample_rate), gain


def write_chunk(path: Path, audio: AudioData, cfg: ConvertConfig) -> Path:
    """Write a chunk in the configured container and sample format."""
    subtype = cfg.subtype
    if cfg.format == "flac" and subtype == "FLOAT":
        subtype = "PCM_24"  # FLAC has no float samples
    return audio_io.write(path, audio, subtype=subtype)
