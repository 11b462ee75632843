"""Demucs weights on first use: fetched once from a Hub (a real HTTP server on loopback in the Hub's layout,
real huggingface_hub, a tiny random HTDemucs as safetensors), checked against the pinned size and sha256,
cached; refused and not cached when cut short or corrupted; never fetched offline; a dead endpoint fails fast."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
import tiny_demucs  # noqa: E402
from hub_server import HubServer  # noqa: E402

from processing.separate.base import SeparatorError  # noqa: E402
from processing.separate.demucs_weights import PINNED, load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HUB_REPO = "adefossez/HTDemucs"
COMMIT = "5eed0f00d5eed0f00d5eed0f00d5eed0f00d5eed"
YAML = b"models: ['955717e8']\n"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("tiny_hub")
    path = tiny_demucs.save_safetensors(tiny_demucs.tiny_htdemucs(), folder / f"{tiny_demucs.SIGNATURE}.safetensors")
    return {"htdemucs.yaml": YAML, path.name: path.read_bytes()}


@pytest.fixture()
def hub(tiny_files):
    server = HubServer().start()
    server.add_repo(HUB_REPO, tiny_files, commit=COMMIT)
    yield server
    server.stop()


@pytest.fixture()
def pins(tmp_path, tiny_files) -> Path:
    """The tiny model's own pin, as a user pins a mirror's model (the built-in pin names the released bytes)."""
    lines = [f"htdemucs:\n  repo: {HUB_REPO}\n  revision: {COMMIT}\n  files:"]
    for name, body in tiny_files.items():
        lines.append(f"    {name}: {{sha256: {hashlib.sha256(body).hexdigest()}, size: {len(body)}}}")
    path = tmp_path / "pins.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def hub_env(tmp_path, hub, monkeypatch) -> dict[str, str]:
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return env


def _cached_files(cache: Path) -> list[str]:
    """Every file in the cache's blobs and snapshots (what a later lookup could find)."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if (p.is_file() or p.is_symlink()) and ("blobs" in p.parts or "snapshots" in p.parts))


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_the_released_pin_is_a_commit_and_names_the_files_demucs_reads():
    pin = PINNED["htdemucs"]
    assert pin.repo_id == HUB_REPO and len(pin.revision) == 40 and int(pin.revision, 16) >= 0
    files = {f.name: f for f in pin.files}
    assert set(files) == {"htdemucs.yaml", "955717e8.safetensors"}
    assert files["htdemucs.yaml"].size == len(YAML) and files["htdemucs.yaml"].sha256 == hashlib.sha256(YAML).hexdigest()
    assert files["955717e8.safetensors"].size > 80_000_000 and len(files["955717e8.safetensors"].sha256) == 64


def test_first_build_downloads_and_caches_the_weights_and_the_second_makes_no_request(tmp_path, hub, hub_env, pins):
    song = tmp_path / "song.wav"
    t = np.arange(int(6 * 44100)) / 44100
    sf.write(song, np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]).T, 44100)
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"songs:\n  - {song}\n")

    def build(out: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(REPO / "scripts" / "build.py"), str(sources), "--out", str(tmp_path / out),
               "--no-analyse", "--workers", "1", "--set", f"separate.pins={pins}", "--set", "chunk.chunk_s=5",
               "--set", "chunk.min_tail_s=1"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, **hub_env, "OMP_NUM_THREADS": "1"})

    first = build("a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"downloading the htdemucs weights ({HUB_REPO}" in first.stderr and hub.endpoint in first.stderr
    for name in ("htdemucs.yaml", "955717e8.safetensors"):
        assert hub.requests(f"/resolve/{COMMIT}/{name}") >= 2  # huggingface_hub's HEAD and GET
    snapshot = Path(hub_env["HF_HUB_CACHE"]) / "models--adefossez--HTDemucs" / "snapshots" / COMMIT
    assert (snapshot / "955717e8.safetensors").read_bytes() == hub.repos[HUB_REPO].files["955717e8.safetensors"].body
    before = hub.requests()

    (tmp_path / "a" / "chunks.parquet").unlink()
    second = build("a")  # the same command again: the separator is loaded (and its weights checked) as in the first
    assert second.returncode == 0, second.stderr[-3000:]
    assert hub.requests() == before, hub.hits  # the cache served it: not one request
    assert "downloading" not in second.stderr
    assert (tmp_path / "a" / "chunks.parquet").is_file()


def test_a_download_cut_short_is_refused_and_not_cached(hub, hub_env, pins):
    weights = hub.repos[HUB_REPO].files["955717e8.safetensors"]
    weights.cut_after = len(weights.body) // 3
    with pytest.raises(SeparatorError) as err:
        load_model("htdemucs", pins=pins)
    text = str(err.value)
    assert "cannot download the htdemucs weights" in text and "955717e8.safetensors" in text and hub.endpoint in text
    assert "--offline" in text and "HF_HUB_OFFLINE=1" in text
    assert not any("955717e8" in f or f.endswith(".incomplete") for f in _cached_files(Path(hub_env["HF_HUB_CACHE"])))
    weights.cut_after = None  # the next run fetches it whole
    bag, origin = load_model("htdemucs", pins=pins)
    assert "downloaded from" in origin and bag.sources == tiny_demucs.SOURCES


def test_a_corrupted_download_is_refused_and_not_cached(hub, hub_env, pins):
    hub.repos[HUB_REPO].files["955717e8.safetensors"].corrupt = True
    with pytest.raises(SeparatorError) as err:
        load_model("htdemucs", pins=pins)
    text = str(err.value)
    assert "refused the htdemucs weights" in text and "sha256" in text and "not the pinned" in text
    assert "nothing of it was kept in the cache" in text
    cached = _cached_files(Path(hub_env["HF_HUB_CACHE"]))
    assert not any("955717e8" in f for f in cached), cached
    digest = hashlib.sha256(hub.repos[HUB_REPO].files["955717e8.safetensors"].served()).hexdigest()
    assert not any(digest in f for f in cached)


def test_a_file_in_the_pinned_snapshot_that_differs_is_fetched_again(hub, hub_env, pins):
    load_model("htdemucs", pins=pins)
    snapshot = Path(hub_env["HF_HUB_CACHE"]) / "models--adefossez--HTDemucs" / "snapshots" / COMMIT
    blob = (snapshot / "955717e8.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    gets = hub.requests("955717e8.safetensors")
    bag, origin = load_model("htdemucs", pins=pins)
    assert "downloaded from" in origin and hub.requests("955717e8.safetensors") > gets
    assert (snapshot / "955717e8.safetensors").read_bytes() == hub.repos[HUB_REPO].files["955717e8.safetensors"].body


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_never_downloads_and_says_how_to_provide_the_weights(hub, hub_env, pins, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeparatorError) as err:
        load_model("htdemucs", offline=how == "flag", pins=pins)
    text = str(err.value)
    assert hub.requests() == 0
    assert ("separate.offline=true (--offline)" if how == "flag" else "HF_HUB_OFFLINE=1") in text
    for needle in ("were not found", "separate.weights=", "955717e8.th", "955717e8.safetensors", "separate.model=offline"):
        assert needle in text


def test_an_unreachable_endpoint_fails_within_seconds_naming_it_and_the_offline_routes(hub_env, pins, monkeypatch):
    dead = f"http://127.0.0.1:{_refused_port()}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    start = time.perf_counter()
    with pytest.raises(SeparatorError) as err:
        load_model("htdemucs", pins=pins)
    elapsed = time.perf_counter() - start
    text = str(err.value)
    assert elapsed < 5, f"{elapsed:.1f} s against a dead endpoint"
    assert dead in text and "cannot be reached" in text
    for needle in ("--offline", "HF_HUB_OFFLINE=1", "separate.weights=", "$TORCH_HOME/hub/checkpoints/"):
        assert needle in text, text
    assert _cached_files(Path(hub_env["HF_HUB_CACHE"])) == []


def test_a_model_without_a_pin_is_never_downloaded(hub, hub_env, pins):
    with pytest.raises(SeparatorError, match="no pinned download"):
        load_model("htdemucs_6s", pins=pins)
    assert hub.requests() == 0


def test_a_bad_pins_file_is_named(tmp_path, hub_env):
    bad = tmp_path / "pins.yaml"
    bad.write_text("htdemucs:\n  repo: x/y\n  revision: main\n  files: {a.yaml: {sha256: 00, size: 1}}\n")
    with pytest.raises(SeparatorError, match=r"separate.pins=.*pins.yaml: htdemucs: revision 'main' is not a commit"):
        load_model("htdemucs", pins=bad)
