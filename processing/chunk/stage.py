"""Chunk + convert one separated song: the stage function and how its output lands in the build.

The whole instrumental is converted once (so chunk boundaries fall on exact samples of the target
rate and no resampler edge lands inside the dataset), scaled by one song-wide gain when its peak
would clip, then cut into spans. ``chunk_song`` writes the chunk files into a folder it is given
(the caller's cache entry) and returns what it wrote as plain data; ``place_chunks`` hard-links
(or copies, or has the caller send) those files into the build. The same pass measures the whole instrumental's loudness
and peak, which analysis needs and would otherwise decode the instrumental again for.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .. import audio_io
from ..config import ChunkConfig, ConvertConfig
from ..loudness import loudness
from ..types import Chunk, SeparatedSong
from .handover import write_beat_input
from .convert import peak_safe, to_training_format, write_chunk
from .spans import cut, is_silent, plan_chunks, rms_db

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


def chunk_song(separated: SeparatedSong, chunk_cfg: ChunkConfig, convert_cfg: ConvertConfig, keep_stems: bool,
               folder: Path, handover: Optional[Path] = None) -> dict[str, Any]:
    """Convert, measure and cut one song into ``folder``; return the record of what was written.
    ``handover``: a scratch folder that also gets the beat network's input (``handover.BEAT_INPUT``)."""
    song = separated.song
    source = audio_io.decode(separated.instrumental_path)
    if handover is not None:
        write_beat_input(source, handover)
    whole = {"instrumental_loudness_lufs": round(loudness(source), 4),
             "instrumental_peak": float(abs(source.samples).max(initial=0.0)),
             "instrumental_duration_s": source.duration_s}
    instrumental = to_training_format(source, convert_cfg)
    del source
    instrumental, gain = peak_safe(instrumental, convert_cfg.peak_limit)
    stems = {}
    if keep_stems:
        for name, path in separated.stem_paths.items():
            stems[name] = to_training_format(audio_io.decode(path), convert_cfg)
    spans = plan_chunks(instrumental.duration_s, chunk_cfg)
    covered = sum(s.end_s - s.start_s for s in spans)
    chunks, silent = [], []
    for span in spans:
        cid = chunk_id_for(song.song_id, span.index)
        audio = cut(instrumental, span)
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
            audio_io.write(folder / stem_rel, peak_safe(cut(stem, span), 0.999)[0], subtype="PCM_24")
            record["stems"][name] = stem_rel
        chunks.append(record)
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
