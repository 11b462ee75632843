"""What the chunk stage hands over to analysis, so that analysis reads no audio the chunk stage decoded.

The chunk stage decodes the whole instrumental once; analysis needs it again for the beat network
(mono, 44.1 kHz, the whole song: its activations span chunk borders). The chunk stage therefore also
writes that signal as a raw float32 file (``BEAT_INPUT``, little-endian, no header) into a scratch
folder that the build names, and the beat network's parts read windows of it through a memory map.
The chunks themselves are read by analysis from their files (one read each: the chunk stage encoded them).

The file is scratch, not cache: the song's join deletes its folder. When it is missing (the chunk stage
was a cache hit, or the part runs on another node), ``ensure_beat_input`` makes it from the instrumental.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import audio_io
from ..types import AudioData

BEAT_INPUT = "beat_input.f32"
BEAT_INPUT_RATE = 44100  # madmom's beat network hears 44.1 kHz


def mono_at(audio: AudioData, rate: int = BEAT_INPUT_RATE) -> np.ndarray:
    """Channel mean, resampled with soxr's default (high) quality: what analysis's ``features.to_mono`` gives."""
    mono = audio.samples.mean(axis=0, dtype=np.float64)
    if audio.sample_rate != rate:
        import soxr

        mono = soxr.resample(mono, audio.sample_rate, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_beat_input(audio: AudioData, folder: Path) -> Path:
    """Write the beat network's input for `audio` (the instrumental as decoded) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BEAT_INPUT
    tmp = path.with_suffix(".partial")
    mono_at(audio).astype("<f4", copy=False).tofile(tmp)
    tmp.replace(path)
    return path


def ensure_beat_input(instrumental: Path, folder: Path) -> Path:
    """The beat input in `folder`, made from the instrumental file when it is not there yet."""
    path = folder / BEAT_INPUT
    if not path.is_file():
        write_beat_input(audio_io.decode(instrumental), folder)
    return path


def read_beat_input(path: Path) -> np.ndarray:
    """The beat input as a read-only memory map (nothing is read until a window is sliced)."""
    if path.stat().st_size == 0:
        return np.zeros(0, np.float32)
    return np.memmap(path, dtype="<f4", mode="r")
