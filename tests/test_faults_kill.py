"""kill -9 at many moments: the rerun gives the same dataset, with no duplicate or partial files.

The build (``scripts/build.py``) is killed with SIGKILL at one moment after another (mid-download,
after the first separation, chunk and analysis land, while the table and each export are being
written), each rerun of the same command going a little further, until one completes. The result
must equal, file for file and byte for byte, a build that was never interrupted (report.json
aside: it records timings and cache use; its counts and failures must agree). A publish
(``scripts/publish.py``) is killed the same way: after the first objects land, in the middle of
a multipart upload, halfway; the rerun must complete, leave nothing stale or unfinished in the
bucket, and a pull must verify every sha256.

The moments are seen from outside, as files appearing (or being rewritten) on disk and objects
in the bucket, so the test does not depend on how the pipeline is organised inside.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import REPO
from http_fixtures import FixtureServer
from s3_server import aws_env, s3  # noqa: F401  (fixtures)

from processing.demo.synth import synth_song
from processing.publish.manifest import MANIFEST_NAME, Manifest, verify_folder
from processing.publish.publish import pull_version

# (label, glob under the build folder): the build is killed as soon as a file matching the glob
# appears or is rewritten (a new size or mtime) during the current run
BUILD_MOMENTS = [
    ("mid-download (transfer stalled)", ".cache/downloads/.partial/*.part"),
    ("first separation stored", ".cache/separate/**/done.json"),
    ("first chunk placed in the build", "audio/**/*.wav"),
    ("first analysis stored", ".cache/analyse/**/done.json"),
    ("second analysis stored", ".cache/analyse/**/done.json#2"),
    ("table written", "chunks.parquet"),
    ("Parquet splits being written", "data/*.parquet"),
    ("audiocraft sidecars being written", "audio/**/*.json"),
    ("plots being drawn", "plots/*.png"),
    ("HF folder being written", ".hf.partial/**/*"),  # written aside, then renamed into place
    ("build_info written", "build_info.json"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*") if root.exists() else []:
        try:
            if p.is_file():
                st = p.stat()
                out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:  # renamed or removed under us
            pass
    return out


def _fresh(root: Path, pattern: str, before: dict[str, tuple[int, int]]) -> int:
    """How many files matching ``pattern`` are new or rewritten since ``before``."""
    pattern = pattern.split("#")[0]
    try:
        matches = list(root.glob(pattern))
    except FileNotFoundError:  # a folder the walk entered was renamed away (a cache entry landing): next poll
        return 0
    count = 0
    for p in matches:
        try:
            if p.is_file():
                rel = p.relative_to(root).as_posix()
                st = p.stat()
                if before.get(rel) != (st.st_size, st.st_mtime_ns) and st.st_size > 0:
                    count += 1
        except FileNotFoundError:
            pass
    return count


def _kill_when(cmd: list[str], trigger: Callable[[], bool], timeout: float = 240) -> tuple[bool, str]:
    """Run ``cmd``; SIGKILL its whole process group once ``trigger()`` holds. (killed?, stderr tail)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ))
    end = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < end:
            if trigger():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True, ""
            time.sleep(0.005)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{cmd[1]} neither finished nor reached the moment in {timeout} s")
        return False, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).parts[0].startswith(".")}


def _comparable_report(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    counts = {k: v for k, v in report["counts"].items() if k != "stale_files_removed"}
    failures = sorted((f["item"], f["stage"], f["kind"]) for f in report["failures"])
    return {"counts": counts, "failures": failures, "duplicates": report["duplicates"], "excluded": report["excluded"],
            "hours": report["hours"], "distributions": report["distributions"], "dataset": report["dataset"],
            "version": report["settings"]["version"]}


@pytest.mark.slow
def test_build_killed_at_every_moment_then_rerun_gives_the_same_dataset(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i, (bpm, key) in enumerate([(100, "C"), (112, "E"), (124, "G")]):
        song = synth_song(bpm=bpm, key=key, duration_s=9, vocals=False, seed=20 + i)
        sf.write(str(inputs / f"song-{i}.wav"), song.mix.samples.T, 44100, subtype="PCM_16")
    (inputs / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 64)
    served = inputs / "served.wav"
    sf.write(str(served), synth_song(bpm=136, key="A", duration_s=9, vocals=False, seed=30).mix.samples.T, 44100,
             subtype="PCM_16")
    server = FixtureServer().start()
    try:
        url = server.add("/songs/served.wav", served, "audio/wav")
        (inputs / "sources.txt").write_text(f"{url}\nsong-0.wav\nbroken.wav\nsong-1.wav\nsong-2.wav\n")
        out = tmp_path / "out"
        cmd = [sys.executable, str(REPO / "scripts" / "build.py"), str(inputs / "sources.txt"), "--out", str(out),
               "--model", "none", "--chunk-seconds", "8", "--no-progress", "--set", "ingest.retries=1",
               "--set", "ingest.retry_backoff_s=0.05", "--set", "ingest.socket_timeout_s=2"]

        reference = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert reference.returncode == 0, reference.stderr[-3000:]
        out.rename(tmp_path / "reference")
        expected, expected_report = _digests(tmp_path / "reference"), _comparable_report(tmp_path / "reference")
        assert len(pq.read_table(tmp_path / "reference" / "chunks.parquet")) == 4

        server.routes["/songs/served.wav"].stall_after = 60_000  # the first run stalls mid-download
        killed: list[str] = []
        missed: list[str] = []
        for label, pattern in BUILD_MOMENTS:
            before = _snapshot(out)
            need = int(pattern.split("#")[1]) if "#" in pattern else 1
            was_killed, err = _kill_when(cmd, lambda: _fresh(out, pattern, before) >= need)
            if not was_killed:  # the run finished before the moment came: start again from nothing
                missed.append(label)
                assert "Traceback" not in err, err
                shutil.rmtree(out)
                continue
            killed.append(label)
            server.routes["/songs/served.wav"].stall_after = None
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr[-3000:]
    finally:
        server.stop()

    got = _digests(out)
    differing = sorted(k for k in set(got) | set(expected) if k != "report.json" and got.get(k) != expected.get(k))
    assert not differing, f"after kills at {killed}: files differ from an uninterrupted build: {differing[:10]}"
    assert _comparable_report(out) == expected_report
    rows = pq.read_table(out / "chunks.parquet").to_pylist()
    assert len({r["chunk_id"] for r in rows}) == len(rows) == 4  # no duplicate rows
    assert sorted(p.relative_to(out).as_posix() for p in (out / "audio").rglob("*.wav")) == sorted(r["audio_path"] for r in rows)
    leftovers = [p for p in out.rglob("*") if p.is_file() and (p.name.endswith((".partial", ".part", ".tmp", ".ytdl"))
                 or (any(part.startswith(".") for part in p.relative_to(out).parts)
                     and ".cache" not in p.relative_to(out).parts))]
    assert not leftovers, leftovers
    lines = (out / "failures.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 1
    print(f"\nbuild kill -9 points: {len(killed)} survived / {len(killed)} tried ({', '.join(killed)}); "
          f"missed (run ended first): {missed or 'none'}")
    assert len(killed) >= 8, f"only {len(killed)} moments were hit: {killed}; missed {missed}"


# ----------------------------------------------------------------------------- publish

def _make_publishable(root: Path) -> Path:
    rng = np.random.default_rng(5)
    (root / "audio").mkdir(parents=True)
    for i in range(30):
        sf.write(str(root / "audio" / f"c{i:02d}.wav"), (rng.standard_normal(24000) * 0.1).astype(np.float32), 24000)
    (root / "data").mkdir()
    (root / "data" / "train-00000-of-00001.parquet").write_bytes(rng.bytes(32 * 1024 * 1024))  # 7 parts of 5 MiB
    (root / "report.json").write_text(json.dumps({"settings": {"build": {"name": "mm"}, "version": "v1"}}))
    (root / "config.json").write_text(json.dumps({"build": {"name": "mm"}}))
    return root


@pytest.mark.slow
def test_publish_killed_at_several_moments_then_rerun_completes_and_pulls_verified(s3, aws_env, tmp_path):  # noqa: F811
    build = _make_publishable(tmp_path / "build")
    bucket = s3.new_bucket()
    client = s3.client()
    prefix = "sets/mm/v1/"
    cmd = [sys.executable, str(REPO / "scripts" / "publish.py"), str(build), "--s3", f"s3://{bucket}/sets", "--endpoint-url",
           s3.endpoint_url, "--no-progress", "--max-concurrency", "1", "--set", "publish.multipart_threshold_mb=5",
           "--set", "publish.multipart_chunksize_mb=5"]

    def objects() -> int:
        return client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)

    def uploads() -> set[str]:
        return {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])}

    def a_new_multipart_upload() -> Callable[[], bool]:
        open_before = uploads()
        return lambda: bool(uploads() - open_before)

    # files go up in path order, one at a time: 30 chunks, config.json, the 32 MB Parquet file (multipart), report.json
    moments: list[tuple[str, Callable[[], Callable[[], bool]]]] = [
        ("first objects landed", lambda: lambda: objects() >= 2),
        ("half the files landed", lambda: lambda: objects() >= 16),
        ("multipart upload in progress", a_new_multipart_upload),
        ("multipart upload in progress again (after the rerun aborted the first)", a_new_multipart_upload),
    ]
    killed, missed = [], []
    for label, make_trigger in moments:
        was_killed, err = _kill_when(cmd, make_trigger(), timeout=180)
        (killed if was_killed else missed).append(label)
        listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert (prefix + MANIFEST_NAME in listed) or ("sets/mm/latest.json" not in listed)  # latest only after its manifest
        if not was_killed:
            assert "Traceback" not in err, err
            break  # it finished: later moments can no longer happen
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]

    keys = {o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="sets/")
            for o in page.get("Contents", [])}
    manifest = Manifest.from_json(client.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read())
    assert keys == {prefix + f.path for f in manifest.files} | {prefix + MANIFEST_NAME, "sets/mm/latest.json"}  # nothing stale
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # nothing unfinished
    dest = pull_version(f"s3://{bucket}/sets/mm/latest", tmp_path / "pulled", endpoint_url=s3.endpoint_url)
    assert not verify_folder(dest, manifest)
    assert {f.path: f.sha256 for f in manifest.files} == {k: v for k, v in _digests(build).items()}
    print(f"\npublish kill -9 points: {len(killed)} survived / {len(killed)} tried ({', '.join(killed)}); "
          f"missed: {missed or 'none'}")
    assert len(killed) >= 3, (killed, missed)
