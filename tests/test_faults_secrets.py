"""Secrets are never written: not by a build, a publish, a pull, nor into the bucket.

A build runs through ``scripts/build.py -v`` with AWS_SECRET_ACCESS_KEY and HF_TOKEN in its
environment, a proxy URL with a password and a cookies file in its config, and really uses them:
a members-only song is fetched through the proxy with the cookie, a missing one fails through
the proxy, and the build is published to S3 (moto). Then ``scripts/publish.py`` pushes to the Hub
(which cannot be reached: the token is read and used for the attempt) and ``scripts/pull.py``
pulls the version. Every file those commands wrote (the build with its cache and downloads, the
pulled copy, what they printed) and every object in the bucket (key, metadata, body) is
searched for each secret, as text, percent-encoded and base64-encoded.
"""
from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import REPO
from http_fixtures import FixtureServer
from s3_server import aws_env, s3  # noqa: F401  (fixtures)

from processing.demo.synth import synth_song


def _forms(secret: str, user: str | None = None) -> set[bytes]:
    """The ways a secret could be written: as is, percent-encoded, base64 (alone, or user:secret as
    in a Basic/Proxy-Authorization header)."""
    plain = [secret] + ([f"{user}:{secret}"] if user else [])
    forms = {secret.encode(), urllib.parse.quote(secret, safe="").encode()}
    for text in plain:
        forms.add(base64.b64encode(text.encode()).rstrip(b"="))
    return forms


def _search(blobs: dict[str, bytes], secret_forms: dict[str, set[bytes]]) -> list[tuple[str, str]]:
    return [(where, name) for where, blob in blobs.items() for name, forms in secret_forms.items()
            if any(form in blob for form in forms)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _bucket(client, bucket: str) -> dict[str, bytes]:
    blobs = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            got = client.get_object(Bucket=bucket, Key=obj["Key"])
            meta = repr(sorted(got.get("Metadata", {}).items())).encode()
            blobs[f"s3://{bucket}/{obj['Key']}"] = obj["Key"].encode() + b"\n" + meta + b"\n" + got["Body"].read()
    return blobs


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_secret_reaches_any_output_file_or_object(s3, aws_env, tmp_path, monkeypatch):  # noqa: F811
    aws_secret = "aws-" + secrets.token_hex(16)
    hf_token = "hf_" + secrets.token_hex(16)
    proxy_password = "proxy-" + secrets.token_hex(12)
    cookie = "cookie-" + secrets.token_hex(12)
    forms = {"AWS_SECRET_ACCESS_KEY": _forms(aws_secret), "HF_TOKEN": _forms(hf_token),
             "proxy password": _forms(proxy_password, user="mixer"), "cookie": _forms(cookie)}

    server = FixtureServer().start()  # also the HTTP proxy: a proxied request names the full URL
    try:
        song = synth_song(bpm=118, key="D", duration_s=9, vocals=False, seed=11).mix.samples.T
        wav = tmp_path / "members.wav"
        sf.write(str(wav), song, 44100, subtype="PCM_16")
        server.add("http://members.invalid/song.wav", wav, "audio/wav", require_cookie=f"session={cookie}")
        local = tmp_path / "local.wav"
        sf.write(str(local), synth_song(bpm=96, key="G", duration_s=9, vocals=False, seed=12).mix.samples.T, 44100)

        inputs = tmp_path / "inputs"
        inputs.mkdir()
        cookies = inputs / "cookies.txt"
        cookies.write_text(f"# Netscape HTTP Cookie File\nmembers.invalid\tFALSE\t/\tFALSE\t0\tsession\t{cookie}\n")
        proxy = server.base.replace("http://", f"http://mixer:{proxy_password}@")
        (inputs / "build.yaml").write_text(f"ingest:\n  proxy: {proxy}\n  cookies_file: {cookies}\n  retries: 0\n"
                                           "chunk: {chunk_s: 8}\n")
        (inputs / "sources.yaml").write_text(f"songs:\n  - url: http://members.invalid/song.wav\n    title: Members Only\n"
                                             f"  - url: http://members.invalid/gone.wav\n  - path: {local}\n")
        # the search finds what is there: the user's own input files hold two of the secrets
        assert {name for _, name in _search(_files(inputs), forms)} == {"proxy password", "cookie"}

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
        monkeypatch.setenv("HF_TOKEN", hf_token)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_refused_port()}")  # the Hub, unreachable
        bucket = s3.new_bucket()
        uri = f"s3://{bucket}/sets"
        out, pulled, logs = tmp_path / "out", tmp_path / "pulled", tmp_path / "logs"
        logs.mkdir()
        commands = {
            "build": ["build.py", str(inputs / "sources.yaml"), "--config", str(inputs / "build.yaml"), "--out", str(out),
                      "--model", "none", "--version", "v1", "--publish", uri, "--endpoint-url", s3.endpoint_url, "-v"],
            "publish": ["publish.py", str(out), "--s3", uri, "--endpoint-url", s3.endpoint_url, "--hub", "me/music-set"],
            "pull": ["pull.py", f"{uri}/music_mixer/latest", "--dest", str(pulled), "--endpoint-url", s3.endpoint_url],
        }
        codes = {}
        for name, args in commands.items():
            proc = subprocess.run([sys.executable, str(REPO / "scripts" / args[0]), *args[1:], "--no-progress"],
                                  capture_output=True, text=True, timeout=300, env=dict(os.environ))
            (logs / f"{name}.stdout").write_text(proc.stdout)
            (logs / f"{name}.stderr").write_text(proc.stderr)
            codes[name] = proc.returncode
    finally:
        server.stop()

    # the secrets were really in play: the cookie and proxy fetched the members-only song, the build published,
    # the Hub push was attempted with the token (and failed: unreachable), the pull verified the version
    assert codes == {"build": 0, "publish": 1, "pull": 0}, (logs / "build.stderr").read_text()[-3000:]
    assert server.hits.get("http://members.invalid/song.wav", 0) >= 1
    import pyarrow.parquet as pq

    titles = {r["source_title"] for r in pq.read_table(out / "chunks.parquet").to_pylist()}
    assert "Members Only" in titles
    assert "members.invalid/gone.wav" in (out / "failures.jsonl").read_text()
    assert "Connection refused" in (logs / "publish.stderr").read_text() or "push failed" in (logs / "publish.stderr").read_text()

    searched = {**_files(out), **_files(pulled), **_files(logs), **_bucket(s3.client(), bucket)}
    kinds = {Path(k).name for k in searched}
    for expected in ("report.json", "failures.jsonl", "config.json", "build_info.json", "dataset_card.md", "chunks.parquet",
                     "manifest.json", "build.stdout", "build.stderr", "publish.stderr", "pull.stdout"):
        assert expected in kinds, f"{expected} was not among the searched files"
    assert any(".cache/downloads" in k and k.endswith(".info.json") for k in searched)  # the download cache too
    found = _search(searched, forms)
    print(f"\nsecrets: {len(forms)} kinds searched in {len(searched)} files and objects, {len(found)} found")
    assert not found, found
    assert "mixer:***@" in (out / "config.json").read_text()  # the proxy is recorded, its password masked
