"""scripts/publish.py and scripts/pull.py as a user runs them, against moto's S3 server on loopback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import BIRD, REPO, SPEECH
from s3_server import aws_env, s3  # noqa: F401  (fixtures)

from processing import audio_io


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_publish_then_list_and_pull_from_the_command_line(s3, aws_env, shared_audio, tmp_path):  # noqa: F811
    build = tmp_path / "build"
    (build / "audio").mkdir(parents=True)
    shutil.copy(shared_audio / BIRD, build / "audio" / "bird.ogg")
    (build / "report.json").write_text(json.dumps({"settings": {"build": {"name": "tiny"}, "version": "2026.11.24-1"}}))  # as processing.report writes it
    uri = f"s3://{s3.new_bucket()}/sets"

    dry = _run("publish.py", str(build), "--s3", uri, "--endpoint-url", s3.endpoint_url, "--dry-run", "--no-progress")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "upload audio/bird.ogg" in dry.stdout

    done = _run("publish.py", str(build), "--s3", uri, "--endpoint-url", s3.endpoint_url, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"{uri}/tiny/2026.11.24-1: published; 2 files" in done.stdout

    listed = _run("pull.py", f"{uri}/tiny", "--list", "--endpoint-url", s3.endpoint_url)
    assert listed.returncode == 0 and listed.stdout.split() == ["2026.11.24-1"], listed.stderr

    pulled = _run("pull.py", f"{uri}/tiny/latest", "--dest", str(tmp_path / "got"), "--endpoint-url", s3.endpoint_url, "--no-progress")
    assert pulled.returncode == 0, pulled.stderr
    assert Path(pulled.stdout.strip()) == tmp_path / "got"
    assert audio_io.file_sha256(tmp_path / "got" / "audio" / "bird.ogg") == audio_io.file_sha256(shared_audio / BIRD)

    shutil.copy(shared_audio / SPEECH, build / "audio" / "bird.ogg")  # same version, other bytes
    refused = _run("publish.py", str(build), "--s3", uri, "--endpoint-url", s3.endpoint_url, "--no-progress")
    assert refused.returncode == 1 and "already exists with different content" in refused.stderr

    assert _run("publish.py", str(build)).returncode == 2  # nowhere to publish to
    missing = _run("pull.py", f"{uri}/tiny/9.9", "--endpoint-url", s3.endpoint_url, "--dest", str(tmp_path / "x"))
    assert missing.returncode == 1 and "tiny/9.9/manifest.json: not found" in missing.stderr
