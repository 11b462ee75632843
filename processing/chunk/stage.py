"""Chunk + convert one separated song into the build, through the stage cache.

The whole instrumental is converted once (so chunk boundaries fall on exact
samples of the target rate and no resampler edge lands inside the dataset),
scaled by one song-wide gain when its peak would clip, then cut into spans.
Chunk files live in the cache and are hard-linked (or copied) into the build.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import audio_io
from ..cache import StageCache
from .spans import cut, is_silent, plan_chunks, rms_db
from ..config import ChunkConfig, ConvertConfig
from .convert import peak_safe, to_training_format, write_chunk
from ..types import Chunk, SeparatedSong

STAGE_VERSION = "1"


@dataclass
class ChunkingResult:
    chunks: list[Chunk] = field(default_factory=list)
    skipped_silent: list[str] = field(default_factory=list)  # chunk ids skipped as silent
    dropped_tail_s: float = 0.0  # audio left out by the tail policy
    song_gain: float = 1.0
    cache_key: str = ""
    cached: bool = False


def chunk_id_for(song_id: str, index: int) -> str:
    return f"{song_id}-{index:03d}"


def _place(src: Path, dest: Path) -> None:
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


def chunk_song(
    separated: SeparatedSong,
    chunk_cfg: ChunkConfig,
    convert_cfg: ConvertConfig,
    keep_stems: bool,
    cache: StageCache,
    out_dir: Path,
) -> ChunkingResult:
    song = separated.song
    params = {"chunk": vars(chunk_cfg), "convert": vars(convert_cfg), "keep_stems": keep_stems, "song_id": song.song_id}
    # The separation entry's folder name is its key: a hash of the source content and separation settings.
    entry = cache.entry("chunk", STAGE_VERSION, separated.instrumental_path.parent.name, params)
    result = ChunkingResult(cache_key=entry.key)
    if entry.is_done():
        cache.record("chunk", hit=True)
        result.cached = True
        meta = entry.read_meta()
    else:
        cache.record("chunk", hit=False)
        meta = _compute(separated, chunk_cfg, convert_cfg, keep_stems, entry)
    ext = convert_cfg.format
    for c in meta["chunks"]:
        dest = out_dir / "audio" / song.song_id / f"{c['chunk_id']}.{ext}"
        _place(entry.path / c["file"], dest)
        stems = {}
        for name, rel in c.get("stems", {}).items():
            stem_dest = out_dir / "stems" / song.song_id / c["chunk_id"] / f"{name}.flac"
            _place(entry.path / rel, stem_dest)
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
    return result


def _compute(separated: SeparatedSong, chunk_cfg: ChunkConfig, convert_cfg: ConvertConfig, keep_stems: bool, entry) -> dict:
    song = separated.song
    folder = entry.begin()
    instrumental = to_training_format(audio_io.decode(separated.instrumental_path), convert_cfg)
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
    meta = {"chunks": chunks, "skipped_silent": silent, "song_gain": gain,
            "dropped_tail_s": max(0.0, instrumental.duration_s - covered), "song_id": song.song_id}
    entry.finish(meta)
    return meta
