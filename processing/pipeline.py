"""A build, stage by stage: the table of contents.

    stage          function (module)                           record in -> record out
    1 ingest       iter_ingest (ingest.stream)                 SourceSpec* -> Song | Failure | Duplicate
    2 separate     write_passthrough (separate.stage: none,    Song -> SeparatedSong (streamed)
                   songs marked instrumental), or
                   separate_on_cpu (separate.stage), or        Song -> Separation -> SeparatedSong
                   prepare_model_input -> DemucsStream ->
                   separation_from_model (separate.demucs_separator)
    3 chunk and    chunk_song (chunk.stage)                    SeparatedSong -> chunk files + record
    4 convert
    5 analyse      a FanOut (here): beat_window_part and       chunks + beat input -> measures, activations
                   measure_chunk_part on any worker, then      -> SongAnalysis
                   analysis_join: assemble_song (analyse.analyse)
    6 describe     describe_chunks (describe.describe)         SongAnalysis -> MusicGen metadata per chunk
    7 rows         song_rows (here)                            -> one row per chunk, on disk as the song ends
    8 table and    finish_build (here), build_dataset          rows -> chunks.parquet, data/, hf/, egs/, card
      dataset      (builders)
    (publish: scripts/build.py after the build, processing.publish)

A song whose every stage is cached is answered by the driver itself (``cached_outcome``: its rows from the
cache, no task). The task functions below (``song_task``, ``finish_task``) are what executors run, anywhere: each takes
one song and a picklable BuildContext and returns a SongOutcome (its rows' file, counts, busy seconds per
stage, cache use, failures), or, after chunking, a FanOut: the song's analysis as parts (a beat-network
window, a chunk) that any free worker runs, and the join that assembles them into the song's rows. The stage cache and failure capture wrap the stage functions here; an
executor (``processing.executors``) only decides where and when tasks run, and feeds the one model
worker (``DemucsStream``) when the separator is a model.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, audio_io
from .atomic import write_text_atomic
from .cache import StageCache, stable_hash
from .chunk.stage import STAGE_VERSION as CHUNK_VERSION, ChunkingResult, chunk_params, chunk_song, place_chunks
from .config import PipelineConfig
from .executors.base import BuildContext, Executor, FanOut, NeedsModel, PartFailed, SongOutcome, SongTasks
from .outputs import ROWS_DIR, BuildOutput, open_cache, share_source, song_audio, write_rows  # noqa: F401 (write_rows: public)
from .progress import BuildProgress
from .report import BuildReport
from .separate.base import PassThroughSeparator, Separator
from .separate.choose import make_separator
from .separate.stage import (STAGE_VERSION as SEPARATE_VERSION, Separation, load_separation, separate_on_cpu,
                             separation_params, separator_for, write_passthrough, write_separation)
from .storage import StoreSpec, is_remote, local_side
from .types import Failure, SeparatedSong, Song, SourceSpec

log = logging.getLogger("music_mixer")

ANALYSE_VERSION = "4"  # 2: stem levels from separation; song loudness from the chunk stage; 3: tagger per chunk, instrument sources, vocal score, music-or-not with the model; 4: tempo and beats from the beat network (analyse.tempo), music or not weighs a beat, genre and noise
SCHEDULING_KEYS = ("executor", "ray_address", "endpoint_url", "region")  # where work runs and files live, never what they hold
ANALYSE_PLACEMENT_KEYS = ("tagger_device",)  # where the tagger runs changes no figure (scores equal to ~1e-6): not in the key


# ----------------------------------------------------------------------------- planning (driver side)


def build_context(cfg: PipelineConfig, separator: Separator) -> BuildContext:
    """What every task needs; an s3:// build or cache is reached through this node's staging / mirror folder."""
    model_format = separator.model_format() if getattr(separator, "runs_in_model_worker", False) else None
    out_store = cache_store = None
    out_dir, cache_dir = cfg.out_dir, cfg.resolved_cache_dir
    if is_remote(out_dir):
        out_store = StoreSpec(str(out_dir), cfg.build.endpoint_url, cfg.build.region)
        out_dir = local_side(str(out_dir), "build")
    if is_remote(cache_dir):
        cache_store = StoreSpec(str(cache_dir), cfg.build.endpoint_url, cfg.build.region)
        cache_dir = local_side(str(cache_dir), "cache")
    return BuildContext(cfg, Path(out_dir).resolve(), Path(cache_dir).resolve(), separator.name,
                        separator.cache_params(), model_format, out_store, cache_store)


def separation_entry(song: Song, ctx: BuildContext, cache: StageCache):
    params = {"name": "none"} if song.instrumental else ctx.separator_params
    return cache.entry("separate", SEPARATE_VERSION, song.content_hash, separation_params(params, ctx.cfg.separate))


def needs_model(song: Song, ctx: BuildContext) -> bool:
    """Whether this song's separation must go through the model worker (not cached, not pass-through)."""
    return (ctx.model_format is not None and not song.instrumental
            and not separation_entry(song, ctx, open_cache(ctx)).is_done())


def _chunk_key(separation_key: str, song_id: str, cfg: PipelineConfig) -> tuple[str, str, str, dict[str, Any]]:
    """The chunk stage's cache key (stage, version, input, parameters): the separation entry's key (a hash of the
    source content and separation settings) and every setting that changes the chunks."""
    params = chunk_params(cfg.chunk, cfg.convert, cfg.separate.keep_stems, song_id)
    return "chunk", CHUNK_VERSION, separation_key, params


def _analysis_key(chunk_key: str, separated: SeparatedSong, cfg: PipelineConfig
                  ) -> tuple[str, str, str, dict[str, Any]]:
    """The analysis+description stage's cache key: the chunk entry's key and ``_analysis_params``."""
    return "analyse", ANALYSE_VERSION, chunk_key, _analysis_params(separated, cfg)


def _local(ctx: BuildContext) -> bool:
    """The build and its cache are folders of this machine (not on a remote store)."""
    return ctx.out_store is None and ctx.cache_store is None


def cached_outcome(song: Song, ctx: BuildContext) -> Optional[SongOutcome]:
    """Driver side: the song's outcome when every stage it needs is already in the cache (a rerun, a new
    export or curation of the same songs), its rows written from the cache entries in milliseconds, so that
    no worker process is needed for it, nor started when no song of the build needs one. None when any
    stage has work to do, or when the build or the cache is on a remote store (the driver may lack their
    files); a worker then runs the song's tasks as usual (as it does when this answer fails: its error is
    then reported from there)."""
    if not _local(ctx):
        return None
    cfg = ctx.cfg
    cache = open_cache(ctx)
    separation = separation_entry(song, ctx, cache)
    if not separation.is_done():
        return None
    chunks = cache.entry(*_chunk_key(separation.key, song.song_id, cfg))
    if not chunks.is_done():
        return None
    if cfg.analyse.enabled:
        separated = load_separation(song, separation.path, separation.read_meta(), levels=False)
        if not cache.entry(*_analysis_key(chunks.key, separated, cfg)).is_done():
            return None
    try:
        outcome = song_task(song, ctx)
    except Exception:
        log.debug("song %s: answering from the cache failed; a worker does it", song.song_id, exc_info=True)
        return None
    return outcome if isinstance(outcome, SongOutcome) else None


# ----------------------------------------------------------------------------- tasks (worker side)


def _worker_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def song_task(song: Song, ctx: BuildContext) -> Union[SongOutcome, NeedsModel]:
    """A song from ingest to its rows, or to the model worker's door when its separation needs the model."""
    outcome = SongOutcome(song.song_id, audio_s=song.duration_s, worker=_worker_name())
    cache = open_cache(ctx)
    entry = separation_entry(song, ctx, cache)
    if entry.is_done():
        outcome.cache_use("separate", hit=True)
        meta = entry.read_meta()
        # the entry's files are read only by the stages that miss the cache (a remote entry is fetched then)
        return _rows_task(load_separation(song, entry.path, meta, levels=False), ctx, outcome,
                          lambda: load_separation(song, entry.fetch(), meta))
    separator = None
    if ctx.model_format is None or song.instrumental:
        separator = separator_for(song, make_separator(ctx.cfg.separate))
        if isinstance(separator, PassThroughSeparator):  # the mix is the instrumental: streamed, never held whole
            return _stream_then_rows(song, separator.name, ctx, outcome)
    try:
        with outcome.timed("decode"):
            mix = audio_io.decode(song_audio(song, ctx))
    except audio_io.AudioDecodeError as exc:
        outcome.failures.append(Failure(song.song_id, "separate", str(exc), "decode"))
        return outcome
    if separator is None:
        from .separate.demucs_separator import prepare_model_input

        with outcome.timed("separate (prepare)"):
            inp = prepare_model_input(mix, *ctx.model_format)
        return NeedsModel(song, inp, outcome)
    try:
        with outcome.timed("separate"):
            separation = separate_on_cpu(mix, separator, ctx.cfg.separate)
    except (RuntimeError, ValueError) as exc:
        outcome.failures.append(Failure(song.song_id, "separate", f"{separator.name} failed: {exc}", "separate"))
        return outcome
    return _store_then_rows(song, separation, separator.name, ctx, outcome)


def finish_task(song: Song, model_output: Any, outcome: SongOutcome, ctx: BuildContext) -> SongOutcome:
    """A song back from the model worker: to its rows."""
    from .separate.demucs_separator import separation_from_model

    outcome.worker = _worker_name()
    outcome.add_busy("separate (model)", getattr(model_output, "busy_s", 0.0))
    with outcome.timed("separate (finish)"):
        mix = audio_io.decode(song_audio(song, ctx)) if model_output.instrumental is None else None
        separation = separation_from_model(model_output, mix)
    return _store_then_rows(song, separation, ctx.separator_name, ctx, outcome)


def model_failure(song: Song, error: BaseException, outcome: SongOutcome) -> SongOutcome:
    outcome.failures.append(Failure(song.song_id, "separate", f"model failed: {type(error).__name__}: {error}",
                                    "separate"))
    return outcome


def _store_then_rows(song: Song, separation: Separation, model: str, ctx: BuildContext,
                     outcome: SongOutcome) -> SongOutcome:
    cache = open_cache(ctx)
    entry = separation_entry(song, ctx, cache)
    with outcome.timed("separate (write)"):
        folder = entry.begin()
        entry.finish(write_separation(song, separation, model, folder))
    outcome.cache_use("separate", hit=False)
    del separation
    separated = load_separation(song, entry.path, entry.read_meta())
    return _rows_task(separated, ctx, outcome, lambda: separated)


WORK_DIR = ".work"  # scratch of the songs in flight (what the chunk stage hands to analysis), under the build folder


def handover_dir(ctx: BuildContext, song_id: str) -> Path:
    """The scratch folder of one song in flight (processing.chunk.handover); its join removes it."""
    return ctx.out_dir / WORK_DIR / song_id


def _stream_then_rows(song: Song, model: str, ctx: BuildContext, outcome: SongOutcome) -> Union[SongOutcome, FanOut]:
    """A pass-through separation written from the song's file block by block (``write_passthrough``), then its rows."""
    import shutil

    entry = separation_entry(song, ctx, open_cache(ctx))
    try:
        with outcome.timed("separate (write)"):
            folder = entry.begin()
            try:
                meta = write_passthrough(song, song_audio(song, ctx), model, folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            entry.finish(meta)
    except audio_io.AudioDecodeError as exc:
        outcome.failures.append(Failure(song.song_id, "separate", str(exc), "decode"))
        return outcome
    outcome.cache_use("separate", hit=False)
    separated = load_separation(song, entry.path, entry.read_meta())
    return _rows_task(separated, ctx, outcome, lambda: separated)


def _rows_task(separated: SeparatedSong, ctx: BuildContext, outcome: SongOutcome,
               full: Callable[[], SeparatedSong]) -> Union[SongOutcome, FanOut]:
    """Chunk and convert one separated song; then its rows, or (analysis not cached) the FanOut that analyses
    its chunks on any free worker and joins them into the rows (failures go to the outcome).
    ``separated`` may lack the stem levels; ``full()`` gives them, with the entry's files on this node."""
    cfg = ctx.cfg
    song_id = separated.song.song_id
    outcome.count("songs_separated")
    cache = open_cache(ctx)
    output = BuildOutput(ctx, cache)
    handover = handover_dir(ctx, song_id) if cfg.analyse.enabled and cfg.analyse.tempo == "rnn" else None
    try:
        with outcome.timed("chunk+convert"):
            # the separation entry's folder name is its key
            chunk_key = _chunk_key(separated.instrumental_path.parent.name, song_id, cfg)
            entry, meta, hit = cache.get_or_compute(
                *chunk_key,
                lambda folder: chunk_song(full(), cfg.chunk, cfg.convert, cfg.separate.keep_stems, folder, handover))
            outcome.cache_use("chunk", hit)
            chunk_files = entry.fetch() if output.needs_local_cache_files else entry.path
            chunking = place_chunks(separated, meta, chunk_files, cfg.convert, ctx.out_dir, output.place)
            chunking.cache_key, chunking.cached = entry.key, hit
    except Exception as exc:  # one song's failure must not stop the build
        outcome.failures.append(Failure(song_id, "chunk", f"{type(exc).__name__}: {exc}", "chunk"))
        _remove_handover(handover)
        return outcome
    outcome.count("chunks_written", len(chunking.chunks))
    outcome.count("chunks_silent", len(chunking.skipped_silent))
    if not chunking.chunks:
        outcome.failures.append(Failure(song_id, "chunk", f"no chunk: song is {separated.song.duration_s:.1f} s, "
                                        f"shorter than chunk.min_tail_s={cfg.chunk.min_tail_s:g} s, or silent", "too_short"))
        _remove_handover(handover)
        return outcome
    if not cfg.analyse.enabled:
        return _write_song_rows(separated, chunking, [{} for _ in chunking.chunks], {}, [], ctx, outcome, output)
    analysis = cache.entry(*_analysis_key(chunking.cache_key, separated, cfg))
    if analysis.is_done():
        _remove_handover(handover)
        outcome.cache_use("analyse", True)
        if cfg.describe.enabled:
            outcome.cache_use("describe", True)
        done = analysis.read_meta()
        return _write_song_rows(separated, chunking, done["chunk_rows"], done["song_row"], done["song_flags"], ctx,
                                outcome, output)
    try:
        with outcome.timed("analyse+describe"):
            files = {c["chunk_id"]: c["file"] for c in meta["chunks"]}
            return _analysis_fan_out(separated, chunking, (chunk_key, files), ctx, outcome, full, handover)
    except Exception as exc:  # keep the chunks (excluded) so nothing built is lost
        _remove_handover(handover)
        outcome.failures.append(Failure(song_id, "analyse", f"{type(exc).__name__}: {exc}", "analyse"))
        return _write_song_rows(separated, chunking, [{} for _ in chunking.chunks], {}, ["analysis_failed"], ctx,
                                outcome, output)


def _write_song_rows(separated: SeparatedSong, chunking: ChunkingResult, analysis_rows: list[dict[str, Any]],
                     song_row: dict[str, Any], song_flags: list[str], ctx: BuildContext,
                     outcome: SongOutcome, output: Optional[BuildOutput] = None) -> SongOutcome:
    """The song's table rows, on disk as the song ends (the outcome names the file); ``output``: the task's
    BuildOutput when it has one."""
    rows = song_rows(separated, chunking, analysis_rows, song_row, song_flags, ctx.cfg, ctx.out_dir)
    for row in rows:
        if row["excluded"]:
            outcome.excluded.append({"chunk_id": row["chunk_id"], "reason": row["exclude_reason"]})
        outcome.written.append(row["audio_path"])
        outcome.written.extend(json.loads(row["stem_paths"]).values())
    outcome.chunks = len(rows)
    output = output or BuildOutput(ctx, open_cache(ctx))
    outcome.rows_file = output.write_rows(separated.song.song_id, rows)
    return outcome


def _remove_handover(folder: Optional[Path]) -> None:
    if folder is not None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _analysis_params(separated: SeparatedSong, cfg: PipelineConfig) -> dict[str, Any]:
    """What keys the song's analysis+description cache entry besides its chunks' entry: every setting that counts."""
    analyse_params = {k: v for k, v in cfg.analyse.__dict__.items() if k not in ANALYSE_PLACEMENT_KEYS}
    return {"analyse": analyse_params, "describe": cfg.describe.__dict__ if cfg.describe.enabled else None,
            "metadata": separated.song.metadata.to_dict(), "model": separated.model}


# ----------------------------------------------------------------------------- analysis, spread over the workers


def _analysis_fan_out(separated: SeparatedSong, chunking: ChunkingResult,
                      chunk_entry: tuple[tuple, dict[str, str]],
                      ctx: BuildContext, outcome: SongOutcome, full: Callable[[], SeparatedSong],
                      handover: Optional[Path]) -> FanOut:
    """The song's analysis as parts any worker may run: the beat network's windows over the whole instrumental
    (first: the longest parts), then one part per chunk (features, tagger); ``analysis_join`` assembles them."""
    from .analyse.analyse import check_config

    check_config(ctx.cfg.analyse)  # e.g. the tagger's weights: fail here, once, not in every part
    song = separated.song
    parts: list[tuple[Callable[..., Any], tuple]] = []
    windows: list[Any] = []
    if handover is not None:
        from .analyse.beat_network import frame_count, windows as beat_windows
        from .chunk.handover import BEAT_DTYPE, ensure_beat_input

        beat_input = ensure_beat_input(full().instrumental_path, handover)  # made here when the chunks were cached
        windows = beat_windows(frame_count(beat_input.stat().st_size // BEAT_DTYPE.itemsize))
        parts += [(beat_window_part, (song, ctx, window)) for window in windows]
    parts += [(measure_chunk_part, (chunk, ctx, chunk_entry)) for chunk in chunking.chunks]
    return FanOut(song.song_id, parts, analysis_join, (separated, chunking, len(windows), outcome, ctx))


def _separation_on_this_node(song: Song, ctx: BuildContext) -> SeparatedSong:
    """The song's separation entry, its files (and stem levels) on this node."""
    entry = separation_entry(song, ctx, open_cache(ctx))
    return load_separation(song, entry.fetch(), entry.read_meta())


def beat_window_part(song: Song, ctx: BuildContext, window: Any) -> tuple[Any, float, str]:
    """A part: the beat network's activations over one window of the song (processing.analyse.beat_network),
    read from the beat input the chunk stage handed over (made again here if this node lacks it)."""
    from .analyse.analyse import _beat_network
    from .analyse.beat_network import window_activations
    from .chunk.handover import BEAT_INPUT, ensure_beat_input, read_beat_input

    started = time.perf_counter()
    folder = handover_dir(ctx, song.song_id)
    path = folder / BEAT_INPUT
    if not path.is_file():
        path = ensure_beat_input(_separation_on_this_node(song, ctx).instrumental_path, folder)
    acts = window_activations(read_beat_input(path), _beat_network(ctx.cfg.analyse), window,
                              ctx.cfg.analyse.tagger_threads)
    return acts, time.perf_counter() - started, _worker_name()


def measure_chunk_part(chunk: Any, ctx: BuildContext, chunk_entry: tuple[tuple, dict[str, str]]
                       ) -> tuple[Any, float, str]:
    """A part: one chunk's measures (features, the tagger's scores), read from its file in the build, or from
    the chunk stage's cache entry (``chunk_entry``: its ``_chunk_key`` and the chunks' file names) when this node
    has no copy in the build."""
    from .analyse.analyse import measure_chunk_file

    started = time.perf_counter()
    path = None
    if not chunk.audio_path.is_file():
        chunk_key, files = chunk_entry
        path = open_cache(ctx).entry(*chunk_key).fetch() / files[chunk.chunk_id]
    return measure_chunk_file(chunk, ctx.cfg.analyse, path), time.perf_counter() - started, _worker_name()


class _PartsFailed(RuntimeError):
    """Parts of a song's analysis gave no result: (reason, failure kind)."""


def analysis_join(separated: SeparatedSong, chunking: ChunkingResult, beat_parts: int, outcome: SongOutcome,
                  ctx: BuildContext, results: list[Any]) -> SongOutcome:
    """The join of a song's analysis: the beat windows' activations and the chunks' measures (``results``, in
    the order ``_analysis_fan_out`` gave the parts) assembled into the song's analysis and descriptions
    (cached), then its rows. A failed part fails the song's analysis: its chunks are kept, excluded."""
    import numpy as np

    from .analyse.analyse import WholeSong, assemble_song
    from .describe.describe import describe_chunks

    cfg = ctx.cfg
    song_id = separated.song.song_id
    before, outcome.worker = outcome.worker, _worker_name()
    song_flags: list[str] = []
    analysis_rows: list[dict[str, Any]] = [{} for _ in chunking.chunks]
    song_row: dict[str, Any] = {}
    try:
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, PartFailed)]
        done = [r for r in results if not isinstance(r, PartFailed)]
        outcome.add_busy("analyse+describe", sum(r[1] for r in done))  # (value, busy seconds, worker) each
        outcome.helpers = sorted(({r[2] for r in done} | {before}) - {outcome.worker, ""})
        if failed:
            i, first = failed[0]
            what = f"beat window {i + 1}" if i < beat_parts else f"chunk {chunking.chunks[i - beat_parts].chunk_id}"
            raise _PartsFailed(f"{len(failed)} of {len(results)} analysis parts failed; {what}: {first}",
                               "worker_died" if any(r.kind == "worker_died" for _, r in failed) else "analyse")

        def compute(_folder: Path) -> dict[str, Any]:
            song_acts = np.concatenate([r[0] for r in results[:beat_parts]]) if beat_parts else None
            measures = [r[0] for r in results[beat_parts:]]
            full = _separation_on_this_node(separated.song, ctx)
            whole = WholeSong(chunking.instrumental_duration_s, chunking.instrumental_loudness_lufs,
                              chunking.instrumental_peak)
            analysis = assemble_song(full, chunking.chunks, measures, song_acts, cfg.analyse, whole)
            rows = [dict(r) for r in analysis.chunk_rows()]
            if cfg.describe.enabled:
                for row, desc in zip(rows, describe_chunks(full.song, analysis, chunking.chunks, cfg.describe)):
                    row.update(desc)
            return {"chunk_rows": rows, "song_row": analysis.song_row(), "song_flags": list(analysis.flags)}

        with outcome.timed("analyse+describe"):
            _entry, meta, hit = open_cache(ctx).get_or_compute(*_analysis_key(chunking.cache_key, separated, cfg),
                                                               compute)
        outcome.cache_use("analyse", hit)
        if cfg.describe.enabled:
            outcome.cache_use("describe", hit)
        analysis_rows, song_row, song_flags = meta["chunk_rows"], meta["song_row"], meta["song_flags"]
    except _PartsFailed as exc:  # keep the chunks (excluded) so nothing built is lost
        outcome.failures.append(Failure(song_id, "analyse", exc.args[0], exc.args[1]))
        song_flags = ["analysis_failed"]
    except Exception as exc:
        outcome.failures.append(Failure(song_id, "analyse", f"{type(exc).__name__}: {exc}", "analyse"))
        song_flags = ["analysis_failed"]
    finally:
        _remove_handover(handover_dir(ctx, song_id))
    return _write_song_rows(separated, chunking, analysis_rows, song_row, song_flags, ctx, outcome)


# ----------------------------------------------------------------------------- rows


def base_row(separated: SeparatedSong, chunk, out_dir: Path) -> dict[str, Any]:
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


def song_rows(separated: SeparatedSong, chunking: ChunkingResult, analysis_rows: list[dict[str, Any]],
              song_row: dict[str, Any], song_flags: list[str], cfg: PipelineConfig, out_dir: Path) -> list[dict[str, Any]]:
    """One table row per chunk: source, chunk, song-level and chunk-level analysis, flags and exclusion."""
    rows = []
    for chunk, extra in zip(chunking.chunks, analysis_rows):
        row = base_row(separated, chunk, out_dir)
        row.update(song_row)
        row.update(extra)
        flags = list(dict.fromkeys(list(song_flags) + list(row.get("flags") or [])))
        row["flags"] = flags
        row["excluded"] = bool(flags) and (cfg.analyse.exclude_flagged or "analysis_failed" in flags)
        row["exclude_reason"] = ", ".join(flags) if row["excluded"] else ""
        rows.append(row)
    return rows


def read_rows(out_dir: Path, rel: str) -> list[dict[str, Any]]:
    with open(out_dir / rel) as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ----------------------------------------------------------------------------- the table


def _column_types() -> dict[str, str]:
    from .analyse.analyse import COLUMN_TYPES  # Arrow types for analysis columns that may be null in every row

    return COLUMN_TYPES


def _typed(schema: pa.Schema) -> pa.Schema:
    """All-null and empty-list columns get their documented type (or string)."""
    types = _column_types()
    fields = []
    for f in schema:
        if pa.types.is_null(f.type):
            fields.append(pa.field(f.name, pa.type_for_alias(types.get(f.name, "string"))))
        elif pa.types.is_list(f.type) and pa.types.is_null(f.type.value_type):
            fields.append(pa.field(f.name, pa.list_(pa.string())))
        else:
            fields.append(f)
    return pa.schema(fields)


def write_table(row_files: list[str], out_dir: Path, path: Path) -> Path:
    """chunks.parquet from the songs' row files, in the given order, one song in memory at a time."""
    schemas = []
    for rel in row_files:
        rows = read_rows(out_dir, rel)
        if rows:
            schemas.append(pa.Table.from_pylist(rows).schema)
    tmp = path.with_suffix(".parquet.partial")
    if not schemas:
        pq.write_table(pa.table({"chunk_id": pa.array([], pa.string())}), tmp)
        tmp.replace(path)
        return path
    schema = _typed(pa.unify_schemas(schemas, promote_options="permissive"))
    with pq.ParquetWriter(tmp, schema) as writer:
        for rel in row_files:
            rows = read_rows(out_dir, rel)
            if rows:
                writer.write_table(pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows],
                                                        schema=schema))
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- the end of a build


@dataclass
class BuildResult:
    out_dir: Path  # the build folder (for an s3:// build: this machine's staging folder, holding the small files)
    table_path: Path
    report_path: Path
    report: BuildReport
    location: str = ""  # where the build is: its folder, or its s3:// URI

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every chunk row (read from chunks.parquet)."""
        return pq.read_table(self.table_path).to_pylist()


def _remove_stale(out_dir: Path, keep: set[Path]) -> int:
    """Delete chunk files of earlier builds that this build no longer contains."""
    removed = 0
    for sub in ("audio", "stems"):
        for path in (out_dir / sub).rglob("*") if (out_dir / sub).exists() else []:
            if path.is_file() and path not in keep:
                path.unlink()
                removed += 1
    return removed


def build_version(cfg: PipelineConfig, included_sha256: list[str]) -> str:
    """The configured version, or <UTC date>-<hash of the included audio and settings>: same content, same version."""
    if cfg.build.version:
        return cfg.build.version
    import datetime

    build = {k: v for k, v in cfg.to_dict()["build"].items() if k not in SCHEDULING_KEYS}
    digest = stable_hash(sorted(included_sha256), build, cfg.to_dict()["convert"], cfg.to_dict()["curate"])
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y.%m.%d}-{digest[:8]}"


def finish_build(cfg: PipelineConfig, ctx: BuildContext, outcomes: list[SongOutcome], report: BuildReport) -> BuildResult:
    """Table, counts, report and dataset exports from the songs' outcomes (given in source order)."""
    out_dir = ctx.out_dir
    row_files = [o.rows_file for o in outcomes if o.rows_file]
    table_path = write_table(row_files, out_dir, out_dir / "chunks.parquet")
    table = pq.read_table(table_path)
    names = set(table.column_names)
    excluded = table.column("excluded").to_pylist() if "excluded" in names else []
    included_idx = [i for i, e in enumerate(excluded) if not e]
    included = table.take(pa.array(included_idx, pa.int64())) if included_idx else table.slice(0, 0)
    report.count("chunks_included", included.num_rows)
    report.count("chunks_excluded", table.num_rows - included.num_rows)
    report.count("songs_in_dataset", len(set(included.column("song_id").to_pylist())) if included.num_rows else 0)
    report.hours["included"] = round(sum(included.column("duration_s").to_pylist()) / 3600.0, 4) if included.num_rows else 0.0
    written = {out_dir / p for o in outcomes for p in o.written}
    report.count("stale_files_removed", _remove_stale(out_dir, written))
    if cfg.analyse.enabled and included.num_rows:
        from .analyse.analyse import summarise

        report.distributions = summarise(included.to_pylist())
    sha = included.column("audio_sha256").to_pylist() if included.num_rows else []
    report.settings["version"] = build_version(cfg, sha)
    has_rows = table.num_rows > 0
    del table, included
    write_text_atomic(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    report.write(out_dir)  # the dataset builder reads it; rewritten below with the dataset's figures
    if cfg.build.exports and not has_rows:
        report.fail(Failure(str(out_dir), "build", "no song gave a chunk (see the failures above): no dataset to "
                            "export", "empty"))
    elif cfg.build.exports:
        with report.timed("dataset"):
            from builders import build_dataset

            try:
                artifacts = build_dataset(out_dir, cfg)
                report.dataset = artifacts.to_dict() if hasattr(artifacts, "to_dict") else dict(vars(artifacts))
                report.diversity = getattr(artifacts, "diversity", {})
            except Exception as exc:
                report.fail(Failure(str(out_dir), "build", f"{type(exc).__name__}: {exc}", "build"))
    report_path = report.write(out_dir)
    import shutil

    shutil.rmtree(out_dir / ROWS_DIR, ignore_errors=True)
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
    return BuildResult(out_dir, table_path, report_path, report, str(out_dir))


def finish_build_at(cfg: PipelineConfig, ctx: BuildContext, outcomes: list[SongOutcome], report: BuildReport) -> BuildResult:
    """``finish_build`` where the build is: in its folder, or for an s3:// build in a private folder of this
    node, whose new files this node then sends to the store (executors run this on one of their workers)."""
    if ctx.out_store is None:
        return finish_build(cfg, ctx, outcomes, report)
    import dataclasses
    import hashlib

    from .chunk.stage import place_file
    from .storage import fresh_folder, remove, upload_tree

    store = ctx.out_store.open()
    work = fresh_folder(ctx.out_dir.parent, "finish")
    try:
        store.download_tree(ROWS_DIR, work)
        sha = {r["audio_path"]: r["audio_sha256"] for o in outcomes if o.rows_file for r in read_rows(work, o.rows_file)}
        written = sorted({p for o in outcomes for p in o.written})
        for rel in written:  # the exports read the chunks: this node's staging copy when it is the same, else the store's
            mine = ctx.out_dir / rel
            if rel in sha and mine.is_file() and hashlib.sha256(mine.read_bytes()).hexdigest() == sha[rel]:
                place_file(mine, work / rel)
            else:
                store.download(rel, work / rel)
        result = finish_build(cfg, dataclasses.replace(ctx, out_dir=work, out_store=None), outcomes, report)
        made = {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()}
        stale = sorted(set(store.list("audio") + store.list("stems")) - set(written))
        report.counts["stale_files_removed"] = len(stale)  # as a local build counts them (sidecars included)
        old_exports = [r for prefix in ("data", "egs", "hf", "plots") for r in store.list(prefix)]
        for rel in stale + old_exports:
            if rel not in made:
                store.delete(rel)
        upload_tree(store, work, skip=frozenset(written))
        store.delete_prefix(ROWS_DIR)
        return dataclasses.replace(result, out_dir=ctx.out_dir, table_path=ctx.out_dir / "chunks.parquet",
                                   report_path=ctx.out_dir / "report.json", location=ctx.location)
    finally:
        remove(work)


def _write_report(report: BuildReport, ctx: BuildContext) -> Path:
    """report.json and failures.jsonl in the build (the driver's only writes into it: small files)."""
    path = report.write(ctx.out_dir)
    if ctx.out_store is not None:
        store = ctx.out_store.open()
        for name in ("report.json", "failures.jsonl"):
            store.upload(ctx.out_dir / name, name)
    return path


def _shared_sources(items, cache: StageCache):
    """Ingest's stream, each song's audio put into the remote cache on the way (for nodes without the file)."""
    for item in items:
        if isinstance(item, Song):
            share_source(item, cache)
        yield item


TASKS = SongTasks(needs_model=needs_model, song_task=song_task, finish_task=finish_task, model_failure=model_failure,
                  from_cache=cached_outcome)


def run_build(cfg: PipelineConfig, sources: list[SourceSpec], executor: Optional[Executor] = None) -> BuildResult:
    """The whole build: ingest's stream through the executor (``build.executor``), then the table and dataset."""
    from .executors.choose import make_executor

    started = time.perf_counter()
    cfg.validate()
    for location in (cfg.out_dir, cfg.resolved_cache_dir):  # an unreachable store fails before any work
        if is_remote(location):
            StoreSpec(str(location), cfg.build.endpoint_url, cfg.build.region).open().check()
    executor = executor or make_executor(cfg)  # an executor that cannot run here fails before any work
    try:
        return _run_build(cfg, sources, executor, started)
    finally:
        executor.close()


def _run_build(cfg: PipelineConfig, sources: list[SourceSpec], executor: Executor, started: float) -> BuildResult:
    import shutil

    from .ingest.stream import Duplicate, iter_ingest

    # Load the separator and check the tagger first: missing weights must fail before any download.
    separator = make_separator(cfg.separate)
    if cfg.analyse.enabled:
        from .analyse.analyse import check_config

        check_config(cfg.analyse)
    ctx = build_context(cfg, separator)
    cache = open_cache(ctx)
    if not _local(ctx) or not cache.holds("separate"):
        # the checks passed and every song needs a worker (nothing is cached, or the build is remote: the cache
        # answers no song in this process): the workers' fork server warms up now, while this process sets up and
        # ingests. Otherwise the first song that needs a worker starts it: a rerun the cache answers whole starts none.
        executor.start()
    out_dir = ctx.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    cache.sweep_partials()
    report = BuildReport(out_dir=ctx.location, settings=cfg.to_dict())
    report.settings["code_version"] = __version__
    report.count("sources", len(sources))
    shutil.rmtree(out_dir / ROWS_DIR, ignore_errors=True)  # rows of an interrupted run are made again
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)  # and the scratch of its songs in flight
    if ctx.out_store is not None:
        ctx.out_store.open().delete_prefix(ROWS_DIR)
    download_dir = Path(cfg.ingest.cache_dir) if cfg.ingest.cache_dir else cache.root / "downloads"
    progress = BuildProgress(len(sources), f"songs ({separator.name})", enabled=cfg.progress)
    order: list[str] = []
    outcomes: dict[str, SongOutcome] = {}
    model = separator if ctx.model_format is not None else None
    items = iter_ingest(sources, cfg.ingest, download_dir, executor.ingest_runner(ctx))
    if cache.remote is not None and executor.distributed:
        items = _shared_sources(items, cache)
    try:
        for event in executor.run(items, ctx, TASKS, model):
            if isinstance(event, Song):
                report.count("songs_ingested")
                order.append(event.song_id)
                progress.song_taken()
            elif isinstance(event, SongOutcome):
                report.merge(event)
                outcomes[event.song_id] = event
                progress.song_done(event.chunks, event.audio_s, event.worker)
            elif isinstance(event, Duplicate):
                report.count("duplicates")
                report.duplicates.append({"song_id": event.song_id, "duplicate_of": event.kept_song_id,
                                          "item": event.item, "similarity": round(event.similarity, 4)})
                progress.skipped()
            else:
                report.fail(event)
                progress.skipped()
    finally:
        progress.close()
    report.wall_s = round(time.perf_counter() - started, 3)
    result = executor.finish(finish_build_at, cfg, ctx, [outcomes[s] for s in order if s in outcomes], report)
    report = result.report  # (from another process when the executor ran the step elsewhere)
    if ctx.out_store is not None:
        ctx.out_store.open().download("chunks.parquet", result.table_path)
    report.wall_s = round(time.perf_counter() - started, 3)
    result.report_path = _write_report(report, ctx)
    return result
