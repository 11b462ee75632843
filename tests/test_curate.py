"""The curation loop: the balance report, sampling weights, scripts/curate.py and scripts/diff.py.

The parent build holds, in train, two jazz songs (6 chunks of 16 s), a folk song (3 chunks) and an ambient
one (1 chunk of 2.7 s: the bird call), and in validation a hip-hop song; a speech clip is excluded by
analysis (not_music). Weights, exports and diffs are checked through the readers trainers use.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import gzip
import json
import logging
import math
import os
import random
import subprocess
import sys
import typing as tp
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from builders import build_dataset
from builders.diff import diff_versions
from builders.diversity import effective_number
from builders.fixture import FixtureSong, write_fixture_build
from builders.weights import sampling_weights
from processing.config import ConfigError, CurateConfig, PipelineConfig, load_config
from processing.report import BuildReport

from conftest import BIRD, DRUM_BASS, PIANO, SONG_WITH_VOCALS, SPEECH, VIBE_ACE
from s3_server import aws_env, s3  # noqa: F401  (fixtures: moto's S3 server on 127.0.0.1)
from test_exports import _audiocraft_readers, _audiocraft_root, _pick

REPO = Path(__file__).resolve().parents[1]
SONGS = (
    FixtureSong(VIBE_ACE, "vibe-ace", "Vibe Ace", "Kevin MacLeod", "CC-BY-3.0", "jazz", ["relaxed"],
                ["vibraphone", "bass"], 112.0, "F", "major", split_pin="train"),
    FixtureSong(PIANO, "pistachio", "Pistachio Ice Cream Ragtime", "Lena Orsa", "CC-BY-NC-3.0", "jazz", ["happy"],
                ["piano"], 100.0, "C", "major", split_pin="train"),
    FixtureSong(SONG_WITH_VOCALS, "fishin", "Let's Go Fishin'", "Karissa Hobbs", "CC-BY-3.0", "folk", ["cheerful"],
                ["guitar"], 120.0, "G", "major", split_pin="train"),
    FixtureSong(BIRD, "robin", "Robin", "InspectorJ", "CC-BY-4.0", "ambient", ["calm"], ["flute"], 70.0, "A", "minor",
                split_pin="train"),
    FixtureSong(DRUM_BASS, "choice", "Choice", "Admiral Bob", "CC-BY-NC-3.0", "hip hop", ["groovy"], ["drums", "bass"],
                90.0, "A", "minor", split_pin="validation"),
    FixtureSong(SPEECH, "speech", "Sense and Sensibility", "Heather Barnett", "CC-BY-4.0", excluded="not_music"),
)
TRAIN_GENRES = {"jazz": 6, "folk": 3, "ambient": 1}
SHORT = {"robin-000"}  # the only chunk of the dataset under 15 s (2.7 s)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})


def genre_of(rows: list[dict]) -> dict[str, str]:
    return {r["chunk_id"]: r["genre"] for r in rows}


def parquet_rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p, columns=["chunk_id", "split", "genre", "weight", "duration_s"]).to_pylist()]


def manifests(build: Path) -> list[dict]:
    return [json.loads(line) for m in sorted((build / "egs").glob("*/data.jsonl")) for line in m.read_text().splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def parent(shared_audio, tmp_path_factory):
    build = write_fixture_build(tmp_path_factory.mktemp("parent") / "build", shared_audio, songs=SONGS, chunk_s=16.0, max_chunks=3)
    cfg = PipelineConfig()
    cfg.build.version = "v1"
    return build, build_dataset(build, cfg)


@pytest.fixture(scope="module")
def curated(parent, tmp_path_factory):
    build, _ = parent
    out = tmp_path_factory.mktemp("curated") / "new"
    proc = run_script("curate.py", str(build), "--out", str(out), "--min-seconds", "15")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


# --- weights -----------------------------------------------------------------------------------------


def _audiocraft_dataset():
    """audiocraft's AudioDataset (its weighted sampling), imported, else executed from its 1.3.0 source."""
    try:
        from audiocraft.data.audio_dataset import AudioDataset, load_audio_meta

        return AudioDataset, load_audio_meta
    except Exception:  # audiocraft's data modules import torchaudio and av, which do not install beside CPU torch
        pass
    import torch
    import torch.nn.functional as F

    root = _audiocraft_root()
    if root is None or not (root / "audiocraft" / "data" / "audio_dataset.py").is_file():
        pytest.skip("audiocraft's source is not available: set MUSIC_MIXER_AUDIOCRAFT_SRC to its unpacked sdist")
    data = root / "audiocraft" / "data"
    ns: dict[str, tp.Any] = {
        "gzip": gzip, "json": json, "os": os, "tp": tp, "Path": Path, "torch": torch, "F": F, "random": random,
        "copy": __import__("copy"), "logging": logging, "logger": logging.getLogger("audiocraft"), "lru_cache": functools.lru_cache,
        "dataclass": dataclasses.dataclass, "fields": dataclasses.fields, "DEFAULT_EXTS": [".wav"], "dora": None,
    }
    exec(_pick((data / "zip.py").read_text(), {"PathInZip"}), ns)
    source = (data / "audio_dataset.py").read_text()
    exec(_pick(source, {"BaseInfo", "AudioMeta", "SegmentInfo", "_resolve_audio_meta", "load_audio_meta", "AudioDataset"}), ns)
    assert "sample_on_weight" in ast.unparse(ast.parse(source))
    return ns["AudioDataset"], ns["load_audio_meta"]


def _draw_genres(build: Path, split: str, on_weight: bool, genres: dict[str, str], draws: int = 10_000) -> Counter:
    import torch

    AudioDataset, load_audio_meta = _audiocraft_dataset()
    metas = load_audio_meta(build / "egs" / split / "data.jsonl")
    dataset = AudioDataset(metas, segment_duration=1.0, sample_rate=32000, channels=1,
                           sample_on_duration=False, sample_on_weight=on_weight)
    rng = torch.Generator().manual_seed(0)
    return Counter(genres[Path(dataset.sample_file(i, rng).path).stem] for i in range(draws))


def test_balanced_weights_give_each_genre_the_same_total_in_every_export(parent):
    build, art = parent
    data = parquet_rows(build / "data")
    train = [r for r in data if r["split"] == "train"]
    assert Counter(r["genre"] for r in train) == TRAIN_GENRES  # one genre twice another, a third with one chunk
    totals = Counter()
    for r in train:
        totals[r["genre"]] += r["weight"]
    assert max(totals.values()) <= 1.1 * min(totals.values())
    assert sum(r["weight"] for r in train) == pytest.approx(len(train))  # mean 1.0 per split
    # the same weights in chunks.parquet (null for the excluded chunk), the hf/ export and the audiocraft manifests
    table = {r["chunk_id"]: r for r in pq.read_table(build / "chunks.parquet").to_pylist()}
    by_id = {r["chunk_id"]: r["weight"] for r in data}
    assert {c: r["weight"] for c, r in table.items() if not r["excluded"]} == by_id
    assert table["speech-000"]["weight"] is None
    assert {r["chunk_id"]: r["weight"] for r in parquet_rows(art.hf_dir / "data")} == by_id
    assert {Path(m["path"]).stem: m["weight"] for m in manifests(build)} == by_id


def test_weighted_sampling_through_audiocraft_sees_every_genre_equally(parent):
    build, _ = parent
    genres = genre_of(parquet_rows(build / "data"))
    weighted = _draw_genres(build, "train", True, genres)
    uniform = _draw_genres(build, "train", False, genres)
    assert abs(effective_number(weighted.values()) - 3) <= 0.3  # within 10 % of the 3 genres
    assert effective_number(uniform.values()) < 2.6  # 6/3/1 chunks: about 2.45 without the weights
    assert weighted["ambient"] > 2500 and uniform["ambient"] < 1500


def test_finetune_weighted_draws_balance_genres(parent, tmp_path):
    pytest.importorskip("datasets")
    from builders.finetune import data, train

    build, _ = parent
    examples = data.examples(data.load_split(build, "train", "auto", tmp_path / "c"), 32000)
    genres = genre_of(parquet_rows(build / "data"))
    weights = np.array([ex.weight for ex in examples])
    assert len(set(weights)) == 3  # the loader carries each chunk's weight
    rng = np.random.default_rng(0)
    weighted = Counter(genres[examples[i].chunk_id] for i in train.draw_batch(rng, weights, len(examples), 10_000))
    uniform = Counter(genres[examples[i].chunk_id] for i in train.draw_batch(rng, None, len(examples), 10_000))
    assert abs(effective_number(weighted.values()) - 3) <= 0.3
    assert effective_number(uniform.values()) < 2.6
    sys.path.insert(0, str(REPO / "scripts"))
    import finetune_musicgen

    assert finetune_musicgen.parse_args([str(build), "--out", "x", "--weighted"]).weighted
    assert not finetune_musicgen.parse_args([str(build), "--out", "x"]).weighted


def test_weight_cap_and_no_weighting(parent):
    build, _ = parent
    rows = [r for r in pq.read_table(build / "data" / "train-00000-of-00001.parquet").to_pylist()]
    capped = sampling_weights(rows, CurateConfig(max_weight_ratio=2.0))
    assert max(capped) == pytest.approx(2.0 * float(np.median(capped)), rel=1e-4)  # the ambient chunk, held down
    balanced = sampling_weights(rows, CurateConfig())
    assert max(balanced) > 2.0 * float(np.median(balanced))
    assert sampling_weights(rows, CurateConfig(weighting="none")) == [1.0] * len(rows)
    combos = sampling_weights(rows, CurateConfig(balance_on=["genre", "mood"]))
    per_combo = Counter()
    for r, w in zip(rows, combos):
        per_combo[(r["genre"], r["moods"][0])] += w
    assert len(per_combo) == 4 and max(per_combo.values()) == pytest.approx(min(per_combo.values()))


def test_curate_config_is_validated():
    for override, message in (("curate.weighting=heavy", "curate.weighting must be one of balanced, none"),
                              ("curate.balance_on=[genre,colour]", "unknown field(s) 'colour'"),
                              ("curate.max_weight_ratio=0.5", "curate.max_weight_ratio must be >= 1"),
                              ("curate.balance_on=[]", "at least one field")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(None, [override]).validate()
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["curate.weights=none"])


# --- the balance report ----------------------------------------------------------------------------


def test_balance_report_in_report_json_the_card_and_the_summary(parent):
    from scipy.stats import entropy

    build, art = parent
    diversity = json.loads((build / "report.json").read_text())["diversity"]
    assert set(diversity["splits"]) == {"all", "train", "validation"}
    genre = diversity["splits"]["train"]["genre"]
    assert genre["counts"] == TRAIN_GENRES
    assert genre["shares"] == {"jazz": 0.6, "folk": 0.3, "ambient": 0.1}
    assert genre["effective"] == pytest.approx(math.exp(entropy([6, 3, 1])), abs=1e-3)
    assert genre["under_represented"] == ["ambient"]  # 10 % < half of an even third
    assert genre["weighted_effective"] == pytest.approx(3.0, abs=1e-3)
    tempo = diversity["splits"]["all"]["tempo"]
    assert tempo["counts"] == {"110-140": 6, "80-110": 4, "< 80": 1} and tempo["categories"] == 4
    assert "> 140" in tempo["under_represented"]  # no chunk that fast: add fast songs
    assert diversity["splits"]["all"]["mode"]["counts"] == {"major": 9, "minor": 2}
    assert diversity["splits"]["all"]["instrument"]["counts"]["bass"] == 4  # lists count each label
    # the card: a table and a plot, in the build's card and the hf/ card
    for card in (build / "dataset_card.md", art.hf_dir / "README.md"):
        text = card.read_text()
        assert "## Balance" in text and "![Balance](plots/balance.png)" in text
        assert "| genre | 4 |" in text and "balanced on genre" in text
    assert (build / "plots" / "balance.png").is_file() and (art.hf_dir / "plots" / "balance.png").is_file()
    summary = BuildReport(out_dir=str(build), diversity=diversity).summary()
    assert diversity["summary"].startswith("effective/seen values: genre 3.1/4 (add: ambient, hip hop); mood 4.5/5 (add: calm, groovy)")
    assert "  balance: " + diversity["summary"] in summary.splitlines()


# --- scripts/curate.py ----------------------------------------------------------------------------


def test_curate_min_seconds_keeps_exactly_the_long_chunks_hard_linked(parent, curated):
    build, art = parent
    out, proc = curated
    parent_rows = {r["chunk_id"]: r for r in pq.read_table(build / "chunks.parquet").to_pylist()}
    rows = {r["chunk_id"]: r for r in pq.read_table(out / "chunks.parquet").to_pylist()}
    kept = {c for c, r in rows.items() if not r["excluded"]}
    assert kept == {c for c, r in parent_rows.items() if not r["excluded"] and r["duration_s"] >= 15}
    assert kept == {c for c, r in parent_rows.items() if not r["excluded"]} - SHORT
    assert all(rows[c]["duration_s"] >= 15 for c in kept)
    assert rows["speech-000"]["excluded"]  # the parent's excluded chunk stays excluded
    for c in kept | {"speech-000"}:
        assert os.stat(out / rows[c]["audio_path"]).st_ino == os.stat(build / rows[c]["audio_path"]).st_ino
    assert not (out / "audio" / "robin").exists()
    # weights: non-null in the manifests and every Parquet export
    metas = manifests(out)
    assert {Path(m["path"]).stem for m in metas} == kept
    assert all(isinstance(m["weight"], float) and m["weight"] > 0 for m in metas)
    assert all(Path(m["path"]).is_relative_to(out.resolve()) and Path(m["path"]).is_file() for m in metas)
    for folder in (out / "data", out / "hf" / "data"):
        assert {r["chunk_id"] for r in parquet_rows(folder) if r["weight"] is not None} == kept
    train = [r for r in parquet_rows(out / "data") if r["split"] == "train"]
    assert {g: sum(r["weight"] for r in train if r["genre"] == g) for g in ("jazz", "folk")} == {"jazz": pytest.approx(4.5), "folk": pytest.approx(4.5)}
    # lineage, version, splits
    info = json.loads((out / "build_info.json").read_text())
    assert info["curation"]["parent_version"] == "v1" and info["curation"]["settings"]["min_seconds"] == 15
    assert info["curation"]["removed"] == {"shorter than 15 s": 1}
    assert info["version"].startswith("v1-c") and info["version"] != art.version
    assert info["song_splits"] == {s: v for s, v in art.song_splits.items() if s != "robin"}
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["version"] == info["version"] and report["diversity"]["splits"]["train"]["genre"]["counts"] == {"jazz": 6, "folk": 3}
    assert report["dataset"]["build_dir"] == str(out.resolve()) or report["dataset"]["build_dir"] == str(out)
    card = (out / "dataset_card.md").read_text()
    assert "## Curation" in card and "curated from version `v1`" in card and (out / "plots" / "balance.png").is_file()
    assert f"(version {info['version']})" in proc.stdout and "files: 11 hard-linked, 0 copied" in proc.stdout
    assert leftovers(out.parent) == []


def test_curated_exports_load_as_any_builds_do(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, _ = curated
    from test_loading import DS3, DS5_CHECK, SCRIPT

    expected = {s: [r["chunk_id"] for r in parquet_rows(out / "data") if r["split"] == s] for s in ("train", "validation")}
    loaders = [datasets.load_dataset(str(out / "hf"), cache_dir=str(tmp_path / "c"))]
    if DS3:
        loaders.append(datasets.load_dataset(str(SCRIPT), data_dir=str(out), trust_remote_code=True, cache_dir=str(tmp_path / "c")))
    for ds in loaders:
        assert {s: d["chunk_id"] for s, d in ds.items()} == expected
        assert all(w is not None for w in ds["train"]["weight"])
        row = ds["train"][0]
        written, _ = sf.read(out / "audio" / row["song_id"] / f"{row['chunk_id']}.wav", dtype="float32")
        assert np.max(np.abs(row["audio"]["array"] - written)) <= 1 / 32768
    ds5 = os.environ.get("MUSIC_MIXER_DS5_PYTHON")
    if ds5:
        proc = subprocess.run([ds5, "-c", DS5_CHECK, str(out), str(out / "hf"), str(SCRIPT), str(tmp_path / "c5")],
                              capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": ""})
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.split("RESULT", 1)[1])
        for way in ("builder", "folder"):
            assert {s: sorted(r[0] for r in rows) for s, rows in result[way].items()} == {s: sorted(v) for s, v in expected.items()}
            assert all(diff <= 1 / 32768 for rows in result[way].values() for *_, diff in rows)
    load_audio_meta, MusicInfo, _ = _audiocraft_readers()
    metas = load_audio_meta(out / "egs" / "train" / "data.jsonl")
    assert sorted(Path(m.path).stem for m in metas) == sorted(expected["train"])
    assert all(m.weight and m.weight > 0 for m in metas)
    for m in metas:
        info = MusicInfo.from_dict(json.loads(Path(m.path).with_suffix(".json").read_text()), fields_required=True)
        assert info.genre in ("jazz", "folk") and info.description


def test_diff_names_exactly_the_removed_chunks(parent, curated):
    build, _ = parent
    out, _ = curated
    proc = run_script("diff.py", str(build), str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert diff["chunks_removed"] == sorted(SHORT) and diff["chunks_added"] == []
    assert diff["songs_removed"] == ["robin"] and diff["songs_added"] == []
    assert diff["changed_facts"] == {"weight": 9}  # the other train chunks now share the weight two ways
    genre = next(d for d in diff["distributions"] if d["field"] == "genre")
    assert genre["counts_before"]["ambient"] == 1 and "ambient" not in genre["counts_after"]
    text = run_script("diff.py", str(build), str(out))
    assert text.returncode == 0 and "chunks: 0 added, 1 removed" in text.stdout and "  - robin-000" in text.stdout


def test_a_rebuild_with_a_changed_analysis_setting_shows_the_changed_facts(shared_audio, tmp_path):
    from processing.pipeline import run_build
    from processing.types import SourceSpec

    sources = [SourceSpec(str(shared_audio / DRUM_BASS), genre="hip hop")]
    base = [f"cache_dir={tmp_path / 'cache'}", "separate.model=none", "analyse.tagger=none", "chunk.chunk_s=10",
            "progress=false"]
    first = run_build(load_config(None, base + [f"out_dir={tmp_path / 'one'}"]), sources)
    second = run_build(load_config(None, base + [f"out_dir={tmp_path / 'two'}", "analyse.derive_moods=false"]), sources)
    assert any(line.startswith("  balance: effective/seen values: genre 1.0/1") for line in first.report.summary().splitlines())
    assert json.loads((tmp_path / "one" / "report.json").read_text())["diversity"]["splits"]["all"]["genre"]["counts"] == {"hip hop": 2}
    diff = diff_versions(tmp_path / "one", tmp_path / "two")
    assert diff.chunks_removed == diff.chunks_added == [] and len(diff.changed) == 2
    for change in diff.changed:
        assert set(change.changes) == {"moods", "description"}
        assert change.changes["moods"][0] and change.changes["moods"][1] in (None, [])
    mood = next(m for m in diff.distributions if m.field == "mood")
    assert mood.effective_before > 0 and mood.effective_after == 0


# --- bad input, reruns, chains -------------------------------------------------------------------


def test_bad_input_gets_a_clear_error_and_leaves_nothing(parent, curated, tmp_path):
    build, _ = parent
    out, _ = curated
    not_a_build = tmp_path / "notes"
    not_a_build.mkdir()
    (not_a_build / "readme.txt").write_text("hello")
    cases = [
        ([str(not_a_build), "--out", str(tmp_path / "a")], "not a Music Mixer build: it has no chunks.parquet"),
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "a")], "no such build folder"),
        ([str(build), "--out", str(tmp_path / "a"), *sum((["--exclude-genre", g] for g in ("jazz", "Folk", "ambient", "hip hop")), [])],
         "the filters leave no chunk (of 11: 1 genre hip hop, 3 genre folk, 6 genre jazz, 1 genre ambient)"),
        ([str(build), "--out", str(tmp_path / "a"), "--only-split", "validation"], "leave no chunk in the train split"),
        ([str(build), "--out", str(tmp_path / "a"), "--set", "curate.weighting=heavy"], "curate.weighting must be one of"),
        ([str(build), "--out", str(tmp_path / "a"), "--balance-on", "tempo,colour"], "unknown field(s) 'colour'"),
        ([str(build), "--out", str(tmp_path / "a"), "--min-seconds", "-1"], "--min-seconds must be >= 0"),
        ([str(build), "--out", str(build / "inner")], "is the build being curated or inside it"),
        ([str(build), "--out", str(out), "--max-chunks-per-song", "1"], "already holds a different build (version v1-c"),
        ([str(build), "--out", str(not_a_build)], "holds files but no build"),
    ]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for args, message in cases:
        proc = run_script("curate.py", *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert not (tmp_path / "a").exists() and leftovers(tmp_path) == [] and leftovers(build.parent) == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # the other build is untouched
    assert sorted(p.name for p in not_a_build.iterdir()) == ["readme.txt"]


def test_curation_of_a_curation_records_the_chain_and_a_rerun_gives_the_same_version(parent, curated, tmp_path):
    build, _ = parent
    out, _ = curated
    second = tmp_path / "second"
    proc = run_script("curate.py", str(out), "--out", str(second), "--exclude-genre", "folk", "--weighting", "none")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((second / "build_info.json").read_text())
    first_info = json.loads((out / "build_info.json").read_text())
    assert [c["version"] for c in info["curation"]["chain"]] == ["v1", first_info["version"]]
    assert info["curation"]["chain"][0]["settings"] is None and info["curation"]["chain"][1]["settings"]["min_seconds"] == 15
    assert info["version"].startswith(first_info["version"] + "-c")
    assert {Path(m["path"]).stem.rsplit("-", 1)[0] for m in manifests(second)} == {"vibe-ace", "pistachio", "choice"}
    assert {m["weight"] for m in manifests(second)} == {1.0}  # weighting none
    chunk_ids = {r["chunk_id"] for r in pq.read_table(second / "chunks.parquet").to_pylist()}
    assert "speech-000" in chunk_ids and not any(c.startswith("fishin") for c in chunk_ids)
    published = {name: (second / name).read_bytes() for name in ("build_info.json", "dataset_card.md")}
    again = run_script("curate.py", f"{out}/.", "--out", str(second), "--exclude-genre", "folk", "--weighting", "none")
    assert again.returncode == 0, again.stderr  # the same curation (its source spelt otherwise) into the same --out
    assert {name: (second / name).read_bytes() for name in published} == published  # same version, same files
    assert leftovers(tmp_path) == []


def test_include_flagged_brings_back_excluded_chunks(parent, tmp_path):
    build, _ = parent
    proc = run_script("curate.py", str(build), "--out", str(tmp_path / "n"), "--include-flagged", "not_music")
    assert proc.returncode == 0, proc.stderr
    rows = {r["chunk_id"]: r for r in pq.read_table(tmp_path / "n" / "chunks.parquet").to_pylist()}
    assert not rows["speech-000"]["excluded"] and rows["speech-000"]["exclude_reason"] == ""
    assert "speech-000" in {Path(m["path"]).stem for m in manifests(tmp_path / "n")}
    assert "1 brought back" in proc.stdout


def test_curate_and_diff_a_published_version_on_s3(parent, s3, aws_env, tmp_path, monkeypatch):  # noqa: F811
    from processing.config import PublishConfig
    from processing.publish.publish import publish_build

    build, _ = parent
    bucket = s3.new_bucket()
    publish_build(build, PublishConfig(s3_uri=f"s3://{bucket}/sets", endpoint_url=s3.endpoint_url), "mm", "v1", progress=False)
    monkeypatch.setenv("MUSIC_MIXER_CACHE", str(tmp_path / "cache"))
    uri = f"s3://{bucket}/sets/mm/latest"
    proc = run_script("curate.py", uri, "--out", str(tmp_path / "n"), "--min-seconds", "15", "--endpoint-url", s3.endpoint_url)
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "n" / "build_info.json").read_text())
    assert info["curation"]["parent_version"] == "v1" and "parent" not in info["curation"]
    assert json.loads((tmp_path / "n" / "report.json").read_text())["curation"]["parent"] == uri
    proc = run_script("diff.py", f"s3://{bucket}/sets/mm/v1", str(tmp_path / "n"), "--json", "--endpoint-url", s3.endpoint_url)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["chunks_removed"] == sorted(SHORT)
    # the curated build publishes like any build, under its own version; both sides of a diff can be published
    proc = run_script("publish.py", str(tmp_path / "n"), "--s3", f"s3://{bucket}/sets", "--endpoint-url", s3.endpoint_url,
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    published = f"s3://{bucket}/sets/music_mixer/{info['version']}"
    proc = run_script("diff.py", f"s3://{bucket}/sets/mm/v1", published, "--json", "--endpoint-url", s3.endpoint_url,
                      "--pull-dest", str(tmp_path / "pulls"))
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert diff["chunks_removed"] == sorted(SHORT) and diff["new"]["version"] == info["version"]
    assert (tmp_path / "pulls" / "new" / "manifest.json").is_file()
    missing = run_script("diff.py", f"s3://{bucket}/sets/mm/v9", str(tmp_path / "n"), "--endpoint-url", s3.endpoint_url)
    assert missing.returncode == 2 and "cannot pull" in missing.stderr and "v9" in missing.stderr
