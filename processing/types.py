"""Typed values that flow between the pipeline's stages.

Every stage takes and returns these dataclasses; nothing is passed through
globals. Audio in memory is always float32, shaped (channels, samples).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np


@dataclass
class AudioData:
    """Decoded audio: float32 samples shaped (channels, samples)."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim == 1:
            self.samples = self.samples[None, :]
        if self.samples.dtype != np.float32:
            self.samples = self.samples.astype(np.float32)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.sample_rate)


@dataclass
class SourceSpec:
    """One line of a sources file: where a song is and what the user knows of it."""

    location: str  # a local path or a URL
    artist: Optional[str] = None
    title: Optional[str] = None
    genre: Optional[str] = None
    moods: list[str] = field(default_factory=list)
    licence: Optional[str] = None
    keywords: list[str] = field(default_factory=list)
    split: Optional[str] = None  # pin the song to "train" / "validation" / "test"
    song_id: Optional[str] = None  # a user-chosen stable id
    instrumental: bool = False  # already instrumental: skip separation for this song

    @property
    def is_url(self) -> bool:
        return "://" in self.location and not self.location.startswith("file://")


@dataclass
class SongMetadata:
    """Source metadata kept from the user and from the downloader."""

    title: Optional[str] = None
    artist: Optional[str] = None
    uploader: Optional[str] = None
    channel: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    licence: Optional[str] = None
    url: Optional[str] = None
    source_path: Optional[str] = None
    extractor: Optional[str] = None
    description: Optional[str] = None
    genre: Optional[str] = None
    moods: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    split: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Song:
    """An ingested song: a complete local audio file plus its metadata."""

    song_id: str
    audio_path: Path
    metadata: SongMetadata
    content_hash: str  # sha256 of the audio file's bytes
    duration_s: float
    sample_rate: int
    channels: int
    instrumental: bool = False
    duplicate_of: Optional[str] = None


@dataclass
class StemLevels:
    """What analysis needs of the stems, without the stems: per-window energies of a separated song.

    Every array holds one value per window of ``window`` samples at ``sample_rate`` (the last window may
    be shorter), measured on the channel average: ``mix``, each stem's and the instrumental's sum of
    squares, and ``vocal_dot``, the instrumental's inner product with the vocal stem (None without one).
    Sums over the windows of a span give the span's stem levels and residual vocal energy exactly when
    the span starts and ends on window boundaries (30 s chunks on 0.5 s windows do).
    """

    sample_rate: int
    window: int
    frames: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]
    instrumental: np.ndarray
    vocal_dot: Optional[np.ndarray] = None

    def windows(self, start_s: float, end_s: float) -> tuple[slice, int]:
        """The windows that cover [start_s, end_s) and how many samples they hold."""
        first = max(0, int(round(start_s * self.sample_rate)) // self.window)
        end = min(self.frames, int(round(end_s * self.sample_rate)))
        last = min(len(self.mix), -(-end // self.window))
        samples = max(0, min(end, last * self.window) - first * self.window)
        return slice(first, max(first, last)), samples

    def save(self, path: Path) -> None:
        arrays = {"mix": self.mix, "instrumental": self.instrumental, **{f"stem_{k}": v for k, v in self.stems.items()}}
        if self.vocal_dot is not None:
            arrays["vocal_dot"] = self.vocal_dot
        meta = np.array([self.sample_rate, self.window, self.frames], dtype=np.int64)
        with open(path, "wb") as fh:
            np.savez(fh, meta=meta, **arrays)

    @classmethod
    def load(cls, path: Path) -> "StemLevels":
        with np.load(path) as data:
            rate, window, frames = (int(v) for v in data["meta"])
            stems = {k[len("stem_"):]: data[k] for k in data.files if k.startswith("stem_")}
            return cls(rate, window, frames, data["mix"], stems, data["instrumental"],
                       data["vocal_dot"] if "vocal_dot" in data.files else None)


@dataclass
class SeparatedSong:
    """Output of separation: the instrumental on disk, per-stem levels, and the stems only when kept."""

    song: Song
    instrumental_path: Path  # 24-bit FLAC at the source rate, source channels
    stem_paths: dict[str, Path]  # stem name -> audio file (same rate as instrumental); only with keep_stems
    sample_rate: int
    model: str  # e.g. "htdemucs", "offline-repet", "none"
    levels: Optional[StemLevels] = None  # None when the separator made no stems (model "none")


@dataclass
class ChunkSpan:
    """Where a chunk lies in its song, in seconds, and how its tail was treated."""

    index: int
    start_s: float
    end_s: float
    padded_s: float = 0.0  # silence appended after end_s (tail policy "pad")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s + self.padded_s


@dataclass
class Chunk:
    """One training example: a chunk of instrumental audio in the training format."""

    chunk_id: str
    song_id: str
    index: int
    start_s: float
    end_s: float
    duration_s: float
    sample_rate: int
    channels: int
    audio_path: Path
    audio_sha256: str
    peak: float
    rms_db: float
    stem_paths: dict[str, Path] = field(default_factory=dict)
    padded_s: float = 0.0  # silence appended by the tail policy "pad"


@dataclass
class Failure:
    """An item that a stage could not process, with the reason in words."""

    item: str  # the source location or song id
    stage: str
    reason: str
    kind: str = "error"  # a short machine-readable class: "download", "decode", "too_short", ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
