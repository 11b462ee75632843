"""The local executor: the same dataset whatever the number of workers, and a worker that dies fails only
its own song, by name, while the build goes on."""
from __future__ import annotations

import pytest

from processing.config import load_config
from processing.pipeline import run_build
from processing.types import SourceSpec

from conftest import DRUM_BASS, PIANO, VIBE_ACE
from dataset_compare import excerpt, three_songs
from proc_tree import alive, process_tree

pytestmark = pytest.mark.slow


def _cfg(tmp_path, name, *overrides):
    return load_config(None, [f"out_dir={tmp_path / name}", f"cache_dir={tmp_path / name / '.cache'}",
                              "separate.model=none", "progress=false", "build.exports=[parquet]", *overrides])


def _dataset(result) -> list[tuple]:
    return [(r["chunk_id"], r["audio_sha256"], r["description"], r["bpm"], r["key"], r["excluded"])
            for r in result.rows]


def test_one_or_two_workers_build_the_same_dataset(tmp_path, shared_audio):
    sources = three_songs(shared_audio, tmp_path, 25.0)  # 10 s chunks: two per song, a 5 s tail dropped
    one = run_build(_cfg(tmp_path, "one", "workers=1", "chunk.chunk_s=10"), sources)
    two = run_build(_cfg(tmp_path, "two", "workers=2", "chunk.chunk_s=10"), sources)
    assert _dataset(one) == _dataset(two)
    assert [r["song_id"] for r in one.rows] == sorted([r["song_id"] for r in one.rows],
                                                      key=[r["song_id"] for r in one.rows].index)  # songs stay together
    assert len(one.rows) == 6 and not one.report.failures and not two.report.failures
    assert len(one.report.workers) == 1 and len(two.report.workers) == 2  # two processes shared the work
    assert sum(w["songs"] for w in two.report.workers.values()) == 3
    assert one.report.wall_s > 0 and one.report.audio_s == pytest.approx(25.0 * 3, abs=0.5)
    assert "x real time" in two.report.summary() and "busy (summed over workers)" in two.report.summary()


def test_a_worker_that_dies_fails_its_song_by_name_and_the_build_goes_on(tmp_path, shared_audio):
    sources = [SourceSpec(str(shared_audio / name)) for name in (PIANO, DRUM_BASS, VIBE_ACE)]
    result = run_build(_cfg(tmp_path, "crash", "workers=2", "analyse.tagger=python:crash_tagger:factory"), sources)
    [failure] = result.report.failures
    drum_song = next(s for s in result.report.to_dict()["failures"])["item"]
    # The tagger runs in the part that analyses the drum song's one chunk: that part's worker dies, the song's
    # analysis fails by name, and its chunk is kept, excluded (nothing built is lost).
    assert failure.kind == "worker_died" and failure.stage == "analyse" and "SIGKILL" in failure.reason
    assert "chunk" in failure.reason and "1 of" in failure.reason
    drum_rows = [r for r in result.rows if r["song_id"] == failure.item]
    assert drum_song and drum_rows and all(r["excluded"] and "analysis_failed" in r["flags"] for r in drum_rows)
    assert {r["source_title"] for r in result.rows if not r["excluded"]} == {
        "Vibe Ace", "442789  lena-orsa  happy-music-pistachio-ice-cream-ragtime"}
    assert (result.out_dir / "failures.jsonl").read_text().count("worker_died") == 1


def test_kill_9_mid_build_then_the_same_command_gives_the_same_dataset(tmp_path, shared_audio):
    """The whole build (driver, fork server, workers) killed while songs are half done; no worker
    outlives it, and the rerun's dataset equals an uninterrupted build's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    from conftest import REPO, SONG_WITH_VOCALS

    songs = [excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 30, 30.0).location,
             *(s.location for s in three_songs(shared_audio, tmp_path, 30.0))]  # 115 s of real music in 10 s chunks
    listing = tmp_path / "sources.txt"
    listing.write_text("".join(f"{s}\n" for s in songs))
    out = tmp_path / "killed"
    cmd = [sys.executable, str(REPO / "scripts" / "build.py"), str(listing), "--out", str(out), "--model", "none",
           "--workers", "2", "--no-progress", "--chunk-seconds", "10", "--set", "build.exports=[parquet]"]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "child.err", "w"),
                             start_new_session=True)
    deadline = time.monotonic() + 240
    tree: set[int] = set()
    while time.monotonic() < deadline and child.poll() is None:
        tree |= set(process_tree(child.pid))
        if len(list((out / ".cache" / "analyse").glob("*/*/done.json"))) >= 1:
            break  # one song analysed, others on their way
        time.sleep(0.05)
    assert child.poll() is None, "the build ended before it could be killed: " + (tmp_path / "child.err").read_text()[-2000:]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    deadline = time.monotonic() + 30  # workers exit at once; the fork server once it sees they are gone
    while any(alive(pid) for pid in tree - {child.pid}) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [pid for pid in tree - {child.pid} if alive(pid)]
    assert not survivors, f"processes outlived the killed build: {survivors}"
    assert not (out / "chunks.parquet").exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    whole = subprocess.run(cmd[:4] + [str(tmp_path / "whole")] + cmd[5:], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    columns = ["chunk_id", "audio_sha256", "description", "bpm", "key", "excluded"]
    assert pq.read_table(out / "chunks.parquet", columns=columns).to_pylist() == \
        pq.read_table(tmp_path / "whole" / "chunks.parquet", columns=columns).to_pylist()
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".partial") or ".partial." in p.name]
    assert not leftovers and not (out / ".rows").exists()
    files = sorted(p.relative_to(out).as_posix() for p in (out / "audio").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "whole").as_posix()
                           for p in (tmp_path / "whole" / "audio").rglob("*") if p.is_file())


def test_a_build_without_analysis_alone_in_its_process_warms_no_analysis_library(tmp_path):
    """scripts/build.py runs one build per process: with analysis off its workers' fork server skips torch, scipy,
    librosa and essentia (~7 CPU-s). A process that may run other builds (a library caller, the tests) warms all."""
    import os
    import subprocess
    import sys

    from processing.executors.choose import make_executor
    from processing.executors.local import WARM_ENV

    off = load_config(None, [f"out_dir={tmp_path}", "analyse.enabled=false"])
    on = load_config(None, [f"out_dir={tmp_path}"])
    assert make_executor(off, only_build=True).warm == "stages"
    assert make_executor(on, only_build=True).warm == make_executor(off).warm == "all"
    check = ("import sys; import processing.executors.warm; "
             "print(sorted(m for m in ('torch', 'scipy', 'librosa', 'essentia', 'numba') if m in sys.modules)); "
             "print(all(m in sys.modules for m in ('processing.chunk.stage', 'processing.describe.describe')))")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          env={**os.environ, WARM_ENV: "stages"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["[]", "True"]
    full = subprocess.run([sys.executable, "-c", "import sys; import processing.executors.warm; "
                           "print(sorted(m for m in ('torch', 'essentia', 'essentia.standard', 'sklearn', 'pandas') "
                           "if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, WARM_ENV: "all"})
    assert full.returncode == 0, full.stderr[-2000:]
    # librosa.decompose's scikit-learn and pandas stay out, and essentia.standard (1.1 s): essentia_algorithms
    assert full.stdout.split("\n")[0] == "['essentia', 'torch']"
