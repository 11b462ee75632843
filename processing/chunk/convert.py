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


def to_channels(samples: np.ndarray, cfg: ConvertConfig) -> np.ndarray:
    """(channels, frames) samples downmixed (channel mean) or upmixed to ``cfg.channels``."""
    if cfg.channels == 1 and samples.shape[0] > 1:
        return samples.mean(axis=0, keepdims=True)
    if cfg.channels == 2 and samples.shape[0] == 1:
        return np.repeat(samples, 2, axis=0)
    if cfg.channels == 2 and samples.shape[0] > 2:
        return samples[:2]
    return samples


def to_training_format(audio: AudioData, cfg: ConvertConfig) -> AudioData:
    """Downmix/upmix to ``cfg.channels`` and resample to ``cfg.sample_rate``."""
    samples = to_channels(audio.samples, cfg)
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


class TrainingFormatStream:
    """``to_training_format`` block by block, for songs too long to convert whole: the same downmix and the same
    soxr VHQ filter, as a ``soxr.ResampleStream`` that carries its state across blocks (its output equals one-shot
    ``soxr.resample``'s; tests/test_chunk_stream.py states the tolerance)."""

    def __init__(self, sample_rate: int, channels: int, cfg: ConvertConfig):
        self.in_rate, self.in_channels, self.cfg = int(sample_rate), int(channels), cfg
        self.channels = to_channels(np.zeros((self.in_channels, 0), np.float32), cfg).shape[0]
        self._resampler = (soxr.ResampleStream(self.in_rate, cfg.sample_rate, self.channels, dtype="float32",
                                               quality="VHQ") if self.in_rate != cfg.sample_rate else None)

    def _shape(self, block: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(to_channels(block.T, self.cfg).T, dtype=np.float32)  # (channels, frames) there

    def convert(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """The next (frames, channels) block of the song in, the next converted (frames, channels) block out."""
        shaped = self._shape(block)
        if self._resampler is None:
            return shaped
        return np.asarray(self._resampler.resample_chunk(shaped, last=last), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """What the resampler still holds at the end of the song."""
        return self.convert(np.zeros((0, self.in_channels), np.float32), last=True)
