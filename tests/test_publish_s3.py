"""Publishing builds to a real S3 API (moto's server on 127.0.0.1) and pulling them back."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BIRD, DRUM_BASS, SONG_WITH_VOCALS, SPEECH
from s3_server import aws_env, s3  # noqa: F401  (fixtures)

from processing import __version__, audio_io
from processing.config import PipelineConfig, PublishConfig
from processing.publish.manifest import MANIFEST_NAME, Manifest, ManifestError, check_relative_path, scan_build
from processing.publish.publish import IntegrityError, PublishError, list_versions, parse_s3_uri, publish_build, pull_version

BIG = "audio/train/long_stereo.wav"  # > multipart threshold: sent in 2 parts


@pytest.fixture(scope="session")
def build_template(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    """A small build: real audio (ogg + wav), a Parquet table, report/config JSON, and hidden junk."""
    root = tmp_path_factory.mktemp("build") / "build"
    (root / "audio" / "train").mkdir(parents=True)
    (root / "audio" / "validation").mkdir(parents=True)
    shutil.copy(shared_audio / BIRD, root / "audio" / "train" / "bird.ogg")
    shutil.copy(shared_audio / SPEECH, root / "audio" / "validation" / "speech.ogg")
    drums = audio_io.decode(shared_audio / DRUM_BASS)
    audio_io.write(root / "audio" / "train" / "drums_0000.wav", replace(drums, samples=drums.samples[:, : 3 * drums.sample_rate]), "PCM_16")
    song = audio_io.decode(shared_audio / SONG_WITH_VOCALS)
    audio_io.write(root / BIG, replace(song, samples=song.samples[:, : 20 * song.sample_rate]), "FLOAT")  # ~7 MB
    (root / "data").mkdir()
    table = pa.table({"path": ["audio/train/bird.ogg", "audio/train/drums_0000.wav"], "bpm": [0.0, 92.0], "description": ["a bird", "drums and bass"]})
    pq.write_table(table, root / "data" / "train-00000-of-00001.parquet")
    (root / "report.json").write_text(json.dumps({"chunks": 3, "failures": []}))
    (root / "config.json").write_text(json.dumps(PipelineConfig().to_dict()))
    (root / ".cache" / "separate").mkdir(parents=True)
    (root / ".cache" / "separate" / "junk.bin").write_bytes(b"x" * 1000)
    (root / "audio" / "train" / ".drums_0001.wav.partial").write_bytes(b"half-written")
    return root


@pytest.fixture
def build(build_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "build"
    shutil.copytree(build_template, target)
    return target


@pytest.fixture
def cfg(s3, aws_env) -> PublishConfig:  # noqa: F811
    return PublishConfig(
        s3_uri=f"s3://{s3.new_bucket()}/datasets/musicgen", endpoint_url=s3.endpoint_url, max_concurrency=3,
        multipart_threshold_mb=5, multipart_chunksize_mb=5,
    )


def _keys(s3, cfg: PublishConfig) -> dict[str, int]:  # noqa: F811
    loc = parse_s3_uri(cfg.s3_uri)
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix + "/")
    return {o["Key"][len(loc.prefix) + 1 :]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _remote_json(s3, cfg: PublishConfig, rel: str):  # noqa: F811
    loc = parse_s3_uri(cfg.s3_uri)
    try:
        return json.loads(s3.client().get_object(Bucket=loc.bucket, Key=f"{loc.prefix}/{rel}")["Body"].read())
    except s3.client().exceptions.NoSuchKey:
        return None


def _expected_files(build: Path) -> dict[str, str]:
    return {p.relative_to(build).as_posix(): audio_io.file_sha256(p) for p in build.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(build).parts)}


def test_publish_then_pull_latest_round_trip(s3, cfg, build, tmp_path):  # noqa: F811
    expected = _expected_files(build)
    assert len(expected) == 7 and BIG in expected
    report = publish_build(build, cfg, "mm", "2026.11.24", progress=False)
    assert sorted(report.uploaded) == sorted(expected) and not report.skipped and not report.copied
    assert report.bytes_uploaded == sum((build / p).stat().st_size for p in expected)
    assert report.latest_version == "2026.11.24" and not report.already_published

    keys = _keys(s3, cfg)
    assert set(keys) == {f"mm/2026.11.24/{p}" for p in expected} | {"mm/2026.11.24/manifest.json", "mm/latest.json"}
    assert not any(".cache" in k or ".partial" in k for k in keys)  # hidden paths never leave the machine

    manifest = _remote_json(s3, cfg, "mm/2026.11.24/manifest.json")
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == expected
    assert {f["path"]: f["size"] for f in manifest["files"]} == {p: (build / p).stat().st_size for p in expected}
    assert manifest["build_config"] == json.loads((build / "config.json").read_text())
    assert manifest["code_version"] == __version__ and manifest["name"] == "mm" and manifest["version"] == "2026.11.24"
    assert _remote_json(s3, cfg, "mm/latest.json")["version"] == "2026.11.24"

    loc = parse_s3_uri(cfg.s3_uri)
    head = s3.client().head_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/2026.11.24/{BIG}")
    assert head["Metadata"]["sha256"] == expected[BIG]
    assert head["ETag"].strip('"').endswith("-2")  # a 7 MB file with 5 MiB parts went multipart
    assert s3.client().head_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/2026.11.24/data/train-00000-of-00001.parquet")[
        "ContentType"] == "application/vnd.apache.parquet"

    dest = pull_version(f"{cfg.s3_uri}/mm/latest", tmp_path / "pulled", endpoint_url=cfg.endpoint_url)
    assert _expected_files(dest) == {**expected, MANIFEST_NAME: audio_io.file_sha256(dest / MANIFEST_NAME)}
    pulled = audio_io.decode(dest / "audio/train/drums_0000.wav")
    assert np.array_equal(pulled.samples, audio_io.decode(build / "audio/train/drums_0000.wav").samples)
    assert pq.read_table(dest / "data/train-00000-of-00001.parquet").column("bpm").to_pylist() == [0.0, 92.0]
    assert list_versions(f"{cfg.s3_uri}/mm", endpoint_url=cfg.endpoint_url) == ["2026.11.24"]


def test_publish_again_uploads_nothing_and_changed_content_is_refused(cfg, build):
    publish_build(build, cfg, "mm", "v1", progress=False)
    again = publish_build(build, cfg, "mm", "v1", progress=False)
    assert again.already_published and again.uploaded == [] and again.copied == [] and len(again.skipped) == 7

    # report.json records the run (timings, cache use): a rebuild of the same content is the same version
    (build / "report.json").write_text(json.dumps({"chunks": 3, "failures": [], "timings_s": {"separate": 1.5}}))
    rebuilt = publish_build(build, cfg, "mm", "v1", progress=False)
    assert rebuilt.already_published and rebuilt.uploaded == []

    (build / "config.json").write_text(json.dumps({"changed": True}))
    with pytest.raises(PublishError, match=r"mm/v1/manifest\.json: version v1 already exists with different content.*config\.json"):
        publish_build(build, cfg, "mm", "v1", progress=False)


def test_interrupted_publish_resumes_with_only_the_missing_files(s3, cfg, build):  # noqa: F811
    cfg.max_concurrency = 1
    done_first: list[str] = []

    def stop_after_two(entry):
        # While files are landing, the version is not visible yet.
        assert _remote_json(s3, cfg, "mm/v1/manifest.json") is None and _remote_json(s3, cfg, "mm/latest.json") is None
        done_first.append(entry.path)
        if len(done_first) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises

    with pytest.raises(KeyboardInterrupt):
        publish_build(build, cfg, "mm", "v1", progress=False, on_file_done=stop_after_two)
    present = {k[len("mm/v1/"):] for k in _keys(s3, cfg)}
    assert "manifest.json" not in present and "mm/latest.json" not in _keys(s3, cfg)
    # The upload thread may have sent the rest before the interrupt reached the main thread (a loaded
    # machine): what counts is that the version stays invisible and the rerun sends only what is missing.
    assert set(done_first) <= present and 2 <= len(present) <= len(_expected_files(build))

    report = publish_build(build, cfg, "mm", "v1", progress=False)
    assert sorted(report.skipped) == sorted(present)
    assert sorted(report.uploaded) == sorted(set(_expected_files(build)) - present)
    assert not set(report.uploaded) & set(done_first)
    assert _remote_json(s3, cfg, "mm/latest.json")["version"] == "v1"


def test_new_version_sends_only_changed_bytes_and_latest_moves_only_forward(s3, cfg, build):  # noqa: F811
    publish_build(build, cfg, "mm", "v1", progress=False)
    (build / "report.json").write_text(json.dumps({"chunks": 3, "failures": [], "note": "re-run"}))
    v2 = publish_build(build, cfg, "mm", "v2", progress=False)
    assert v2.uploaded == ["report.json"] and len(v2.copied) == 6 and v2.bytes_uploaded == (build / "report.json").stat().st_size
    loc = parse_s3_uri(cfg.s3_uri)
    copied = s3.client().head_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/v2/{BIG}")
    assert copied["Metadata"]["sha256"] == audio_io.file_sha256(build / BIG)
    assert _remote_json(s3, cfg, "mm/latest.json")["version"] == "v2"

    # Publishing v1's content again as v1 is a no-op and must not move latest back.
    (build / "report.json").write_text(json.dumps({"chunks": 3, "failures": []}))
    assert publish_build(build, cfg, "mm", "v1", progress=False).latest_version == "v2"
    assert _remote_json(s3, cfg, "mm/latest.json")["version"] == "v2"


def test_a_file_repeated_inside_the_build_is_sent_once(s3, cfg, build, tmp_path):  # noqa: F811
    (build / "hf" / "data").mkdir(parents=True)
    shutil.copy(build / BIG, build / "hf" / "data" / "long_stereo.wav")  # e.g. shards shared by two exports
    report = publish_build(build, cfg, "mm", "v1", progress=False)
    assert report.copied == ["hf/data/long_stereo.wav"] and BIG in report.uploaded and len(report.uploaded) == 7
    dest = pull_version(f"{cfg.s3_uri}/mm/v1", tmp_path / "pulled", endpoint_url=cfg.endpoint_url)
    assert (dest / "hf/data/long_stereo.wav").read_bytes() == (build / BIG).read_bytes()


def test_dry_run_lists_what_would_be_sent_and_writes_nothing(s3, cfg, build):  # noqa: F811
    publish_build(build, cfg, "mm", "v1", progress=False)
    (build / "report.json").write_text(json.dumps({"chunks": 9}))
    before = _keys(s3, cfg)
    plan = publish_build(build, replace(cfg, dry_run=True), "mm", "v2", progress=False)
    assert plan.dry_run and plan.uploaded == ["report.json"] and len(plan.copied) == 6 and plan.latest_version == "v1"
    assert "dry run" in str(plan) and _keys(s3, cfg) == before


def test_crash_between_manifest_and_latest_is_repaired_by_a_rerun(s3, cfg, build):  # noqa: F811
    publish_build(build, cfg, "mm", "v1", progress=False)
    loc = parse_s3_uri(cfg.s3_uri)
    s3.client().delete_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/latest.json")
    report = publish_build(build, cfg, "mm", "v1", progress=False)
    assert report.already_published and report.latest_version == "v1"
    assert _remote_json(s3, cfg, "mm/latest.json")["version"] == "v1"


def test_leftovers_of_another_unfinished_upload_are_removed(s3, cfg, build, tmp_path):  # noqa: F811
    loc = parse_s3_uri(cfg.s3_uri)
    s3.client().put_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/v1/old/chunk.wav", Body=b"stale")
    # same name, same size, wrong bytes: compared by sha256, so it is sent again
    s3.client().put_object(Bucket=loc.bucket, Key=f"{loc.prefix}/mm/v1/report.json", Body=b"x" * (build / "report.json").stat().st_size)
    report = publish_build(build, cfg, "mm", "v1", progress=False)
    assert report.stale_removed == ["old/chunk.wav"] and "report.json" in report.uploaded
    dest = pull_version(f"{cfg.s3_uri}/mm/v1", tmp_path / "pulled", endpoint_url=cfg.endpoint_url)
    assert not (dest / "old").exists() and (dest / "report.json").read_bytes() == (build / "report.json").read_bytes()


def test_pull_detects_a_corrupted_object_and_names_it(s3, cfg, build, tmp_path):  # noqa: F811
    publish_build(build, cfg, "mm", "v1", progress=False)
    loc = parse_s3_uri(cfg.s3_uri)
    key = f"{loc.prefix}/mm/v1/audio/train/drums_0000.wav"
    good = (build / "audio/train/drums_0000.wav").read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01  # one flipped bit, same size
    s3.client().put_object(Bucket=loc.bucket, Key=key, Body=bytes(bad), Metadata={"sha256": audio_io.file_sha256(build / "audio/train/drums_0000.wav")})

    dest = tmp_path / "pulled"
    with pytest.raises(IntegrityError, match=r"audio/train/drums_0000\.wav .*sha256") as info:
        pull_version(f"{cfg.s3_uri}/mm/v1", dest, endpoint_url=cfg.endpoint_url)
    assert [p.path for p in info.value.problems] == ["audio/train/drums_0000.wav"]
    assert not (dest / MANIFEST_NAME).exists() and not (dest / "audio/train/drums_0000.wav").exists()
    assert (dest / "data/train-00000-of-00001.parquet").is_file()  # the intact files were kept

    s3.client().put_object(Bucket=loc.bucket, Key=key, Body=good)  # repaired: a rerun fetches only that file
    before = (dest / BIG).stat().st_mtime_ns
    pull_version(f"{cfg.s3_uri}/mm/v1", dest, endpoint_url=cfg.endpoint_url)
    assert (dest / "audio/train/drums_0000.wav").read_bytes() == good and (dest / BIG).stat().st_mtime_ns == before
    assert (dest / MANIFEST_NAME).is_file()


def test_pull_of_missing_or_unfinished_versions_is_explained(s3, cfg, build, tmp_path):  # noqa: F811
    with pytest.raises(PublishError, match=r"mm/latest\.json: not found"):
        pull_version(f"{cfg.s3_uri}/mm/latest", tmp_path / "a", endpoint_url=cfg.endpoint_url)
    with pytest.raises(KeyboardInterrupt):
        publish_build(build, cfg, "mm", "v1", progress=False, on_file_done=lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(PublishError, match=r"mm/v1/manifest\.json: not found: version v1 does not exist or its upload never finished"):
        pull_version(f"{cfg.s3_uri}/mm/v1", tmp_path / "b", endpoint_url=cfg.endpoint_url)
    with pytest.raises(PublishError, match="expected s3://bucket"):
        pull_version(f"s3://{parse_s3_uri(cfg.s3_uri).bucket}/v1", tmp_path / "c", endpoint_url=cfg.endpoint_url)


def test_missing_bucket_missing_uri_and_bad_names(cfg, build):
    missing = replace(cfg, s3_uri="s3://mm-no-such-bucket-here/x")
    with pytest.raises(PublishError, match=r"s3://mm-no-such-bucket-here: bucket not found"):
        publish_build(build, missing, "mm", "v1", progress=False)
    with pytest.raises(PublishError, match="publish.s3_uri is not set"):
        publish_build(build, replace(cfg, s3_uri=None), "mm", "v1", progress=False)
    with pytest.raises(PublishError, match="version 'latest'"):
        publish_build(build, cfg, "mm", "latest", progress=False)
    with pytest.raises(PublishError, match="not an S3 URI"):
        publish_build(build, replace(cfg, s3_uri="https://example.com/x"), "mm", "v1", progress=False)


def test_missing_credentials_are_reported(cfg, build, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PublishError, match=r"s3://mm-test-\w+/datasets/musicgen: no AWS credentials found"):
        publish_build(build, cfg, "mm", "v1", progress=False)


def test_access_denied_names_the_bucket_and_key(s3, cfg, build, monkeypatch, tmp_path):  # noqa: F811
    # moto authorises HeadBucket as "s3:HeadBucket" (AWS itself checks s3:ListBucket): allow both.
    reader = s3.iam_user(["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"])
    nobody = s3.iam_user([])
    bucket = parse_s3_uri(cfg.s3_uri).bucket
    published = replace(cfg, s3_uri=f"s3://{s3.new_bucket()}/p")
    publish_build(build, published, "mm", "v1", progress=False)
    with s3.enforce_auth():
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader["aws_secret_access_key"])
        with pytest.raises(PublishError, match=rf"s3://{bucket}/datasets/musicgen/mm/v1/\S+: upload: access denied"):
            publish_build(build, cfg, "mm", "v1", progress=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", nobody["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", nobody["aws_secret_access_key"])
        with pytest.raises(PublishError, match=rf"s3://{bucket}: open bucket: access denied"):
            publish_build(build, cfg, "mm", "v1", progress=False)
        with pytest.raises(PublishError, match=rf"{published.s3_uri[:-2]}: open bucket: access denied"):
            pull_version(f"{published.s3_uri}/mm/v1", tmp_path / "denied", endpoint_url=cfg.endpoint_url)
    assert _keys(s3, cfg) == {}  # nothing was written


def test_pull_without_credentials_is_unsigned_and_says_so_when_denied(cfg, build, monkeypatch, tmp_path):
    publish_build(build, cfg, "mm", "v1", progress=False)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PublishError, match=r"mm/latest\.json: read: access denied .*no AWS credentials were found, so the request was sent unsigned"):
        pull_version(f"{cfg.s3_uri}/mm/latest", tmp_path / "pulled", endpoint_url=cfg.endpoint_url)  # a private bucket


def test_manifest_scan_skips_hidden_paths_and_rejects_unsafe_ones(build):
    paths = [f.path for f in scan_build(build)]
    assert paths == sorted(paths) and len(paths) == 7 and not any(p.startswith(".") or "/." in p for p in paths)
    assert (build / ".cache" / "publish_hashes.json").is_file()  # hashes remembered, in a hidden folder
    (build / MANIFEST_NAME).write_text("{}")
    with pytest.raises(ManifestError, match="reserved"):
        scan_build(build)
    for bad in ("../etc/passwd", "/abs", "a/../../b", "a\\b", ""):
        with pytest.raises(ManifestError, match="unsafe"):
            check_relative_path(bad)
    evil = Manifest("mm", "v1", []).to_json().replace(b'"files": []', b'"files": [{"path": "../x", "size": 1, "sha256": "0"}]')
    with pytest.raises(ManifestError, match="unsafe"):
        Manifest.from_json(evil)
