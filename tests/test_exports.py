"""Exports trainers read: audiocraft manifests + sidecars + dset YAML, the HF folder, transformers' feature extractor."""
from __future__ import annotations

import ast
import dataclasses
import gzip
import importlib.util
import json
import math
import os
import re
import shutil
import typing as tp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from builders import build_dataset
from builders.audiocraft_export import AUDIO_META_FIELDS, MUSIC_INFO_FIELDS, relocate
from builders.fixture import DEFAULT_SONGS, write_fixture_build
from processing.config import PipelineConfig

Q16 = 1.0 / 32768


@pytest.fixture(scope="module")
def fixture_built(shared_audio, tmp_path_factory):
    """builders.fixture's build: made-up analysis values, 5 songs (CC-BY and CC-BY-NC), one excluded."""
    build = write_fixture_build(tmp_path_factory.mktemp("build"), shared_audio, songs=DEFAULT_SONGS, max_chunks=2)
    cfg = PipelineConfig()
    cfg.build.name = "mm_test"
    return build, build_dataset(build, cfg)


@pytest.fixture(scope="module", params=["fixture", "real"])
def built(request):
    """Every test below runs on the fixture build and on a real small `--model none` build (conftest.real_small_build:
    measured analysis, real descriptions; CC-BY and CC-BY-NC songs too, build name mm_test)."""
    return request.getfixturevalue("real_small_build" if request.param == "real" else "fixture_built")


# the keys a build may hold: the fixture's made-up ones, any key and mode for a real build
KEYS = {"fixture": {"f major", "a minor", "c major", "g major"},
        "real": {f"{note} {mode}" for note in "c c# db d d# eb e f f# gb g g# ab a a# bb b".split()
                 for mode in ("major", "minor")}}


def _manifest(art, split):
    return [json.loads(line) for line in art.audiocraft[split].read_text().splitlines()]


def test_manifests_have_audiometa_fields_and_real_files(built):
    build, art = built
    for split in ("train", "validation"):
        lines = _manifest(art, split)
        assert len(lines) == art.splits[split].chunks
        for meta in lines:
            assert tuple(meta) == AUDIO_META_FIELDS
            info = sf.info(meta["path"])
            assert Path(meta["path"]).is_absolute()
            assert meta["duration"] == pytest.approx(info.frames / info.samplerate)
            assert meta["sample_rate"] == info.samplerate == 32000
            data, _ = sf.read(meta["path"], dtype="float32")
            assert meta["amplitude"] == pytest.approx(np.max(np.abs(data)), abs=Q16)
            sidecar = json.loads(Path(meta["path"]).with_suffix(".json").read_text())
            assert tuple(sidecar) == MUSIC_INFO_FIELDS


def test_dset_yaml_points_at_the_manifest_folders(built):
    _, art = built
    text = art.audiocraft["yaml"].read_text()
    assert text.startswith("# @package __global__")
    src = yaml.safe_load(text)["datasource"]
    assert src["max_sample_rate"] == 32000 and src["max_channels"] == 1
    assert (Path(src["train"]) / "data.jsonl").is_file()
    assert src["valid"] == src["evaluate"] == src["generate"] == str(art.audiocraft["validation"].parent)


def test_relocate_rewrites_paths_after_a_move(built, tmp_path):
    build, art = built
    moved = tmp_path / "moved"
    shutil.copytree(build / "egs", moved / "egs")
    shutil.copytree(build / "audio", moved / "audio")
    assert relocate(moved) == art.total_chunks
    for manifest in (moved / "egs").glob("*/data.jsonl"):
        for line in manifest.read_text().splitlines():
            path = Path(json.loads(line)["path"])
            assert path.is_relative_to(moved.resolve()) and path.is_file()
    src = yaml.safe_load((moved / "egs" / "mm_test.yaml").read_text())["datasource"]
    assert src["train"] == str(moved.resolve() / "egs" / "train")


# --- audiocraft's own code -------------------------------------------------------------------


def _audiocraft_root() -> tp.Optional[Path]:
    env = os.environ.get("MUSIC_MIXER_AUDIOCRAFT_SRC")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("audiocraft")
    return Path(spec.origin).parents[1] if spec and spec.origin else None


def _pick(source: str, names: set[str]) -> str:
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    return "\n\n".join(ast.unparse(n) for n in keep)


def _audiocraft_readers():
    """audiocraft's load_audio_meta/AudioMeta and MusicInfo(.from_dict): imported when audiocraft
    imports, else executed from its source (its data modules import torchaudio, av and the
    conditioners at import time, none of which install beside CPU torch 2.13)."""
    try:
        from audiocraft.data.audio_dataset import load_audio_meta
        from audiocraft.data.music_dataset import MusicInfo

        return load_audio_meta, MusicInfo, [f.name for f in dataclasses.fields(MusicInfo)]
    except Exception as exc:  # ImportError, or torchaudio failing to load its CUDA libraries
        import_error = exc
    root = _audiocraft_root()
    if root is None or not (root / "audiocraft" / "data" / "music_dataset.py").is_file():
        pytest.skip(
            f"audiocraft does not import ({type(import_error).__name__}: {import_error}) and its source is not available: "
            "`pip download audiocraft==1.3.0 --no-deps` and set MUSIC_MIXER_AUDIOCRAFT_SRC to the unpacked folder"
        )
    data = root / "audiocraft" / "data"
    ns: dict[str, tp.Any] = {
        "gzip": gzip, "json": json, "os": os, "re": re, "math": math, "tp": tp, "Path": Path, "dora": None,
        "dataclass": dataclasses.dataclass, "field": dataclasses.field, "fields": dataclasses.fields,
        "logger": __import__("logging").getLogger("audiocraft"),
    }
    exec(_pick((data / "zip.py").read_text(), {"PathInZip"}), ns)
    exec(_pick((data / "audio_dataset.py").read_text(), {"BaseInfo", "AudioMeta", "_resolve_audio_meta", "load_audio_meta"}), ns)
    exec(_pick((data / "info_audio_dataset.py").read_text(), {"get_keyword", "get_keyword_list", "get_string", "get_keyword_or_keyword_list"}), ns)
    music_src = (data / "music_dataset.py").read_text()
    exec(_pick(music_src, {"get_musical_key", "get_bpm"}), ns)
    # MusicInfo minus its base class (torch conditioning) and the two tensor fields filled later.
    cls = next(n for n in ast.parse(music_src).body if isinstance(n, ast.ClassDef) and n.name == "MusicInfo")
    cls.bases, cls.decorator_list = [], [ast.Name("dataclass", ast.Load())]
    cls.body = [
        n for n in cls.body
        if not (isinstance(n, ast.AnnAssign) and n.target.id in ("self_wav", "joint_embed"))
        and not (isinstance(n, ast.FunctionDef) and n.name in ("to_condition_attributes", "has_music_meta"))
    ]
    for n in cls.body:  # annotations of the dropped base types are irrelevant here
        if isinstance(n, ast.AnnAssign):
            n.annotation = ast.Name("object", ast.Load())
    exec(ast.unparse(ast.fix_missing_locations(ast.Module([cls], []))), ns)
    music = next(n for n in ast.parse(music_src).body if isinstance(n, ast.ClassDef) and n.name == "MusicInfo")
    names = [n.target.id for n in music.body if isinstance(n, ast.AnnAssign)]
    return ns["load_audio_meta"], ns["MusicInfo"], names


def test_audiocraft_reads_manifests_and_sidecars(built, request):
    _, art = built
    keys = KEYS[request.node.callspec.params["built"]]
    load_audio_meta, MusicInfo, field_names = _audiocraft_readers()
    # our sidecar carries exactly MusicInfo's metadata fields
    assert set(MUSIC_INFO_FIELDS) == set(field_names) - {"self_wav", "joint_embed"}
    for split in ("train", "validation"):
        metas = load_audio_meta(art.audiocraft[split])
        assert len(metas) == art.splits[split].chunks
        for meta in metas:
            assert meta.sample_rate == 32000 and meta.duration == pytest.approx(10.0)
            sidecar = json.loads(Path(meta.path).with_suffix(".json").read_text())
            info = MusicInfo.from_dict(sidecar, fields_required=True)  # MusicDataset's default
            assert isinstance(info.bpm, float) and info.bpm > 0
            assert info.key in keys
            assert info.description and info.title and info.name
            assert isinstance(info.moods, list) and info.moods
            assert info.instrument and info.instrument == info.instrument.lower()  # get_keyword ran


def test_dset_yaml_has_the_keys_of_audiocrafts_own_dset_configs(built):
    _, art = built
    root = _audiocraft_root()
    default = root / "config" / "dset" / "audio" / "default.yaml" if root else None
    if default is None or not default.is_file():
        pytest.skip("audiocraft's config folder is not available: set MUSIC_MIXER_AUDIOCRAFT_SRC to its unpacked sdist")
    theirs = default.read_text()
    ours = art.audiocraft["yaml"].read_text()
    assert ours.splitlines()[0] == theirs.splitlines()[0] == "# @package __global__"
    assert yaml.safe_load(ours).keys() == yaml.safe_load(theirs).keys() == {"datasource"}
    assert yaml.safe_load(ours)["datasource"].keys() == yaml.safe_load(theirs)["datasource"].keys()


# --- Hugging Face folder + transformers ------------------------------------------------------


def test_hf_folder_is_self_contained(built, tmp_path):
    build, art = built
    moved = tmp_path / "hf"
    shutil.copytree(art.hf_dir, moved)  # nothing outside the folder is needed
    readme = (moved / "README.md").read_text()
    front = yaml.safe_load(readme.split("---", 2)[1])
    assert [c["split"] for c in front["configs"][0]["data_files"]] == ["train", "validation"]
    assert "![Tempo (BPM)](plots/bpm.png)" in readme and (moved / "plots" / "bpm.png").is_file()
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(moved), cache_dir=str(tmp_path / "cache"))
    assert {s: len(d) for s, d in ds.items()} == {s: st.chunks for s, st in art.splits.items()}


def test_a_rebuild_that_fails_mid_export_leaves_the_previous_exports_whole(built, tmp_path, monkeypatch):
    import builders.dataset as dataset_module

    build, _ = built
    copy = tmp_path / "build"
    shutil.copytree(build, copy, symlinks=True)
    cfg = PipelineConfig()
    cfg.build.name = "mm_test"
    first = build_dataset(copy, cfg)
    before = {p.relative_to(copy): p.read_bytes() for p in sorted(copy.rglob("*")) if p.is_file()}
    real_write_card = dataset_module.write_card

    def card_then_crash(card_in, card_path, plot_paths):  # the hf folder's card: half written, then the build dies
        real_write_card(card_in, card_path, plot_paths)
        if ".hf.partial" in str(card_path):
            raise OSError("disk full (simulated) while writing the hf folder")
        return card_path

    monkeypatch.setattr(dataset_module, "write_card", card_then_crash)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(copy, cfg)
    after = {p.relative_to(copy): p.read_bytes() for p in sorted(copy.rglob("*")) if p.is_file()}
    assert after == before  # hf/, manifests, card, build_info: all as the first build left them
    assert not [p for p in copy.rglob("*") if p.name.endswith(".partial")]
    monkeypatch.undo()
    again = build_dataset(copy, cfg)
    assert sorted(p.name for p in again.hf_dir.rglob("*")) == sorted(p.name for p in first.hf_dir.rglob("*"))


def test_write_text_atomic_keeps_the_old_file_when_the_new_one_cannot_be_written(tmp_path):
    from processing.atomic import write_text_atomic

    target = tmp_path / "data.jsonl"
    write_text_atomic(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "new \ud800\n")  # a lone surrogate cannot be encoded: fails mid-write
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_transformers_encodec_feature_extractor_accepts_a_sample(built, tmp_path):
    pytest.importorskip("transformers", reason="transformers not installed (optional: pip install transformers==5.24.0)")
    datasets = pytest.importorskip("datasets")
    if int(datasets.__version__.split(".")[0]) >= 4:
        pytest.skip("decoding Audio under datasets >= 4 needs torchcodec")
    from transformers import EncodecFeatureExtractor

    _, art = built
    row = datasets.load_dataset(str(art.hf_dir), split="validation", cache_dir=str(tmp_path))[0]
    # MusicGen's (facebook/musicgen-*) feature extractor settings: mono, 32 kHz, no normalisation
    fe = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    out = fe(row["audio"]["array"], sampling_rate=row["audio"]["sampling_rate"], return_tensors="np")
    assert out["input_values"].shape == (1, 1, 320000)
    assert np.array_equal(out["input_values"][0, 0], row["audio"]["array"].astype(np.float32))
    with pytest.raises(ValueError):
        fe(row["audio"]["array"], sampling_rate=44100)  # the build's rate is the one MusicGen needs


def test_hf_folder_passes_the_hub_push_checks(built):
    publish_hub = pytest.importorskip("processing.publish.publish_hub")
    _, art = built
    meta = publish_hub.validate_hf_folder(art.hf_dir)
    assert [c["split"] for c in meta["configs"][0]["data_files"]] == ["train", "validation"]
    assert meta["license"] == "other"  # the fixture mixes CC-BY and CC-BY-NC songs
