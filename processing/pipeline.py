"""The whole build: ingest -> separate -> chunk/convert -> analyse/describe -> table -> dataset -> publish.

Each stage gets only its own config section; stage outputs go through the
content-addressed cache, so a rerun reuses everything whose input and
parameters did not change. A failure of one song is recorded and the build
goes on; nothing already written is lost.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from . import __version__
from .cache import StageCache, stable_hash
from .chunk.stage import ChunkingResult, chunk_song
from .config import PipelineConfig
from .ingest.stream import Duplicate, iter_ingest
from .report import BuildReport
from .separate.base import make_separator
from .separate.stage import separate_songs
from .types import Chunk, Failure, SeparatedSong, Song, SourceSpec

log = logging.getLogger("music_mixer")

ANALYSE_VERSION = "2"  # 2: tagger scores per chunk, instrument sources, vocal score, music-or-not with the model


@dataclass
class BuildResult:
    out_dir: Path
    table_path: Path
    report_path: Path
    report: BuildReport
    rows: list[dict[str, Any]]


def base_row(separated: SeparatedSong, chunk: Chunk, out_dir: Path) -> dict[str, Any]:
    song, meta = separated.song, separated.song.metadata
    return {
        "chunk_id": chunk.chunk_id,
        "song_id": song.song_id,
        "chunk_index": chunk.index,
        "start_s": chunk.start_s,
        "end_s": chunk.end_s,
        "duration_s": chunk.duration_s,
        "padded_s": chunk.padded_s,
        "sample_rate": chunk.sample_rate,
        "channels": chunk.channels,
        "audio_path": chunk.audio_path.relative_to(out_dir).as_posix(),
        "audio_sha256": chunk.audio_sha256,
        "song_sha256": song.content_hash,
        "separation_model": separated.model,
        "peak": chunk.peak,
        "rms_db": chunk.rms_db,
        "stem_paths": json.dumps({k: v.relative_to(out_dir).as_posix() for k, v in chunk.stem_paths.items()}),
        "source_title": meta.title,
        "source_artist": meta.artist,
        "uploader": meta.uploader,
        "channel": meta.channel,
        "url": meta.url,
        "licence": meta.licence,
        "source_path": meta.source_path,
        "extractor": meta.extractor,
        "tags": list(meta.tags),
        "categories": list(meta.categories),
        "source_genre": meta.genre,
        "source_moods": list(meta.moods),
        "source_keywords": list(meta.keywords),
        "split_pin": meta.split,
    }


def analyse_and_describe(separated: SeparatedSong, chunking: ChunkingResult, cfg: PipelineConfig,
                         cache: StageCache) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Per-chunk analysis+description rows, the song row and song flags (cached per song)."""
    from .analyse.analyse import analyse_song
    from .describe.describe import describe_chunks

    params = {"analyse": cfg.analyse.__dict__, "describe": cfg.describe.__dict__ if cfg.describe.enabled else None,
              "metadata": separated.song.metadata.to_dict(), "model": separated.model}
    entry = cache.entry("analyse", ANALYSE_VERSION, chunking.cache_key, params)
    if entry.is_done():
        cache.record("analyse", hit=True)
        if cfg.describe.enabled:
            cache.record("describe", hit=True)
        meta = entry.read_meta()
        return meta["chunk_rows"], meta["song_row"], meta["song_flags"]
    analysis = analyse_song(separated, chunking.chunks, cfg.analyse)
    cache.record("analyse", hit=False)
    song_row = analysis.song_row()
    rows = [dict(r) for r in analysis.chunk_rows()]
    if cfg.describe.enabled:
        descriptions = describe_chunks(separated.song, analysis, chunking.chunks, cfg.describe)
        cache.record("describe", hit=False)
        for row, desc in zip(rows, descriptions):
            row.update(desc)
    entry.begin()
    entry.finish({"chunk_rows": rows, "song_row": song_row, "song_flags": list(analysis.flags)})
    return rows, song_row, list(analysis.flags)


def write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    """One Parquet table, a row per chunk; all-null/empty-list columns typed as strings."""
    table = pa.Table.from_pylist(rows) if rows else pa.table({"chunk_id": pa.array([], pa.string())})
    from .analyse.analyse import COLUMN_TYPES  # Arrow types for analysis columns that may be null in every row

    fields = []
    for f in table.schema:
        if pa.types.is_null(f.type) and f.name in COLUMN_TYPES:
            fields.append(pa.field(f.name, pa.type_for_alias(COLUMN_TYPES[f.name])))
        elif pa.types.is_null(f.type):
            fields.append(pa.field(f.name, pa.string()))
        elif pa.types.is_list(f.type) and pa.types.is_null(f.type.value_type):
            fields.append(pa.field(f.name, pa.list_(pa.string())))
        else:
            fields.append(f)
    table = table.cast(pa.schema(fields))
    tmp = path.with_suffix(".parquet.partial")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def _remove_stale(out_dir: Path, keep: set[Path]) -> int:
    """Delete chunk files of earlier builds that this build no longer contains."""
    removed = 0
    for sub in ("audio", "stems"):
        for path in (out_dir / sub).rglob("*") if (out_dir / sub).exists() else []:
            if path.is_file() and path not in keep:
                path.unlink()
                removed += 1
    return removed


def build_version(cfg: PipelineConfig, included: list[dict[str, Any]]) -> str:
    """The configured version, or <UTC date>-<hash of the included audio and settings>: same content, same version."""
    if cfg.build.version:
        return cfg.build.version
    import datetime

    digest = stable_hash(sorted(r["audio_sha256"] for r in included), cfg.to_dict()["build"], cfg.to_dict()["convert"])
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y.%m.%d}-{digest[:8]}"


def song_rows(separated: SeparatedSong, cfg: PipelineConfig, cache: StageCache, out_dir: Path,
              report: BuildReport) -> list[dict[str, Any]]:
    """Chunk, convert, analyse and describe one separated song; its table rows (failures go to the report)."""
    song_id = separated.song.song_id
    try:
        with report.timed("chunk+convert"):
            chunking = chunk_song(separated, cfg.chunk, cfg.convert, cfg.separate.keep_stems, cache, out_dir)
    except Exception as exc:  # one song's failure must not stop the build
        report.fail(Failure(song_id, "chunk", f"{type(exc).__name__}: {exc}", "chunk"))
        return []
    report.count("chunks_written", len(chunking.chunks))
    report.count("chunks_silent", len(chunking.skipped_silent))
    if not chunking.chunks:
        report.fail(Failure(song_id, "chunk", f"no chunk: song is {separated.song.duration_s:.1f} s, shorter than "
                            f"chunk.min_tail_s={cfg.chunk.min_tail_s:g} s, or silent", "too_short"))
        return []
    analysis_rows: list[dict[str, Any]] = [{} for _ in chunking.chunks]
    song_row: dict[str, Any] = {}
    song_flags: list[str] = []
    if cfg.analyse.enabled:
        try:
            with report.timed("analyse+describe"):
                analysis_rows, song_row, song_flags = analyse_and_describe(separated, chunking, cfg, cache)
        except Exception as exc:  # keep the chunks (excluded) so nothing built is lost
            report.fail(Failure(song_id, "analyse", f"{type(exc).__name__}: {exc}", "analyse"))
            song_flags = ["analysis_failed"]
    rows = []
    for chunk, extra in zip(chunking.chunks, analysis_rows):
        row = base_row(separated, chunk, out_dir)
        row.update(song_row)
        row.update(extra)
        flags = list(dict.fromkeys(list(song_flags) + list(row.get("flags") or [])))
        row["flags"] = flags
        row["excluded"] = bool(flags) and (cfg.analyse.exclude_flagged or "analysis_failed" in flags)
        row["exclude_reason"] = ", ".join(flags) if row["excluded"] else ""
        if row["excluded"]:
            report.excluded.append({"chunk_id": chunk.chunk_id, "reason": row["exclude_reason"]})
        rows.append(row)
    return rows


def run_build(cfg: PipelineConfig, sources: list[SourceSpec]) -> BuildResult:
    cfg.validate()
    out_dir = Path(cfg.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = StageCache(cfg.resolved_cache_dir.resolve())
    report = BuildReport(out_dir=str(out_dir), settings=cfg.to_dict())
    report.settings["code_version"] = __version__
    report.count("sources", len(sources))

    # Load the separator and the tagger first: missing weights must fail before any download.
    separator = make_separator(cfg.separate)
    if cfg.analyse.enabled:
        from .analyse.analyse import check_config

        check_config(cfg.analyse)
    download_dir = Path(cfg.ingest.cache_dir) if cfg.ingest.cache_dir else cache.root / "downloads"
    rows: list[dict[str, Any]] = []
    written: set[Path] = set()
    bar = tqdm(desc=f"songs ({separator.name})", disable=not cfg.progress, file=sys.stderr, unit="song", leave=False)

    def process_group(group: list[Song]) -> None:
        with report.timed("separate"):
            separation = separate_songs(group, separator, cfg.separate, cache,
                                        songs_per_group=cfg.separate.songs_per_group)
        report.count("songs_separated", len(separation.separated))
        for failure in separation.failures:
            report.fail(failure)
        for separated in separation.separated:
            new_rows = song_rows(separated, cfg, cache, out_dir, report)
            rows.extend(new_rows)
            for row in new_rows:
                written.add(out_dir / row["audio_path"])
                written.update(out_dir / p for p in json.loads(row["stem_paths"]).values())
            bar.update()

    # Ingest streams songs while later downloads go on; each group of songs is separated,
    # chunked and analysed as soon as it is complete, so separation never waits for the whole list.
    group: list[Song] = []
    stream = iter_ingest(sources, cfg.ingest, download_dir)
    while True:
        with report.timed("ingest (waiting for downloads)"):
            item = next(stream, None)
        if item is None:
            break
        if isinstance(item, Song):
            report.count("songs_ingested")
            group.append(item)
            if len(group) >= cfg.separate.songs_per_group:
                process_group(group)
                group = []
        elif isinstance(item, Duplicate):
            report.count("duplicates")
            report.duplicates.append({"song_id": item.song_id, "duplicate_of": item.kept_song_id,
                                      "item": item.item, "similarity": round(item.similarity, 4)})
        else:
            report.fail(item)
    if group:
        process_group(group)
    bar.close()

    included = [r for r in rows if not r["excluded"]]
    report.count("chunks_included", len(included))
    report.count("chunks_excluded", len(rows) - len(included))
    report.count("songs_in_dataset", len({r["song_id"] for r in included}))
    report.hours["included"] = round(sum(r["duration_s"] for r in included) / 3600.0, 4)
    report.count("stale_files_removed", _remove_stale(out_dir, written))
    if cfg.analyse.enabled and included:
        from .analyse.analyse import summarise

        report.distributions = summarise(included)

    report.settings["version"] = build_version(cfg, included)
    table_path = write_table(rows, out_dir / "chunks.parquet")
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    report.cache_hits, report.cache_misses = dict(cache.hits), dict(cache.misses)
    report.write(out_dir)  # the dataset builder reads it; rewritten below with the dataset's figures

    if cfg.build.exports:
        with report.timed("dataset"):
            from builders import build_dataset

            try:
                artifacts = build_dataset(out_dir, cfg)
                report.dataset = artifacts.to_dict() if hasattr(artifacts, "to_dict") else dict(vars(artifacts))
            except Exception as exc:
                report.fail(Failure(str(out_dir), "build", f"{type(exc).__name__}: {exc}", "build"))
    report_path = report.write(out_dir)
    return BuildResult(out_dir, table_path, report_path, report, rows)
