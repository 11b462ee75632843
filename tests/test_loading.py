"""Load a built dataset the ways a user does: the loading script (datasets 3.x), the HF folder,
and (in a second venv) the builder class and the folder under datasets 5.x."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from builders import build_dataset  # noqa: E402
from builders.fixture import DEFAULT_SONGS, write_fixture_build  # noqa: E402
from processing.config import PipelineConfig  # noqa: E402
from s3_server import aws_env, s3  # noqa: E402,F401  (fixtures: moto's S3 server on 127.0.0.1)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "music_mixer_dataset.py"
Q16 = 1.0 / 32768
DS3 = int(datasets.__version__.split(".")[0]) < 4


def _chunk_rows(build: Path) -> dict:
    return {r["chunk_id"]: r for r in pq.read_table(build / "chunks.parquet").to_pylist()}


@pytest.fixture(scope="module")
def fixture_built(shared_audio, tmp_path_factory):
    """builders.fixture's build: made-up analysis values, and stems whose content is known (drums = chunk * 0.5)."""
    build = write_fixture_build(tmp_path_factory.mktemp("build"), shared_audio, songs=DEFAULT_SONGS, max_chunks=1, with_stems=True)
    art = build_dataset(build, PipelineConfig())
    return build, art, _chunk_rows(build)


@pytest.fixture(scope="module", params=["fixture", "real"])
def built(request):
    """The fixture build above, and a real small `--model none` build (conftest.real_small_build)."""
    if request.param == "real":
        build, art = request.getfixturevalue("real_small_build")
        return build, art, _chunk_rows(build)
    return request.getfixturevalue("fixture_built")


def _assert_rows_match_chunk_files(ds, build: Path, chunk_rows: dict, split: str, art) -> None:
    assert len(ds) == art.splits[split].chunks
    songs = set()
    for row in ds:
        audio = row["audio"]
        assert audio["sampling_rate"] == 32000
        written, rate = sf.read(build / chunk_rows[row["chunk_id"]]["audio_path"], dtype="float32")
        assert rate == 32000 and audio["array"].shape == written.shape
        assert np.max(np.abs(audio["array"] - written)) <= Q16
        assert row["split"] == split
        songs.add(row["song_id"])
    assert songs == {s for s, sp in art.song_splits.items() if sp == split}


@pytest.mark.skipif(not DS3, reason="loading scripts run only under datasets 3.x (this venv has a newer one)")
def test_loading_script_train_and_validation(built, tmp_path):
    build, art, chunk_rows = built
    ds = datasets.load_dataset(str(SCRIPT), data_dir=str(build), trust_remote_code=True, cache_dir=str(tmp_path))
    assert set(ds) == {"train", "validation"}
    for split in ("train", "validation"):
        _assert_rows_match_chunk_files(ds[split], build, chunk_rows, split, art)
    assert not {r for r in ds["train"]["song_id"]} & {r for r in ds["validation"]["song_id"]}
    row = ds["train"][0]
    assert row["description"] and row["licence"] and isinstance(row["instruments"], list)
    # beat times (schema 1.3) load as a list of floats, a beat about every 60/bpm s from the chunk's start
    # (a tracked beat sits on the network's 10 ms frames: real builds jitter by a frame or two)
    assert len(row["beats"]) > 4 and all(isinstance(b, float) for b in row["beats"])
    assert np.median(np.diff(row["beats"])) == pytest.approx(60.0 / row["bpm"], rel=0.03)
    assert np.diff(row["beats"]) == pytest.approx(60.0 / row["bpm"], abs=0.03)


@pytest.mark.skipif(not DS3, reason="loading scripts run only under datasets 3.x")
def test_loading_script_default_location_and_stems(fixture_built, tmp_path, monkeypatch):
    build, art, chunk_rows = fixture_built
    monkeypatch.setenv("MUSIC_MIXER_DATA", str(build))
    ds = datasets.load_dataset(str(SCRIPT), "stems", split="validation", trust_remote_code=True, cache_dir=str(tmp_path))
    row = ds[0]
    stems = json.loads(chunk_rows[row["chunk_id"]]["stem_paths"])
    drums, _ = sf.read(build / stems["drums"], dtype="float32")
    assert np.max(np.abs(row["stem_drums"]["array"] - drums)) <= Q16
    assert row["stem_vocals"] is None
    # `drums` was written as the chunk * 0.5: the stem column is really that stem
    assert np.max(np.abs(row["stem_drums"]["array"] - 0.5 * row["audio"]["array"])) <= 2 * Q16


@pytest.mark.skipif(not DS3, reason="loading scripts run only under datasets 3.x")
def test_loading_script_sees_a_rebuild(shared_audio, tmp_path):
    build = write_fixture_build(tmp_path / "b", shared_audio, songs=DEFAULT_SONGS[:2], max_chunks=1)
    build_dataset(build, PipelineConfig())
    first = datasets.load_dataset(str(SCRIPT), data_dir=str(build), trust_remote_code=True, cache_dir=str(tmp_path / "c"))
    write_fixture_build(build, shared_audio, songs=DEFAULT_SONGS[:3], max_chunks=1)
    build_dataset(build, PipelineConfig())
    second = datasets.load_dataset(str(SCRIPT), data_dir=str(build), trust_remote_code=True, cache_dir=str(tmp_path / "c"))
    assert sum(len(d) for d in first.values()) == 2
    assert sum(len(d) for d in second.values()) == 3  # not the stale cache of the first build


def test_loading_script_errors_name_the_problem(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("music_mixer_dataset_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    with pytest.raises(mod.MusicMixerDataError, match="not a built Music Mixer dataset"):
        mod.resolve_data_dir(str(tmp_path / "nothing"))
    # without the music-mixer package (a None entry in sys.modules makes its import fail, as when it is not
    # installed), an s3:// location says what to install instead of failing on an ImportError
    monkeypatch.setitem(sys.modules, "processing.publish.publish", None)
    with pytest.raises(mod.MusicMixerDataError, match=r"data_dir='s3://bucket/music/v1'.*processing.publish.publish"
                                                      r".pull_version.*pip install -e"):
        mod.resolve_data_dir("s3://bucket/music/v1")


def test_hf_folder_loads_without_script(built, tmp_path):
    build, art, chunk_rows = built
    ds = datasets.load_dataset(str(art.hf_dir), cache_dir=str(tmp_path))
    assert set(ds) == {"train", "validation"}
    for split in ("train", "validation"):
        if DS3:
            _assert_rows_match_chunk_files(ds[split], build, chunk_rows, split, art)
        else:  # pragma: no cover - datasets >= 4 needs torchcodec to decode
            assert len(ds[split]) == art.splits[split].chunks
    assert ds["train"].features["audio"].sampling_rate == 32000


DS5_CHECK = textwrap.dedent(
    """
    import io, json, sys
    import numpy as np, soundfile as sf, datasets
    from datasets import Audio, load_dataset
    build, hf, script, cache = sys.argv[1:5]
    sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
    out = {"version": datasets.__version__}
    try:
        load_dataset(script, data_dir=build)
        out["script"] = "loaded"
    except RuntimeError as exc:
        out["script"] = str(exc)
    from music_mixer_dataset import MusicMixer
    b = MusicMixer(data_dir=build, cache_dir=cache)
    b.download_and_prepare()
    ds = b.as_dataset()
    folder = load_dataset(hf, cache_dir=cache).cast_column("audio", Audio(decode=False))
    for name, dd in (("builder", ds), ("folder", folder)):
        res = {}
        for split in dd:
            rows = []
            for r in dd[split]:
                a, sr = sf.read(io.BytesIO(r["audio"]["bytes"]), dtype="float32")
                ref, _ = sf.read(build + "/audio/" + r["song_id"] + "/" + r["chunk_id"] + ".wav", dtype="float32")
                rows.append([r["chunk_id"], r["song_id"], sr, float(np.max(np.abs(a - ref)))])
            res[split] = rows
        out[name] = res
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.skipif(
    not os.environ.get("MUSIC_MIXER_DS5_PYTHON"),
    reason="set MUSIC_MIXER_DS5_PYTHON to a python with datasets==5.2.0 + soundfile (no torch) to check datasets 5.x",
)
def test_datasets5_builder_class_and_folder(built, tmp_path):
    build, art, _ = built
    proc = subprocess.run(
        [os.environ["MUSIC_MIXER_DS5_PYTHON"], "-c", DS5_CHECK, str(build), str(art.hf_dir), str(SCRIPT), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["version"].startswith("5.")
    assert "no longer supported" in out["script"]  # why the builder class / folder exist
    for way in ("builder", "folder"):
        assert set(out[way]) == {"train", "validation"}
        for split, rows in out[way].items():
            assert len(rows) == art.splits[split].chunks
            assert all(sr == 32000 and diff <= Q16 for _, _, sr, diff in rows)
            assert {song for _, song, _, _ in rows} == {s for s, sp in art.song_splits.items() if sp == split}


@pytest.mark.skipif(not DS3, reason="loading scripts run only under datasets 3.x")
def test_stereo_build_is_not_downmixed(shared_audio, tmp_path):
    build = write_fixture_build(tmp_path / "b", shared_audio, songs=DEFAULT_SONGS[:2], max_chunks=1, channels=2)
    art = build_dataset(build, PipelineConfig())
    for ds in (
        datasets.load_dataset(str(SCRIPT), data_dir=str(build), trust_remote_code=True, cache_dir=str(tmp_path / "c"), split="train"),
        datasets.load_dataset(str(art.hf_dir), cache_dir=str(tmp_path / "c"), split="train"),
    ):
        row = ds[0]
        written, _ = sf.read(build / "audio" / row["song_id"] / f"{row['chunk_id']}.wav", dtype="float32")
        assert written.shape == (320000, 2) and row["channels"] == 2
        assert row["audio"]["array"].shape == (2, 320000)
        assert np.max(np.abs(row["audio"]["array"] - written.T)) <= Q16
        assert np.max(np.abs(written[:, 0] - written[:, 1])) > 0.01  # really two different channels


@pytest.mark.skipif(not DS3, reason="loading scripts run only under datasets 3.x")
def test_loading_script_from_a_published_s3_version(built, s3, aws_env, tmp_path, monkeypatch):  # noqa: F811 (fixtures)
    publish = pytest.importorskip("processing.publish.publish")
    from processing.config import PublishConfig

    build, art, chunk_rows = built
    bucket = s3.new_bucket()
    publish.publish_build(build, PublishConfig(s3_uri=f"s3://{bucket}/sets", endpoint_url=s3.endpoint_url), "mm", "v1", progress=False)
    monkeypatch.setenv("MUSIC_MIXER_PULL_DIR", str(tmp_path / "pulled"))
    ds = datasets.load_dataset(
        str(SCRIPT), data_dir=f"s3://{bucket}/sets/mm/v1", endpoint_url=s3.endpoint_url,
        trust_remote_code=True, cache_dir=str(tmp_path / "c"),
    )
    assert (tmp_path / "pulled" / "chunks.parquet").is_file()
    for split in ("train", "validation"):
        _assert_rows_match_chunk_files(ds[split], build, chunk_rows, split, art)
