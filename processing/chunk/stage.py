"""Chunk + convert one separated song: the stage function and how its output lands in the build.

The whole instrumental is converted once (so chunk boundaries fall on exact samples of the target
rate and no resampler edge lands inside the dataset), scaled by one song-wide gain when its peak
would clip, then cut into spans. ``chunk_song`` writes the chunk files into a folder it is given
(the caller's cache entry) and returns what it wrote as plain data; ``place_chunks`` hard-links
(or copies, or has the caller send) those files into the build. The same pass measures the whole instrumental's loudness
and peak, which analysis needs and would otherwise decode the instrumental again for, and, when asked, writes
the beat network's input (``handover.py``).

The song is never held whole, whatever its length: the instrumental is read in blocks, each block converted
(``TrainingFormatStream``: the same downmix and soxr VHQ filter as ``to_training_format``, its state carried
across blocks) and appended to a scratch file of raw float32 in the entry's folder, while the source's peak and
loudness (``LoudnessMeter``) and the converted peak accumulate; the chunks are then read back span by span from
that file, scaled by the song-wide gain, and written. Kept stems go the same way, one scratch file each.
Memory per song is a few blocks and one chunk, for a 4-minute song or a 3-hour mix.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .. import audio_io
from ..config import ChunkConfig, ConvertConfig
from ..loudness import LoudnessMeter
from ..types import AudioData, Chunk, ChunkSpan, SeparatedSong
from .convert import TrainingFormatStream, peak_safe, write_chunk
from .handover import BeatInputWriter
from .spans import is_silent, plan_chunks, rms_db

STAGE_VERSION = "2"  # 2: records the instrumental's loudness and peak


@dataclass
class ChunkingResult:
    chunks: list[Chunk] = field(default_factory=list)
    skipped_silent: list[str] = field(default_factory=list)  # chunk ids skipped as silent
    dropped_tail_s: float = 0.0  # audio left out by the tail policy
    song_gain: float = 1.0
    cache_key: str = ""
    cached: bool = False
    instrumental_loudness_lufs: float = 0.0  # the whole instrumental, before conversion
    instrumental_peak: float = 0.0
    instrumental_duration_s: float = 0.0


def chunk_id_for(song_id: str, index: int) -> str:
    return f"{song_id}-{index:03d}"


def chunk_params(chunk_cfg: ChunkConfig, convert_cfg: ConvertConfig, keep_stems: bool, song_id: str) -> dict[str, Any]:
    """Everything that changes the chunk stage's output (its cache key, with the separation's key)."""
    return {"chunk": vars(chunk_cfg), "convert": vars(convert_cfg), "keep_stems": keep_stems, "song_id": song_id}


@dataclass
class _Converted:
    """A song converted to the training format, in a scratch file of raw float32 frames (channels interleaved)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int = 0
    peak: float = 0.0  # of the converted samples

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def cut(self, span: ChunkSpan) -> AudioData:
        """``spans.cut`` of the converted song, reading only the span's samples from the file (not a memory map:
        the pages of a map that the cuts touch would stay in this process's RSS, the whole song at the end)."""
        start = int(round(span.start_s * self.sample_rate))
        end = min(self.frames, int(round(span.end_s * self.sample_rate)))
        piece = np.fromfile(self.path, dtype=np.float32, count=max(0, end - start) * self.channels,
                            offset=start * self.channels * 4).reshape(-1, self.channels).T
        pad = int(round(span.padded_s * self.sample_rate))
        if pad > 0:
            piece = np.concatenate([piece, np.zeros((self.channels, pad), np.float32)], axis=1)
        return AudioData(np.ascontiguousarray(piece), self.sample_rate)


def _append(fh, block: np.ndarray, converted: _Converted) -> None:
    if len(block):
        converted.peak = max(converted.peak, float(np.abs(block).max()))
        converted.frames += len(block)
        fh.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())


def _convert_stream(source: Path, cfg: ConvertConfig, scratch: Path,
                    observe: Optional[Callable[[np.ndarray, int, int], None]] = None) -> _Converted:
    """Convert ``source`` to the training format block by block into ``scratch``; ``observe(block, rate, channels)``
    sees each decoded block first (the song-wide measures, the hand-over)."""
    with audio_io.open_stream(source) as stream:
        convert = TrainingFormatStream(stream.sample_rate, stream.channels, cfg)
        converted = _Converted(scratch, cfg.sample_rate, convert.channels)
        with open(scratch, "wb") as fh:
            for block in stream.blocks():
                if observe is not None:
                    observe(block, stream.sample_rate, stream.channels)
                _append(fh, convert.convert(block), converted)
            _append(fh, convert.flush(), converted)
    return converted


class _SongMeasures:
    """The decoded instrumental's peak, loudness and duration, and the hand-over file, block by block."""

    def __init__(self, handover: Optional[Path]):
        self.peak, self.frames, self.rate = 0.0, 0, 0
        self.meter: Optional[LoudnessMeter] = None
        self.handover = handover
        self._beat: Optional[BeatInputWriter] = None

    def __call__(self, block: np.ndarray, rate: int, channels: int) -> None:
        if self.meter is None:
            self.rate, self.meter = rate, LoudnessMeter(rate, channels)
            if self.handover is not None:
                self._beat = BeatInputWriter(self.handover)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        self.frames += len(block)
        self.meter.add(block)
        if self._beat is not None:
            self._beat.add(block, rate)

    def close(self, ok: bool = True) -> None:
        if self._beat is not None:
            self._beat.close() if ok else self._beat.abort()
            self._beat = None

    def record(self) -> dict[str, Any]:
        return {"instrumental_loudness_lufs": round(self.meter.integrated(), 4), "instrumental_peak": self.peak,
                "instrumental_duration_s": self.frames / self.rate}


def chunk_song(separated: SeparatedSong, chunk_cfg: ChunkConfig, convert_cfg: ConvertConfig, keep_stems: bool,
               folder: Path, handover: Optional[Path] = None) -> dict[str, Any]:
    """Convert, measure and cut one song into ``folder``, streaming (see the module docstring); return the record
    of what was written. With ``handover``, also write ``handover / BEAT_INPUT`` (handover.py; the caller deletes it)."""
    song = separated.song
    scratch = folder / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    measures = _SongMeasures(handover)
    try:
        try:
            instrumental = _convert_stream(separated.instrumental_path, convert_cfg, scratch / "instrumental.f32",
                                           measures)
        except BaseException:
            measures.close(ok=False)
            raise
        measures.close()
        whole = measures.record()
        gain = convert_cfg.peak_limit / instrumental.peak if instrumental.peak > convert_cfg.peak_limit else 1.0
        stems = {}
        if keep_stems:
            for name, path in separated.stem_paths.items():
                stems[name] = _convert_stream(path, convert_cfg, scratch / f"stem-{name}.f32")
        spans = plan_chunks(instrumental.duration_s, chunk_cfg)
        covered = sum(s.end_s - s.start_s for s in spans)
        chunks, silent = [], []
        for span in spans:
            cid = chunk_id_for(song.song_id, span.index)
            audio = instrumental.cut(span)
            if gain != 1.0:  # peak_safe's song-wide gain, applied chunk by chunk
                audio = AudioData(audio.samples * np.float32(gain), audio.sample_rate)
            if is_silent(audio, chunk_cfg):
                silent.append(cid)
                continue
            rel = f"chunks/{cid}.{convert_cfg.format}"
            path = write_chunk(folder / rel, audio, convert_cfg)
            record = {
                "chunk_id": cid, "index": span.index, "start_s": round(span.start_s, 6), "end_s": round(span.end_s, 6),
                "duration_s": round(audio.duration_s, 6), "padded_s": round(span.padded_s, 6), "file": rel,
                "sha256": audio_io.file_sha256(path), "peak": float(abs(audio.samples).max(initial=0.0)),
                "rms_db": rms_db(audio), "stems": {},
            }
            for name, stem in stems.items():
                stem_rel = f"stems/{cid}/{name}.flac"
                audio_io.write(folder / stem_rel, peak_safe(stem.cut(span), 0.999)[0], subtype="PCM_24")
                record["stems"][name] = stem_rel
            chunks.append(record)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"chunks": chunks, "skipped_silent": silent, "song_gain": gain,
            "dropped_tail_s": max(0.0, instrumental.duration_s - covered), "song_id": song.song_id, **whole}


def place_file(src: Path, dest: Path) -> None:
    """Hard-link a cached file into the build (copy across filesystems)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if os.path.samefile(src, dest):
            return
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def place_chunks(separated: SeparatedSong, meta: dict[str, Any], entry_path: Path, convert_cfg: ConvertConfig,
                 out_dir: Path, place: Callable[[Path, Path], None] = place_file) -> ChunkingResult:
    """Put the chunk files recorded in ``meta`` (under ``entry_path``) into the build with ``place(src, dest)``
    (a hard link by default); describe them as Chunks."""
    song = separated.song
    result = ChunkingResult()
    for c in meta["chunks"]:
        dest = out_dir / "audio" / song.song_id / f"{c['chunk_id']}.{convert_cfg.format}"
        place(entry_path / c["file"], dest)
        stems = {}
        for name, rel in c.get("stems", {}).items():
            stem_dest = out_dir / "stems" / song.song_id / c["chunk_id"] / f"{name}.flac"
            place(entry_path / rel, stem_dest)
            stems[name] = stem_dest
        result.chunks.append(Chunk(
            chunk_id=c["chunk_id"], song_id=song.song_id, index=c["index"], start_s=c["start_s"], end_s=c["end_s"],
            duration_s=c["duration_s"], sample_rate=convert_cfg.sample_rate, channels=convert_cfg.channels,
            audio_path=dest, audio_sha256=c["sha256"], peak=c["peak"], rms_db=c["rms_db"], stem_paths=stems,
            padded_s=c["padded_s"],
        ))
    result.skipped_silent = list(meta["skipped_silent"])
    result.dropped_tail_s = float(meta["dropped_tail_s"])
    result.song_gain = float(meta["song_gain"])
    result.instrumental_loudness_lufs = float(meta["instrumental_loudness_lufs"])
    result.instrumental_peak = float(meta["instrumental_peak"])
    result.instrumental_duration_s = float(meta["instrumental_duration_s"])
    return result
