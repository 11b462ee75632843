"""S3 faults and hostile published data, against real S3 APIs (moto's server on 127.0.0.1).

Faults: the server stopped in the middle of a publish (briefly: the same run completes; for
longer than the retries: the run fails naming the endpoint and the same command, run again,
completes), an object changed after publishing (pull names it and keeps nothing corrupt), a
different build published under an existing version (refused, the bucket untouched). After
every one of them ``latest.json`` names a version whose ``manifest.json`` exists.

Hostile manifests: ``../`` paths, absolute paths, duplicate paths, a file that is also a folder,
a size or a hash that does not match: pull refuses, names the entry and writes nothing outside
``--dest``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from s3_server import StoppableS3, aws_env, s3  # noqa: F401  (fixtures)

from processing.config import PublishConfig
from processing.publish.manifest import MANIFEST_NAME, Manifest, verify_folder
from processing.publish.publish import IntegrityError, PublishError, publish_build, pull_version

NAME = "mm"


def make_build(root: Path, files: int = 40, seed: int = 0, big: bool = False) -> Path:
    """A build-shaped folder: many small WAV chunks (a publish that takes a while), JSON records,
    optionally one 6 MB file (multipart with 5 MiB parts)."""
    rng = np.random.default_rng(seed)
    (root / "audio" / "song").mkdir(parents=True)
    for i in range(files):
        sf.write(str(root / "audio" / "song" / f"song-{i:03d}.wav"), (rng.standard_normal(16000) * 0.1).astype(np.float32),
                 16000, subtype="PCM_16")
    if big:
        (root / "data").mkdir()
        (root / "data" / "train-00000-of-00001.parquet").write_bytes(rng.bytes(6 * 1024 * 1024))
    (root / "report.json").write_text(json.dumps({"settings": {"build": {"name": NAME}, "version": "v1"}, "seed": seed}))
    (root / "config.json").write_text(json.dumps({"build": {"name": NAME}}))
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bucket_state(client, bucket: str) -> dict[str, str]:
    """Every object's key -> ETag (content fingerprint) in the bucket."""
    state = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            state[obj["Key"]] = obj["ETag"]
    return state


def assert_latest_has_manifest(client, bucket: str, prefix: str) -> None:
    """The invariant: latest.json, when present, names a version whose manifest.json exists and matches."""
    try:
        latest = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/{NAME}/latest.json")["Body"].read())
    except client.exceptions.NoSuchKey:
        return
    body = client.get_object(Bucket=bucket, Key=f"{prefix}/{NAME}/{latest['version']}/{MANIFEST_NAME}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == latest["manifest_sha256"]


def assert_pull_verifies(uri: str, endpoint: str, build: Path, dest: Path) -> None:
    """Pull the version and check every file's sha256 against the manifest and the build itself."""
    got = pull_version(uri, dest, endpoint_url=endpoint)
    manifest = Manifest.from_json((got / MANIFEST_NAME).read_bytes())
    assert not verify_folder(got, manifest)
    local = {p.relative_to(build).as_posix(): sha256(p) for p in build.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(build).parts)}
    assert {f.path: f.sha256 for f in manifest.files} == local
    assert {p.relative_to(got).as_posix(): sha256(p) for p in got.rglob("*") if p.is_file()} == {**local, MANIFEST_NAME: sha256(got / MANIFEST_NAME)}


def _publish_cli(build: Path, uri: str, endpoint: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "publish.py"), str(build), "--s3", uri, "--endpoint-url",
                             endpoint, "--version", "v1", "--no-progress", "--max-concurrency", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _wait_for_objects(server: StoppableS3, bucket: str, prefix: str, count: int, proc: subprocess.Popen, timeout: float = 60):
    client = server.client()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        keys = [k for k in bucket_state(client, bucket) if k.startswith(prefix)]
        if len(keys) >= count:
            return keys
        assert proc.poll() is None, f"publish ended before the fault: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} objects landed in {timeout} s")


@pytest.fixture(scope="module")
def stoppable():
    server = StoppableS3().start()
    yield server
    server.stop()


@pytest.fixture
def up(stoppable, aws_env):  # noqa: F811
    if not stoppable.running:
        stoppable.start()
    return stoppable


# ----------------------------------------------------------------------------- server stopped mid-publish

@pytest.mark.slow
def test_server_stopped_briefly_mid_publish_the_same_run_completes(up, tmp_path):
    build = make_build(tmp_path / "build", big=True)
    bucket = up.new_bucket()
    uri = f"s3://{bucket}/sets"
    proc = _publish_cli(build, uri, up.endpoint_url, "--set", "publish.multipart_threshold_mb=5",
                        "--set", "publish.multipart_chunksize_mb=5")
    landed = _wait_for_objects(up, bucket, f"sets/{NAME}/v1/", 5, proc)
    up.stop()  # connections cut, new ones refused
    time.sleep(2.0)
    assert proc.poll() is None  # still retrying, not given up
    up.start()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert f"{uri}/{NAME}/v1: published" in out and 5 <= len(landed) < 43
    assert_latest_has_manifest(up.client(), bucket, "sets")
    assert_pull_verifies(f"{uri}/{NAME}/latest", up.endpoint_url, build, tmp_path / "pulled")


@pytest.mark.slow
def test_server_down_longer_than_the_retries_the_same_command_completes_after_restart(up, tmp_path):
    build = make_build(tmp_path / "build", seed=1)
    bucket = up.new_bucket()
    uri = f"s3://{bucket}/sets"
    fast_give_up = ("--set", "publish.max_attempts=2", "--set", "publish.timeout_s=3")
    proc = _publish_cli(build, uri, up.endpoint_url, *fast_give_up)
    _wait_for_objects(up, bucket, f"sets/{NAME}/v1/", 4, proc)
    up.stop()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    assert up.endpoint_url in err and bucket in err, err  # names where it could not write
    up.start()
    state = bucket_state(up.client(), bucket)
    assert f"sets/{NAME}/v1/{MANIFEST_NAME}" not in state and f"sets/{NAME}/latest.json" not in state
    partial = len([k for k in state if k.startswith(f"sets/{NAME}/v1/")])
    assert 4 <= partial < 42

    again = _publish_cli(build, uri, up.endpoint_url, *fast_give_up)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    assert f"skipped {partial}" in out  # resumed: what had landed was not sent again
    assert_latest_has_manifest(up.client(), bucket, "sets")
    assert_pull_verifies(f"{uri}/{NAME}/v1", up.endpoint_url, build, tmp_path / "pulled")


# ----------------------------------------------------------------------------- published data changed or replaced

@pytest.fixture
def published(s3, aws_env, tmp_path):  # noqa: F811
    build = make_build(tmp_path / "build", files=6, seed=2)
    cfg = PublishConfig(s3_uri=f"s3://{s3.new_bucket()}/sets", endpoint_url=s3.endpoint_url)
    publish_build(build, cfg, NAME, "v1", progress=False)
    return build, cfg


def test_an_object_changed_after_publishing_is_named_and_nothing_corrupt_is_kept(s3, published, tmp_path):  # noqa: F811
    build, cfg = published
    bucket = cfg.s3_uri[5:].split("/")[0]
    client = s3.client()
    key = f"sets/{NAME}/v1/audio/song/song-00%d.wav"
    flipped = bytearray((build / "audio/song/song-000.wav").read_bytes())
    flipped[len(flipped) // 2] ^= 0x40
    client.put_object(Bucket=bucket, Key=key % 0, Body=bytes(flipped))  # same size, other bytes
    client.put_object(Bucket=bucket, Key=key % 1, Body=(build / "audio/song/song-001.wav").read_bytes()[:1000])  # cut short
    client.delete_object(Bucket=bucket, Key=key % 2)  # gone

    dest = tmp_path / "pulled"
    with pytest.raises(IntegrityError) as info:
        pull_version(f"{cfg.s3_uri}/{NAME}/latest", dest, endpoint_url=cfg.endpoint_url)
    message = str(info.value)
    assert "3 file(s) do not match the manifest" in message
    assert "audio/song/song-000.wav" in message and "sha256" in message
    assert "audio/song/song-001.wav" in message and "size 1000 bytes" in message
    assert "audio/song/song-002.wav" in message and "missing from the bucket" in message
    # nothing corrupt kept: what is there verifies, the three are absent, no partial files, no manifest
    manifest = Manifest.from_json(client.get_object(Bucket=bucket, Key=f"sets/{NAME}/v1/{MANIFEST_NAME}")["Body"].read())
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert present == {f.path for f in manifest.files} - {f"audio/song/song-00{i}.wav" for i in range(3)}
    assert {p.path for p in verify_folder(dest, manifest)} == {f"audio/song/song-00{i}.wav" for i in range(3)}

    for i in range(3):  # repaired in the bucket: the same pull completes, fetching only those three
        client.put_object(Bucket=bucket, Key=key % i, Body=(build / f"audio/song/song-00{i}.wav").read_bytes())
    assert_pull_verifies(f"{cfg.s3_uri}/{NAME}/latest", cfg.endpoint_url, build, dest)


def test_a_different_build_under_an_existing_version_is_refused_and_the_bucket_untouched(s3, published, tmp_path):  # noqa: F811
    build, cfg = published
    bucket = cfg.s3_uri[5:].split("/")[0]
    before = bucket_state(s3.client(), bucket)
    other = make_build(tmp_path / "other", files=6, seed=3)  # same file names, other audio
    with pytest.raises(PublishError, match=r"version v1 already exists with different content \(\d+ file\(s\) differ"):
        publish_build(other, cfg, NAME, "v1", progress=False)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "publish.py"), str(other), "--s3", cfg.s3_uri,
                           "--endpoint-url", cfg.endpoint_url, "--version", "v1", "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "already exists with different content" in proc.stderr
    assert bucket_state(s3.client(), bucket) == before
    assert_latest_has_manifest(s3.client(), bucket, "sets")
    assert_pull_verifies(f"{cfg.s3_uri}/{NAME}/latest", cfg.endpoint_url, build, tmp_path / "pulled")


def test_latest_never_names_a_version_without_its_manifest(s3, published, tmp_path):  # noqa: F811
    """An interrupted publish of v2 (at every file) never moves latest; a finished one does."""
    build, cfg = published
    bucket = cfg.s3_uri[5:].split("/")[0]
    client = s3.client()
    v2 = make_build(tmp_path / "v2", files=6, seed=4)
    files = 8
    for stop_at in range(1, files + 1):
        def interrupt(entry, seen=[]):  # noqa: B006  (one list per publish call)
            seen.append(entry.path)
            assert_latest_has_manifest(client, bucket, "sets")
            if len(seen) == stop_at:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            publish_build(v2, cfg, NAME, f"v2-{stop_at}", progress=False, on_file_done=interrupt)
        latest = json.loads(client.get_object(Bucket=bucket, Key=f"sets/{NAME}/latest.json")["Body"].read())
        assert latest["version"] == "v1"
        assert_latest_has_manifest(client, bucket, "sets")
    publish_build(v2, cfg, NAME, "v2", progress=False)
    assert json.loads(client.get_object(Bucket=bucket, Key=f"sets/{NAME}/latest.json")["Body"].read())["version"] == "v2"
    assert_latest_has_manifest(client, bucket, "sets")


# ----------------------------------------------------------------------------- hostile manifests

def _tamper(entries: list[dict]) -> dict[str, list[dict]]:
    good = entries[0]
    other = entries[1]
    return {
        "../ path": [{**good, "path": "../escape.wav"}],
        "../ inside a path": [{**good, "path": "audio/../../escape.wav"}],
        "absolute path": [{**good, "path": "/tmp/music-mixer-escape.wav"}],
        "backslash path": [{**good, "path": "..\\escape.wav"}],
        "hidden path": [{**good, "path": ".ssh/authorized_keys"}],
        "duplicate path": [good, {**other, "path": good["path"]}],
        "file and folder at once": [{**good, "path": "audio"}, good],
        "sha256 not hex": [{**good, "sha256": "not-a-hash"}],
        "negative size": [{**good, "size": -1}],
        "size mismatch": [{**good, "size": good["size"] + 1}],
        "hash mismatch": [{**good, "sha256": hashlib.sha256(b"other bytes").hexdigest()}],
    }


HOSTILE = {
    "../ path": ("'../escape.wav'", "unsafe file path"),
    "../ inside a path": ("'audio/../../escape.wav'", "unsafe file path"),
    "absolute path": ("'/tmp/music-mixer-escape.wav'", "unsafe file path"),
    "backslash path": ("'..\\\\escape.wav'", "unsafe file path"),
    "hidden path": ("'.ssh/authorized_keys'", "hidden path"),
    "duplicate path": ("'audio/song/song-000.wav'", "duplicate path"),
    "file and folder at once": ("'audio'", "listed as a file and is also a folder"),
    "sha256 not hex": ("'audio/song/song-000.wav'", "is not 64 lowercase hex digits"),
    "negative size": ("'audio/song/song-000.wav'", "negative size"),
    "size mismatch": ("audio/song/song-000.wav", "manifest says"),
    "hash mismatch": ("audio/song/song-000.wav", "manifest says"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_manifest_is_refused_naming_the_entry_and_nothing_lands_outside_dest(s3, published, tmp_path, case):  # noqa: F811
    build, cfg = published
    bucket = cfg.s3_uri[5:].split("/")[0]
    client = s3.client()
    real = json.loads(client.get_object(Bucket=bucket, Key=f"sets/{NAME}/v1/{MANIFEST_NAME}")["Body"].read())
    files = sorted(real["files"], key=lambda f: f["path"])
    evil_files = _tamper(files)[case]
    for entry in evil_files:  # the bytes a naive client would fetch, under the very keys the entries name
        client.put_object(Bucket=bucket, Key=f"sets/{NAME}/evil/{entry['path']}",
                          Body=(build / files[0]["path"]).read_bytes())
    evil = dict(real, version="evil", files=evil_files, file_count=len(evil_files))
    body = json.dumps(evil).encode()
    client.put_object(Bucket=bucket, Key=f"sets/{NAME}/evil/{MANIFEST_NAME}", Body=body)
    client.put_object(Bucket=bucket, Key=f"sets/{NAME}/latest.json", Body=json.dumps(
        {"format": "music-mixer-latest", "name": NAME, "version": "evil", "manifest": f"evil/{MANIFEST_NAME}",
         "manifest_sha256": hashlib.sha256(body).hexdigest(), "published_at": "2099-01-01T00:00:00"}).encode())

    sandbox = tmp_path / "sandbox"
    (sandbox / "neighbour").mkdir(parents=True)
    dest = sandbox / "inside" / "dest"
    named, why = HOSTILE[case]
    with pytest.raises(PublishError) as info:
        pull_version(f"{cfg.s3_uri}/{NAME}/latest", dest, endpoint_url=cfg.endpoint_url)
    assert named in str(info.value) and why in str(info.value), str(info.value)
    outside = [p for p in sandbox.rglob("*") if not p.is_relative_to(dest)]
    assert sorted(p.relative_to(sandbox).as_posix() for p in outside) in (["inside", "neighbour"], ["neighbour"])
    assert not Path("/tmp/music-mixer-escape.wav").exists() and not (tmp_path / "escape.wav").exists()
    if isinstance(info.value, IntegrityError):  # bytes that did not verify are not kept, nor any partial file
        assert not any(dest.rglob("*.wav")) and not any(p.name.startswith(".") for p in dest.rglob("*"))
        assert not (dest / MANIFEST_NAME).exists()
    else:  # refused before any download: nothing written at all
        assert not dest.exists()


def test_pull_cli_refuses_a_hostile_manifest_with_exit_1(s3, published, tmp_path):  # noqa: F811
    build, cfg = published
    bucket = cfg.s3_uri[5:].split("/")[0]
    client = s3.client()
    real = json.loads(client.get_object(Bucket=bucket, Key=f"sets/{NAME}/v1/{MANIFEST_NAME}")["Body"].read())
    real["files"][0]["path"] = "../../../escape.wav"
    client.put_object(Bucket=bucket, Key=f"sets/{NAME}/v1/{MANIFEST_NAME}", Body=json.dumps(real).encode())
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "pull.py"), f"{cfg.s3_uri}/{NAME}/v1", "--dest",
                           str(tmp_path / "dest"), "--endpoint-url", cfg.endpoint_url, "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "unsafe file path '../../../escape.wav'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "dest").exists() and not any(tmp_path.parent.glob("escape.wav"))
