"""scripts/build.py as a user runs it: a sources file in, a published version out; every common format decodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import pyarrow.parquet as pq

from conftest import DRUM_BASS, REPO, VIBE_ACE
from proc_tree import run_watching
from s3_server import aws_env, s3  # noqa: F401  (fixtures)

from processing import audio_io
from processing.publish.publish import pull_version


def _build(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "build.py"), *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


def test_build_then_publish_to_s3_and_pull_it_back(s3, aws_env, shared_audio, tmp_path):  # noqa: F811
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"songs:\n  - path: {shared_audio / DRUM_BASS}\n    genre: hip hop\n    licence: CC-BY-NC-3.0\n"
                       "config:\n  analyse: {enabled: false}\n")
    uri = f"s3://{s3.new_bucket()}/sets"
    out = tmp_path / "out"
    proc = _build(str(sources), "--out", str(out), "--model", "none", "--no-progress", "--publish", uri,
                  "--endpoint-url", s3.endpoint_url, "--version", "v1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Published music_mixer v1 to {uri}" in proc.stdout
    got = pull_version(f"{uri}/music_mixer/latest", tmp_path / "pulled", endpoint_url=s3.endpoint_url)
    rows = pq.read_table(got / "chunks.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["source_genre"] == "hip hop"
    assert (got / rows[0]["audio_path"]).read_bytes() == (out / rows[0]["audio_path"]).read_bytes()
    assert not (got / ".cache").exists()
    again, pid, started = run_watching([sys.executable, str(REPO / "scripts" / "build.py"), str(sources), "--out",
                                        str(out), "--model", "none", "--no-progress", "--publish", uri,
                                        "--endpoint-url", s3.endpoint_url, "--version", "v1"], env=dict(os.environ))
    assert again.returncode == 0 and "cache: " in again.stdout and " 0 computed" in again.stdout
    # the cache answered the whole rerun in the build's own process: no worker, not even their fork server, started
    assert not [c for c in started if "forkserver" in c or "multiprocessing" in c], started
    assert [w.rsplit(":", 1)[1] for w in json.loads((out / "report.json").read_text())["workers"]] == [str(pid)]


def test_publish_failure_is_reported_with_the_bucket_and_exit_code_4(s3, aws_env, shared_audio, tmp_path):  # noqa: F811
    sources = tmp_path / "s.txt"
    sources.write_text(f"{shared_audio / DRUM_BASS}\n")
    proc = _build(str(sources), "--out", str(tmp_path / "out"), "--model", "none", "--no-analyse", "--no-progress",
                  "--publish", "s3://no-such-bucket-here/x", "--endpoint-url", s3.endpoint_url)
    assert proc.returncode == 4
    assert "no-such-bucket-here" in proc.stderr
    assert (tmp_path / "out" / "chunks.parquet").is_file()  # the build itself is kept


@pytest.mark.parametrize("ext, codec", [("mp3", "libmp3lame"), ("m4a", "aac"), ("opus", "libopus"), ("flac", "flac"),
                                        ("wav", "pcm_s16le")])
def test_common_formats_decode_to_the_same_audio(shared_audio, tmp_path, ext, codec):
    ref = audio_io.decode(shared_audio / VIBE_ACE)
    src = tmp_path / "ref.wav"
    audio_io.write(src, type(ref)(ref.samples[:, : 5 * ref.sample_rate], ref.sample_rate), subtype="PCM_16")
    encoded = tmp_path / f"clip.{ext}"
    subprocess.run([audio_io.ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-c:a", codec, str(encoded)], check=True)
    got = audio_io.decode(encoded)
    assert got.channels == 2 and got.sample_rate in (44100, 48000)
    assert got.duration_s == pytest.approx(5.0, abs=0.1)
    n = 44100 * 4
    if got.sample_rate == 44100:  # lossy codecs delay the signal: compare levels, not samples
        level = lambda a: 20 * np.log10(np.sqrt(np.mean(np.square(a[:, :n]))))  # noqa: E731
        assert level(got.samples) == pytest.approx(level(ref.samples), abs=1.0)
