"""The whole build on the real clips, with real Demucs code (a tiny random HTDemucs), the offline
separator, and the command line: what a user runs, checked on what it writes and how it loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from processing.analyse.beats import BEAT_FOUND
from processing.config import load_config
from processing.pipeline import run_build
from processing.types import SourceSpec

from conftest import BIRD, DRUM_BASS, PIANO, REPO, SONG_WITH_VOCALS, SPEECH, VIBE_ACE, VIBE_ACE_LOWQ
from proc_tree import run_watching

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]
SCRIPT = REPO / "music_mixer_dataset.py"


@pytest.fixture(scope="module")
def demucs_build(tmp_path_factory, shared_audio, tiny_repo):
    """All seven real clips through the tiny HTDemucs, analysis, descriptions and every export; built twice."""
    work = tmp_path_factory.mktemp("e2e")
    sources = [
        SourceSpec(str(shared_audio / SONG_WITH_VOCALS), artist="Karissa Hobbs", licence="CC-BY-4.0"),
        SourceSpec(str(shared_audio / VIBE_ACE), artist="Kevin MacLeod", genre="jazz", licence="CC-BY-4.0"),
        SourceSpec(str(shared_audio / VIBE_ACE_LOWQ)),
        SourceSpec(str(shared_audio / DRUM_BASS), genre="hip hop"),
        SourceSpec(str(shared_audio / PIANO), moods=["happy"]),
        SourceSpec(str(shared_audio / SPEECH)),
        SourceSpec(str(shared_audio / BIRD)),
    ]
    cfg = [f"out_dir={work / 'out'}", f"cache_dir={work / 'cache'}", f"separate.weights={tiny_repo}",
           "progress=false", "separate.keep_stems=true",
           "analyse.exclude_flagged=false"]  # a random model leaves "vocals": keep flagged chunks in
    t0 = time.perf_counter()
    first = run_build(load_config(None, cfg), sources)
    cold = time.perf_counter() - t0
    second = run_build(load_config(None, cfg), sources)
    return first, second, cold


def test_demucs_build_chunks_every_song_and_reports_what_it_left_out(demucs_build):
    first, _, _ = demucs_build
    rows = pq.read_table(first.table_path).to_pylist()
    per_song: dict[str, int] = {}
    for r in rows:
        per_song[r["source_title"]] = per_song.get(r["source_title"], 0) + 1
    # 133 s -> 4 chunks (13 s tail dropped); 61.5 s -> 2; 25 s -> 1 (tail kept: >= 15 s); 70.8 s -> 2
    assert per_song == {"Lets Go Fishin": 4, "Vibe Ace": 2, "Choice - Drum-bass": 1,
                        "442789  lena-orsa  happy-music-pistachio-ice-cream-ragtime": 2}
    assert all(r["separation_model"] == "htdemucs" for r in rows)
    report = first.report
    assert report.counts["duplicates"] == 1
    [dup] = report.duplicates
    assert dup["item"].endswith(VIBE_ACE_LOWQ)
    failed = {Path(f.item).name if "/" in f.item else f.item: f for f in report.failures}
    assert any(BIRD in k for k in failed) and "too short" in str([f.reason for f in report.failures]).lower()
    assert any(f.stage == "chunk" and "13.9 s" in f.reason for f in report.failures)  # the speech clip
    saved = json.loads(first.report_path.read_text())
    assert len(saved["failures"]) == len(report.failures) == 2
    assert (first.out_dir / "failures.jsonl").read_text().count("\n") == 2


def test_demucs_build_writes_stems_that_sum_to_the_instrumental(demucs_build):
    first, _, _ = demucs_build
    row = next(r for r in first.rows if r["source_title"] == "Choice - Drum-bass")
    stems = json.loads(row["stem_paths"])
    assert set(stems) == {"drums", "bass", "other", "vocals"}
    chunk, rate = sf.read(first.out_dir / row["audio_path"], dtype="float32")
    total = sum(sf.read(first.out_dir / stems[n], dtype="float32")[0] for n in ("drums", "bass", "other"))
    assert rate == 32000 and chunk.ndim == 1
    # the instrumental is drums + bass + other (16-bit chunk vs 24-bit stems: quantisation only)
    assert np.abs(chunk - total).max() < 2e-3


def test_demucs_build_analyses_and_describes_every_chunk(demucs_build):
    first, _, _ = demucs_build
    for r in first.rows:
        assert r["description"] and "vocal" not in r["description"].lower()
        assert r["bpm"] is None or 40 <= r["bpm"] <= 250, (r["source_title"], r["bpm"])  # a tempo is plausible
        assert r["key"] is not None
        assert r["loudness_lufs"] < 0
    # a tempo is stated exactly where the beat network heard a beat in the chunk or, failing that, in its song
    # (the tiny random model's instrumentals are partly noise: some chunks have no beat; the real tempo figures
    # are checked on the demo build below and in test_beat_network.py)
    for r in first.rows:
        song_conf = r["song_bpm_confidence"]
        heard = r["bpm_confidence"] >= BEAT_FOUND or song_conf >= BEAT_FOUND
        assert (r["bpm"] is not None) == heard, (r["source_title"], r["bpm"], r["bpm_confidence"], song_conf)
    vibe = [r for r in first.rows if r["source_title"] == "Vibe Ace"]
    assert all(r["genre"] == "jazz" and "jazz" in r["description"].lower() for r in vibe)
    dist = first.report.distributions
    assert dist and sum(dist["keys"].values()) == first.report.counts["chunks_included"]


def test_second_run_does_no_stage_work_and_gives_the_same_dataset(demucs_build):
    first, second, _ = demucs_build
    assert second.report.cache_misses == {}
    assert set(second.report.cache_hits) >= {"separate", "chunk", "analyse", "describe"}
    assert [r["audio_sha256"] for r in second.rows] == [r["audio_sha256"] for r in first.rows]
    assert second.report.settings["version"] == first.report.settings["version"]


def test_the_build_loads_with_the_loading_script_and_the_hf_folder(demucs_build, tmp_path):
    first, _, _ = demucs_build
    included = [r for r in first.rows if not r["excluded"]]
    ds = datasets.load_dataset(str(SCRIPT), data_dir=str(first.out_dir), trust_remote_code=True,
                               cache_dir=str(tmp_path / "a"))
    # four songs with chunks: the small-set rule guarantees both splits
    assert set(ds) == {"train", "validation"} and sum(len(s) for s in ds.values()) == len(included)
    train_songs, validation_songs = set(ds["train"]["song_id"]), set(ds["validation"]["song_id"])
    assert train_songs and validation_songs and not train_songs & validation_songs
    row = ds["train"][0]
    assert row["audio"]["sampling_rate"] == 32000
    on_disk, _ = sf.read(first.out_dir / next(r["audio_path"] for r in included if r["chunk_id"] == row["chunk_id"]),
                         dtype="float32")
    assert np.allclose(row["audio"]["array"], on_disk, atol=1e-4)
    hf = datasets.load_dataset(str(first.out_dir / "hf"), cache_dir=str(tmp_path / "b"))
    assert sum(len(s) for s in hf.values()) == len(included)
    manifest = (first.out_dir / "egs" / "train" / "data.jsonl").read_text().splitlines()
    assert len(manifest) == len(ds["train"])


def test_offline_separator_build_on_a_sung_song(tmp_path, shared_audio):
    cfg = load_config(None, [f"out_dir={tmp_path / 'out'}", "separate.model=offline", "analyse.enabled=false",
                             "build.exports=[]", "progress=false", "chunk.chunk_s=10", "ingest.max_duration_s=60"])
    clip = tmp_path / "karissa_40s.wav"  # 40 s of the sung song keep this test short
    data, rate = sf.read(shared_audio / SONG_WITH_VOCALS, frames=40 * 44100, dtype="float32")
    sf.write(clip, data, rate)
    result = run_build(cfg, [SourceSpec(str(clip)), SourceSpec(str(shared_audio / PIANO))])
    assert [r["chunk_index"] for r in result.rows] == [0, 1, 2, 3]
    assert all(r["separation_model"] == "offline-repet" for r in result.rows)
    [too_long] = result.report.failures
    assert PIANO in too_long.item and "too long" in too_long.reason
    chunk, _ = sf.read(result.out_dir / result.rows[1]["audio_path"], dtype="float32")
    mix = data[10 * rate:20 * rate].mean(axis=1)
    import soxr

    mix32 = soxr.resample(mix, rate, 32000)
    assert chunk.shape == mix32.shape
    residual = np.sqrt(np.mean((chunk - mix32) ** 2)) / np.sqrt(np.mean(mix32 ** 2))
    assert 0.05 < residual < 0.9  # something (the voice) was taken out, and not everything


def _run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "build.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_missing_weights_fail_before_any_work_and_say_how_to_fix(tmp_path, shared_audio):
    sources = tmp_path / "s.yaml"
    sources.write_text(f"songs:\n  - {shared_audio / DRUM_BASS}\n")
    t0 = time.perf_counter()
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path / "hfhome"),
           "TORCH_HOME": str(tmp_path / "torch")}
    proc, _pid, started = run_watching([sys.executable, str(REPO / "scripts" / "build.py"), str(sources), "--out",
                                        str(tmp_path / "out"), "--no-progress", "--offline"], env=env)
    assert proc.returncode == 2
    assert time.perf_counter() - t0 < 60
    # nothing was started for work that will not come: no worker pool's fork server (~9 s of imports)
    assert not [c for c in started if "forkserver" in c], started
    assert "separate.weights" in proc.stderr
    assert "separate.offline=true (--offline) forbids the download" in proc.stderr
    assert "separate.model=offline" in proc.stderr
    assert not (tmp_path / "out" / "chunks.parquet").exists()


def test_demo_command_builds_a_loadable_dataset_offline(tmp_path):
    proc = _run_cli("--demo", "--out", str(tmp_path / "demo"), "--no-progress",
                    env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Dataset written to {tmp_path / 'demo'}" in proc.stdout
    assert "failures: none" in proc.stdout
    rows = pq.read_table(tmp_path / "demo" / "chunks.parquet").to_pylist()
    assert len(rows) == 7 and all(r["separation_model"] == "offline-repet" for r in rows)
    card = (tmp_path / "demo" / "dataset_card.md").read_text()
    assert "7 chunks were separated by the weight-free offline separator" in card
    # the demo songs' exact tempi: 120 and 84 BPM right, 140 BPM (a full loop at 140) at least at an octave
    for stem, bpm in (("sunrise-groove", 120.0), ("slow-harbour", 84.0)):
        assert all(abs(r["bpm"] - bpm) <= 0.04 * bpm for r in rows if stem in r["chunk_id"]), stem
    assert all(min(abs(r["bpm"] - f * 140.0) / (f * 140.0) for f in (0.5, 1.0, 2.0)) <= 0.04
               for r in rows if "night-drive" in r["chunk_id"])
    assert all(r["beats"] and np.median(np.diff(r["beats"])) == pytest.approx(60 / r["bpm"], rel=0.05) for r in rows)
    assert "CC BY-NC-SA 4.0" in card and "madmom" in card  # the tempo model and its licence travel with the data
    assert "| train |" in card and "CC0-1.0" in card
    ds = datasets.load_dataset(str(tmp_path / "demo" / "hf"), cache_dir=str(tmp_path / "c"))
    assert sum(len(s) for s in ds.values()) == sum(not r["excluded"] for r in rows)
