"""The local executor: the same dataset whatever the number of workers, and a worker that dies fails only
its own song, by name, while the build goes on."""
from __future__ import annotations

import pytest

from processing.config import load_config
from processing.pipeline import run_build
from processing.types import SourceSpec

from conftest import DRUM_BASS, PIANO, VIBE_ACE

pytestmark = pytest.mark.slow


def _cfg(tmp_path, name, *overrides):
    return load_config(None, [f"out_dir={tmp_path / name}", f"cache_dir={tmp_path / name / '.cache'}",
                              "separate.model=none", "progress=false", "build.exports=[parquet]", *overrides])


def _dataset(result) -> list[tuple]:
    return [(r["chunk_id"], r["audio_sha256"], r["description"], r["bpm"], r["key"], r["excluded"])
            for r in result.rows]


def test_one_or_two_workers_build_the_same_dataset(tmp_path, shared_audio):
    sources = [SourceSpec(str(shared_audio / name)) for name in (PIANO, DRUM_BASS, VIBE_ACE)]
    one = run_build(_cfg(tmp_path, "one", "workers=1"), sources)
    two = run_build(_cfg(tmp_path, "two", "workers=2"), sources)
    assert _dataset(one) == _dataset(two)
    assert [r["song_id"] for r in one.rows] == sorted([r["song_id"] for r in one.rows],
                                                      key=[r["song_id"] for r in one.rows].index)  # songs stay together
    assert len(one.rows) == 5 and not one.report.failures and not two.report.failures
    assert len(one.report.workers) == 1 and len(two.report.workers) == 2  # two processes shared the work
    assert sum(w["songs"] for w in two.report.workers.values()) == 3
    assert one.report.wall_s > 0 and one.report.audio_s == pytest.approx(70.8 + 25.0 + 61.5, abs=1.0)
    assert "x real time" in two.report.summary() and "busy (summed over workers)" in two.report.summary()


def test_a_worker_that_dies_fails_its_song_by_name_and_the_build_goes_on(tmp_path, shared_audio):
    sources = [SourceSpec(str(shared_audio / name)) for name in (PIANO, DRUM_BASS, VIBE_ACE)]
    result = run_build(_cfg(tmp_path, "crash", "workers=2", "analyse.tagger=python:crash_tagger:factory"), sources)
    [failure] = result.report.failures
    drum_song = next(s for s in result.report.to_dict()["failures"])["item"]
    assert failure.kind == "worker_died" and failure.stage == "worker" and "SIGKILL" in failure.reason
    assert drum_song and "Drum" not in {r["source_title"] for r in result.rows}
    assert {r["source_title"] for r in result.rows} == {"Vibe Ace", "442789  lena-orsa  happy-music-pistachio-ice-cream-ragtime"}
    assert (result.out_dir / "failures.jsonl").read_text().count("worker_died") == 1
