"""A song's analysis spread over the workers (issue 20): after chunking, a song's beat-network windows and
chunks are parts that any free worker runs (executors.base.FanOut), and a join assembles the song.

Rows are the same whatever the number of workers and the same as the song analysed in one process; one
song keeps two workers busy; a part that fails (its own error, or its worker killed) fails the song's
analysis only, which keeps its chunks, excluded, and names the part."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REAL_SMALL_BUILD_NAME, VIBE_ACE
from processing import audio_io
from processing.config import load_config
from processing.executors.base import BuildContext, FanOut, PartFailed, SongOutcome, SongTasks
from processing.executors.local import LocalExecutor
from processing.types import Song, SongMetadata, SourceSpec

# Columns that depend on where a build lives or on the other songs of the set (split, sampling weight).
PLACE_OR_SET = {"audio_path", "stem_paths", "split", "weight"}


def _rows(build: Path, song_prefix: str = "") -> dict[str, dict]:
    rows = pq.read_table(build / "chunks.parquet").to_pylist()
    return {r["chunk_id"]: r for r in rows if r["source_path"].endswith(song_prefix)}


def _one_song_build(tmp_path: Path, source: Path, workers: int, name: str):
    from processing.pipeline import run_build

    cfg = load_config(None, [f"out_dir={tmp_path / name}", f"cache_dir={tmp_path / (name + '-cache')}",
                             "separate.model=none", "chunk.chunk_s=10", "progress=false",
                             f"build.name={REAL_SMALL_BUILD_NAME}", f"workers={workers}", "build.exports=[]"])
    result = run_build(cfg, [SourceSpec(str(source), artist="Kevin MacLeod", genre="jazz", moods=["relaxed"],
                                        licence="CC-BY-3.0")])
    assert not result.report.failures, result.report.failures
    return result


def test_one_song_spreads_over_two_workers_and_rows_do_not_change(real_small_build, tmp_path):
    """The Vibe Ace excerpt of the session's small real build (built there with the other two songs, one
    worker per core) built alone with 2 workers and with 1: the 2-worker build's report counts two worker
    processes for its one song, and the rows equal, column for column, in all three builds."""
    folder, _ = real_small_build
    source = folder.parent / "in" / (VIBE_ACE.split(".")[0] + ".wav")
    reference = _rows(folder, source.name)
    assert len(reference) == 2  # 20 s in 10 s chunks
    two = _one_song_build(tmp_path, source, 2, "two")
    assert len(two.report.workers) == 2, two.report.workers  # one song, both workers
    one = _one_song_build(tmp_path, source, 1, "one")
    assert len(one.report.workers) == 1
    for build in (two.out_dir, one.out_dir):
        rows = _rows(build)
        assert rows.keys() == reference.keys()
        for cid, row in rows.items():
            for column in set(row) | set(reference[cid]):
                if column not in PLACE_OR_SET:
                    assert row.get(column) == reference[cid].get(column), (build.name, cid, column)
        assert rows[next(iter(rows))]["bpm"] and rows[next(iter(rows))]["beats"]  # the beat network ran
    assert not (two.out_dir / ".work").exists()  # the scratch the chunk stage handed over is gone


def _song_and_context(tmp_path: Path, shared_audio: Path, seconds: float = 20.0):
    from processing.pipeline import build_context
    from processing.separate.choose import make_separator
    from processing.types import AudioData

    audio = audio_io.decode(shared_audio / VIBE_ACE)
    path = tmp_path / "vibe.wav"
    audio_io.write(path, AudioData(audio.samples[:, : int(seconds * audio.sample_rate)], audio.sample_rate),
                   subtype="PCM_16")
    song = Song("vibe", path, SongMetadata(title="Vibe Ace"), audio_io.file_sha256(path), seconds, audio.sample_rate, 2)
    cfg = load_config(None, [f"out_dir={tmp_path / 'out'}", "separate.model=none", "chunk.chunk_s=10",
                             "progress=false"])
    return song, build_context(cfg, make_separator(cfg.separate))


def test_parts_run_here_give_the_in_process_analysis_and_a_failed_part_fails_only_the_analysis(tmp_path, shared_audio):
    """The song task's FanOut, its parts run in this process and joined, against ``analyse_song`` (the whole
    song analysed in one process, beat network over the decoded instrumental): the same rows. Then the same
    FanOut with one chunk's part failed: the song keeps its chunks, excluded as analysis_failed, and the
    failure names that chunk."""
    from processing.analyse.analyse import analyse_song
    from processing.describe.describe import describe_chunks
    from processing.pipeline import read_rows, song_task

    song, ctx = _song_and_context(tmp_path, shared_audio)
    fan = song_task(song, ctx)
    assert isinstance(fan, FanOut) and len(fan.parts) == 3  # one beat window, two chunks
    assert (ctx.out_dir / ".work" / "vibe" / "beat_input.f32").is_file()
    results = [fn(*args) for fn, args in fan.parts]
    separated, chunking = fan.join_args[0], fan.join_args[1]
    joined = fan.join(*fan.join_args, results)
    assert not joined.failures and joined.chunks == 2
    rows = read_rows(ctx.out_dir, joined.rows_file)
    assert not (ctx.out_dir / ".work" / "vibe").exists()

    from processing.pipeline import _separation_on_this_node

    full = _separation_on_this_node(song, ctx)
    analysis = analyse_song(full, chunking.chunks, ctx.cfg.analyse)
    reference = analysis.chunk_rows()
    for ref, desc in zip(reference, describe_chunks(song, analysis, chunking.chunks, ctx.cfg.describe)):
        ref.update(desc)
    assert len(rows) == len(reference) == 2
    for row, ref in zip(rows, reference):
        for column, value in ref.items():
            assert row[column] == value, column
    assert rows[0]["song_bpm"] and rows[0]["bpm"]

    # a failed part: the analysis cache entry was written above, so fan out a fresh context (its own cache)
    song2, ctx2 = _song_and_context(tmp_path / "again", shared_audio)
    fan2 = song_task(song2, ctx2)
    results2 = [fn(*args) for fn, args in fan2.parts]
    results2[2] = PartFailed("AnalysisError: chunk vibe-001 of song vibe: truncated file")
    failed = fan2.join(*fan2.join_args, results2)
    [failure] = failed.failures
    assert failure.stage == "analyse" and failure.kind == "analyse"
    assert "chunk vibe-001" in failure.reason and "1 of 3" in failure.reason
    rows2 = read_rows(ctx2.out_dir, failed.rows_file)
    assert len(rows2) == 2 and all(r["excluded"] and "analysis_failed" in r["flags"] for r in rows2)
    assert separated.song.song_id == "vibe"


# ------------------------------------------------------------------ the executor's fan-in, with test tasks


def part_value(x: int) -> int:
    return x * 10


def part_raises(x: int) -> int:
    raise ValueError(f"part {x} cannot")


def part_dies(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def join_parts(song_id: str, results: list) -> SongOutcome:
    outcome = SongOutcome(song_id)
    outcome.counts = {(f"PartFailed:{r.kind}:{r}" if isinstance(r, PartFailed) else f"{type(r).__name__}:{r}"): 1
                      for r in results}
    outcome.worker = f"join:{os.getpid()}"
    return outcome


def fanning_song_task(song: Song, ctx: BuildContext):
    return FanOut(song.song_id, [(part_value, (1,)), (part_raises, (2,)), (part_dies, (3,)), (part_value, (4,))],
                  join_parts, (song.song_id,))


def _never(*_args):
    raise AssertionError("not called")


TEST_TASKS = SongTasks(needs_model=lambda song, ctx: False, song_task=fanning_song_task, finish_task=_never,
                       model_failure=_never, from_cache=lambda song, ctx: None)


def test_local_executor_joins_every_part_even_when_one_raises_and_one_is_killed(tmp_path):
    """A FanOut through the real local executor (2 worker processes): the join gets the parts' results in
    their order; the part that raised and the part whose worker was killed (SIGKILL) arrive as PartFailed
    with the reason, and the pool replaces the dead worker."""
    cfg = load_config(None, [f"out_dir={tmp_path / 'out'}", "separate.model=none"])
    ctx = BuildContext(cfg, tmp_path / "out", tmp_path / "cache", "none", {})
    song = Song("s", tmp_path / "s.wav", SongMetadata(), "0" * 64, 1.0, 44100, 2)
    events = list(LocalExecutor(2).run([song], ctx, TEST_TASKS, None))
    [outcome] = [e for e in events if isinstance(e, SongOutcome)]
    keys = list(outcome.counts)
    assert keys[0] == "int:10" and keys[3] == "int:40"
    assert keys[1] == "PartFailed:error:ValueError: part 2 cannot"
    assert keys[2].startswith("PartFailed:worker_died:its worker process died of SIGKILL"), keys[2]


def test_fan_out_needs_a_join_for_every_part_count():
    """FanIn hands the join every part's result once the last one arrives, whatever their order."""
    from processing.executors.base import FanIn

    fan = FanIn.start(FanOut("s", [(part_value, (i,)) for i in range(3)], join_parts, ("s",)))
    assert not fan.arrive(2, "c") and not fan.arrive(0, "a")
    assert fan.arrive(1, "b")
    assert fan.join_args() == ("s", ["a", "b", "c"])


@pytest.mark.parametrize("rate", [44100, 48000])
def test_beat_input_made_again_from_the_instrumental_equals_analysis_own_conversion(tmp_path, shared_audio, rate):
    """When the chunks come from the cache, the hand-over file is streamed from the instrumental's file
    (``ensure_beat_input``): exactly what analysis would compute from the decoded instrumental
    (features.to_mono at 44.1 kHz; the chunk stage's own file: tests/test_chunk_stream.py), read back through the
    memory map; a second call finds it and writes nothing."""
    import numpy as np

    from processing.analyse.features import to_mono
    from processing.chunk.handover import ensure_beat_input, read_beat_input
    from processing.types import AudioData

    audio = audio_io.decode(shared_audio / VIBE_ACE)
    piece = AudioData(audio.samples[:, : 20 * audio.sample_rate], audio.sample_rate)
    if rate != audio.sample_rate:  # a song at another rate: the hand-over is resampled on the way
        import soxr

        piece = AudioData(np.ascontiguousarray(soxr.resample(piece.samples.T, audio.sample_rate, rate).T,
                                               dtype=np.float32), rate)
    instrumental = audio_io.write(tmp_path / "instrumental.flac", piece, subtype="PCM_24")
    path = ensure_beat_input(instrumental, tmp_path / "work")
    expected = to_mono(audio_io.decode(instrumental), 44100)
    got = np.asarray(read_beat_input(path))
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-6  # measured: 0 at 44.1 kHz
    before = path.stat().st_mtime_ns
    assert ensure_beat_input(instrumental, tmp_path / "work") == path and path.stat().st_mtime_ns == before
    assert not list((tmp_path / "work").glob("*.partial"))
