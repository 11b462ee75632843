"""The chunk stage's hand-over to analysis: the instrumental as the beat network reads it, written once.

While the chunk stage streams the instrumental it also writes, when asked (``chunk_song(..., handover=folder)``),
``folder / BEAT_INPUT``: the instrumental as decoded (before the training-format conversion and before any
gain), downmixed to mono by channel mean and resampled to 44,100 Hz as ``processing.analyse.features.to_mono``
does (soxr at its default quality), raw float32 little-endian without a header. The beat network's parts of a
song's analysis read windows of it through a memory map (processing.pipeline), so analysis decodes no audio the
chunk stage decoded. It is a scratch file outside the cache entry: the song's join deletes its folder. When it
is missing (the chunks came from the cache, or a part runs on a node without it), ``ensure_beat_input`` makes
it from the instrumental, streaming too. Both sides name it here, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

BEAT_INPUT = "beat_input.f32"
BEAT_RATE = 44100  # Hz, the beat network's input rate
BEAT_DTYPE = np.dtype("<f4")


class BeatInputWriter:
    """Writes ``folder / BEAT_INPUT`` from decoded blocks ((frames, channels) at ``rate``), under a temporary
    name renamed into place by ``close`` (a reader never sees half a file)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / BEAT_INPUT
        self._tmp = self.path.with_suffix(".partial")
        self._fh = open(self._tmp, "wb")
        self._resampler = None
        self._rate: Optional[int] = None

    def add(self, block: np.ndarray, rate: int) -> None:
        if self._rate is None:
            self._rate = rate
            if rate != BEAT_RATE:  # as features.to_mono: float64 channel mean, soxr at its default quality
                import soxr

                self._resampler = soxr.ResampleStream(rate, BEAT_RATE, 1, dtype="float64")
        self._write(block.T.mean(axis=0, dtype=np.float64))

    def _write(self, mono: np.ndarray, last: bool = False) -> None:
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        self._fh.write(np.ascontiguousarray(mono, dtype=BEAT_DTYPE).tobytes())

    def close(self) -> Path:
        if self._resampler is not None:
            self._write(np.zeros(0, np.float64), last=True)
        self._fh.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


def ensure_beat_input(instrumental: Path, folder: Path) -> Path:
    """The hand-over file in `folder`, streamed from the instrumental's file when it is not there yet."""
    path = folder / BEAT_INPUT
    if path.is_file():
        return path
    from .. import audio_io

    writer = BeatInputWriter(folder)
    try:
        with audio_io.open_stream(instrumental) as stream:
            for block in stream.blocks():
                writer.add(block, stream.sample_rate)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def read_beat_input(path: Path) -> np.ndarray:
    """The hand-over file as a read-only memory map (mono float32 at BEAT_RATE): windows of it are read on demand."""
    if Path(path).stat().st_size == 0:
        return np.zeros(0, BEAT_DTYPE)
    return np.memmap(Path(path), dtype=BEAT_DTYPE, mode="r")
