"""Publish a build to S3 (or any S3-compatible store) as an immutable version,
and pull a version back, verified file by file.

Layout under ``s3://bucket/prefix``::

    <name>/<version>/<every file of the build>   (object metadata: sha256)
    <name>/<version>/manifest.json               (written last: the version exists once it does)
    <name>/latest.json                           (names a version; moved after its manifest lands)

Only what the bucket lacks is sent: objects already under the version with the
right sha256 are skipped, files whose bytes are already in the ``latest``
version are copied server-side, everything else is uploaded with boto3's
managed transfers (multipart above a threshold, a bounded number of parallel
transfers, botocore retries with backoff). A rerun after a crash or Ctrl-C
therefore uploads only what is missing. Credentials come only from boto3's
normal chain (environment, profile, role); the endpoint may be any
S3-compatible server (MinIO, R2, moto).
"""
from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from s3transfer.subscribers import BaseSubscriber

from ..atomic import write_bytes_atomic
from ..config import PublishConfig
from .manifest import (
    MANIFEST_NAME,
    FileProblem,
    Manifest,
    ManifestError,
    ManifestFile,
    build_manifest,
    verify_file,
)

MB = 1 << 20
SHA_META = "sha256"  # object metadata key (x-amz-meta-sha256) holding the file's sha256
LATEST_NAME = "latest.json"
LATEST_FORMAT = "music-mixer-latest"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_BUCKET_MISSING = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}



RUN_RECORD_FILES = frozenset({"report.json"})  # describe a build run, not the dataset

class PublishError(RuntimeError):
    """Publishing or pulling failed; the message names the bucket/key and the reason."""


class IntegrityError(PublishError):
    """Pulled bytes differ from the manifest; ``problems`` names every bad file."""

    def __init__(self, message: str, problems: list[FileProblem]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""  # no leading or trailing "/"

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> S3Location("bucket", "some/prefix")."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise PublishError(f"{uri!r}: not an S3 URI (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise PublishError(f"{uri!r}: no bucket name (expected s3://bucket/prefix)")
    return S3Location(bucket, "/".join(p for p in prefix.split("/") if p))


def check_name(value: str, what: str) -> str:
    """Dataset names and versions become key segments: letters, digits, '.', '_', '+', '-'."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or value in ("latest", "latest.json"):
        raise PublishError(
            f"{what} {value!r} is not usable in an S3 key: use letters, digits, '.', '_', '+', '-' "
            "(starting with a letter or digit; 'latest' is reserved)"
        )
    return value


@dataclass
class PublishReport:
    uri: str  # s3://bucket/prefix/<name>/<version>
    name: str
    version: str
    files: int
    bytes_total: int
    uploaded: list[str] = field(default_factory=list)  # paths sent from this machine
    bytes_uploaded: int = 0
    copied: list[str] = field(default_factory=list)  # paths copied server-side from the latest version
    skipped: list[str] = field(default_factory=list)  # paths already in the bucket with the right sha256
    stale_removed: list[str] = field(default_factory=list)  # leftovers of an unfinished upload, not in this build
    multipart_aborted: int = 0  # unfinished multipart uploads of an interrupted run, aborted
    manifest_uri: str = ""
    latest_version: Optional[str] = None  # what latest.json names after this run
    already_published: bool = False  # the version existed with identical content: nothing was done
    dry_run: bool = False  # nothing was written: the lists say what would be sent/copied/removed
    seconds: float = 0.0

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        state = "already published (no-op)" if self.already_published else "dry run, would be published" if self.dry_run else "published"
        return (
            f"{self.uri}: {state}; {self.files} files, {self.bytes_total / MB:.1f} MiB; "
            f"uploaded {len(self.uploaded)} ({self.bytes_uploaded / MB:.1f} MiB), copied {len(self.copied)}, "
            f"skipped {len(self.skipped)}, stale removed {len(self.stale_removed)}; latest -> {self.latest_version}; "
            f"{self.seconds:.1f} s"
        )


# ---------------------------------------------------------------- clients and errors


def s3_client(
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    *,
    max_attempts: int = 8,
    retry_mode: str = "standard",
    timeout_s: float = 60.0,
    max_pool: int = 10,
    anonymous_ok: bool = False,
    where: str = "S3",
) -> Any:
    """An S3 client from boto3's normal credential chain; ``anonymous_ok`` falls back to unsigned requests."""
    try:
        session = boto3.session.Session(region_name=region)
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise PublishError(f"{where}: cannot set up AWS credentials ({exc})") from exc
    options: dict[str, Any] = dict(
        retries={"max_attempts": max_attempts, "mode": retry_mode},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        max_pool_connections=max_pool,
    )
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise PublishError(f"{where}: cannot load AWS credentials ({exc})") from exc
    if credentials is None:
        if not anonymous_ok:
            raise PublishError(
                f"{where}: no AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "choose a profile with AWS_PROFILE, or run where an IAM role is attached"
            )
        options["signature_version"] = UNSIGNED  # public buckets can still be pulled
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**options))


def _client_for(cfg: PublishConfig, where: str) -> Any:
    if cfg.retry_mode not in ("standard", "adaptive", "legacy"):
        raise PublishError(f"publish.retry_mode must be standard, adaptive or legacy, got {cfg.retry_mode!r}")
    if cfg.max_attempts < 1:
        raise PublishError(f"publish.max_attempts must be >= 1, got {cfg.max_attempts}")
    return s3_client(
        cfg.endpoint_url,
        cfg.region,
        max_attempts=cfg.max_attempts,
        retry_mode=cfg.retry_mode,
        timeout_s=cfg.timeout_s,
        max_pool=max(10, cfg.max_concurrency + 4),
        where=where,
    )


def _error_code(exc: ClientError) -> tuple[str, int]:
    err = exc.response.get("Error", {})
    return str(err.get("Code", "")), int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate_error(exc: BaseException, uri: str, action: str) -> PublishError:
    """A PublishError that names the bucket/key and says what to do."""
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, NoCredentialsError):
        return PublishError(f"{uri}: {action}: no AWS credentials found (environment, AWS_PROFILE or an IAM role)")
    if isinstance(exc, EndpointConnectionError):
        return PublishError(f"{uri}: {action}: cannot reach the S3 endpoint ({exc})")
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _BUCKET_MISSING or (action == "open bucket" and status == 404):
            return PublishError(f"{uri}: bucket not found ({code or status})")
        if code in _BAD_CREDENTIALS:
            return PublishError(f"{uri}: {action}: the AWS credentials were rejected ({code}: {message})")
        if code in _DENIED or status == 403:
            return PublishError(f"{uri}: {action}: access denied ({code or status}); check the credentials' permissions")
        return PublishError(f"{uri}: {action} failed: {code or status} {message}".rstrip())
    if isinstance(exc, BotoCoreError):
        return PublishError(f"{uri}: {action} failed: {exc}")
    return PublishError(f"{uri}: {action} failed: {type(exc).__name__}: {exc}")


@contextmanager
def _s3_errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate_error(exc, uri, action) from exc


def _is_not_found(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code in _NOT_FOUND or status == 404 and code not in _BUCKET_MISSING


def _get_bytes(client: Any, bucket: str, key: str) -> Optional[bytes]:
    """An object's bytes, or None when the key does not exist."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if _is_not_found(exc):
            return None
        raise translate_error(exc, f"s3://{bucket}/{key}", "read") from exc
    except BotoCoreError as exc:
        raise translate_error(exc, f"s3://{bucket}/{key}", "read") from exc


def _put_json(client: Any, bucket: str, key: str, body: bytes, if_absent: bool = False) -> bool:
    """Write a small JSON object; with ``if_absent`` returns False when the key already existed."""
    args = dict(
        Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata={SHA_META: hashlib.sha256(body).hexdigest()}
    )
    try:
        client.put_object(**args, **({"IfNoneMatch": "*"} if if_absent else {}))
        return True
    except ClientError as exc:
        code, status = _error_code(exc)
        if if_absent and (code == "PreconditionFailed" or status == 412):
            return False
        if if_absent and code in ("NotImplemented", "InvalidArgument") and status in (400, 501):
            return _put_json(client, bucket, key, body, if_absent=False)  # store without conditional writes
        raise translate_error(exc, f"s3://{bucket}/{key}", "write") from exc
    except BotoCoreError as exc:
        raise translate_error(exc, f"s3://{bucket}/{key}", "write") from exc


def _list_objects(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    """{key: size} of every object under ``prefix`` (which should end with '/')."""
    out: dict[str, int] = {}
    with _s3_errors(f"s3://{bucket}/{prefix}", "list"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = int(obj["Size"])
    return out


def _abort_unfinished_multipart(client: Any, bucket: str, prefix: str) -> int:
    """Abort every unfinished multipart upload under ``prefix`` (an unpublished version); their count."""
    aborted = 0
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
    except ClientError as exc:
        code, status = _error_code(exc)
        if code in ("NotImplemented", "AccessDenied") or status in (403, 501):
            return aborted  # a store without the listing, or a key without the right: leave them
        raise translate_error(exc, f"s3://{bucket}/{prefix}", "abort unfinished uploads") from exc
    except BotoCoreError as exc:
        raise translate_error(exc, f"s3://{bucket}/{prefix}", "abort unfinished uploads") from exc
    return aborted


def _remote_sha256(client: Any, bucket: str, key: str) -> Optional[str]:
    try:
        return client.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(SHA_META)
    except ClientError as exc:
        if _is_not_found(exc):
            return None
        raise translate_error(exc, f"s3://{bucket}/{key}", "inspect") from exc


def _remote_exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if _is_not_found(exc):
            return False
        raise translate_error(exc, f"s3://{bucket}/{key}", "inspect") from exc


class _Progress(BaseSubscriber):
    def __init__(self, bar: Any):
        self.bar = bar

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self.bar.update(bytes_transferred)


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled, leave=False)


def _content_type(path: str) -> str:
    if path.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if path.endswith(".jsonl"):
        return "application/jsonl"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _transfer_config(cfg: PublishConfig) -> TransferConfig:
    if cfg.max_concurrency < 1:
        raise PublishError(f"publish.max_concurrency must be >= 1, got {cfg.max_concurrency}")
    if cfg.multipart_chunksize_mb < 5:
        raise PublishError(f"publish.multipart_chunksize_mb must be >= 5 (S3's smallest part), got {cfg.multipart_chunksize_mb}")
    return TransferConfig(
        multipart_threshold=max(1, cfg.multipart_threshold_mb) * MB,
        multipart_chunksize=cfg.multipart_chunksize_mb * MB,
        max_concurrency=cfg.max_concurrency,
        use_threads=True,
    )


# ---------------------------------------------------------------- latest pointer


def _latest_record(manifest: Manifest, manifest_body: bytes) -> bytes:
    record = {
        "format": LATEST_FORMAT,
        "name": manifest.name,
        "version": manifest.version,
        "manifest": f"{manifest.version}/{MANIFEST_NAME}",
        "manifest_sha256": hashlib.sha256(manifest_body).hexdigest(),
        "published_at": manifest.created_at,
    }
    return (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()


def read_latest(client: Any, base: S3Location, name: str) -> Optional[dict[str, Any]]:
    """The parsed ``<name>/latest.json`` under ``base``, or None when nothing was published."""
    key = base.key(name, LATEST_NAME)
    body = _get_bytes(client, base.bucket, key)
    if body is None:
        return None
    try:
        record = json.loads(body)
        check_name(record["version"], f"s3://{base.bucket}/{key}: version")
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"s3://{base.bucket}/{key}: malformed latest pointer ({exc!r})") from None
    return record


def _update_latest(client: Any, base: S3Location, manifest: Manifest, manifest_body: bytes, enabled: bool) -> Optional[str]:
    """Point latest.json at this version unless a newer version already holds it; returns what it names."""
    current = read_latest(client, base, manifest.name)
    if not enabled:
        return current["version"] if current else None
    record = _latest_record(manifest, manifest_body)
    if current is not None:
        if current.get("version") == manifest.version and current.get("manifest_sha256") == json.loads(record)["manifest_sha256"]:
            return manifest.version
        if current.get("version") != manifest.version and str(current.get("published_at", "")) >= manifest.created_at:
            return current["version"]  # republishing an older version never moves latest back
    _put_json(client, base.bucket, base.key(manifest.name, LATEST_NAME), record)
    return manifest.version


def _read_manifest(client: Any, bucket: str, key: str) -> tuple[Optional[Manifest], Optional[bytes]]:
    body = _get_bytes(client, bucket, key)
    if body is None:
        return None, None
    try:
        return Manifest.from_json(body, where=f"s3://{bucket}/{key}"), body
    except ManifestError as exc:
        raise PublishError(str(exc)) from None


# ---------------------------------------------------------------- publish


def publish_build(
    build_dir: Path,
    cfg: PublishConfig,
    name: str,
    version: str,
    progress: bool = True,
    *,
    on_file_done: Optional[Callable[[ManifestFile], None]] = None,
) -> PublishReport:
    """Publish ``build_dir`` as ``<cfg.s3_uri>/<name>/<version>``; see the module docstring.

    Re-running with the same content is a no-op; a version that exists with
    different content is refused (PublishError). ``on_file_done`` is called
    after each file lands (an exception raised there stops the upload, like
    Ctrl-C: no manifest and no latest pointer are written, a rerun resumes).
    """
    started = time.monotonic()
    check_name(name, "dataset name")
    check_name(version, "version")
    if not cfg.s3_uri:
        raise PublishError("publish.s3_uri is not set: give s3://bucket/prefix in the config or on the command line")
    base = parse_s3_uri(cfg.s3_uri)
    version_prefix = base.key(name, version) + "/"
    uri = base.uri(name, version)
    manifest_key = base.key(name, version, MANIFEST_NAME)
    transfer = _transfer_config(cfg)
    build_dir = Path(build_dir)

    client = _client_for(cfg, base.uri())
    with _s3_errors(f"s3://{base.bucket}", "open bucket"):
        client.head_bucket(Bucket=base.bucket)
    try:
        manifest = build_manifest(build_dir, name, version)
    except ManifestError as exc:
        raise PublishError(f"{uri}: {exc}") from None
    stats = {f.path: (build_dir / f.path).stat() for f in manifest.files}
    report = PublishReport(uri, name, version, len(manifest.files), manifest.total_bytes, manifest_uri=f"s3://{base.bucket}/{manifest_key}")

    remote, remote_body = _read_manifest(client, base.bucket, manifest_key)
    if remote is not None:
        # report.json records the run (timings, cache use): a rebuild of the same content differs only there,
        # and is the same version. The published copy is kept.
        changed = [p for p in remote.differences(manifest) if p not in RUN_RECORD_FILES]
        if changed:
            raise PublishError(
                f"s3://{base.bucket}/{manifest_key}: version {version} already exists with different content "
                f"({len(changed)} file(s) differ, e.g. {', '.join(changed[:5])}); versions are immutable: publish a new version"
            )
        report.already_published = True
        report.skipped = [f.path for f in manifest.files]
        report.latest_version = _update_latest(client, base, remote, remote_body, cfg.update_latest)
        report.seconds = time.monotonic() - started
        return report

    # What the bucket already holds under this version (a resumed upload), by sha256 not by name.
    present = _list_objects(client, base.bucket, version_prefix)
    wanted = {base.key(name, version, f.path): f for f in manifest.files}
    same_size = [k for k, f in wanted.items() if present.get(k) == f.size]
    with ThreadPoolExecutor(max_workers=cfg.max_concurrency) as pool:
        remote_sha = dict(zip(same_size, pool.map(lambda k: _remote_sha256(client, base.bucket, k), same_size)))
    todo = [f for k, f in wanted.items() if remote_sha.get(k) != f.sha256]
    report.skipped = [f.path for k, f in wanted.items() if remote_sha.get(k) == f.sha256]

    # Leftovers of an unfinished upload of other content: the version folder must equal its manifest.
    stale = sorted(k for k in present if k not in wanted)
    for i in range(0, 0 if cfg.dry_run else len(stale), 1000):
        with _s3_errors(f"s3://{base.bucket}/{version_prefix}", "remove stale objects"):
            client.delete_objects(Bucket=base.bucket, Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]], "Quiet": True})
    report.stale_removed = [k[len(version_prefix):] for k in stale]
    if not cfg.dry_run:  # parts of multipart uploads a killed run left behind: invisible, but stored (and billed)
        report.multipart_aborted = _abort_unfinished_multipart(client, base.bucket, version_prefix)

    # Bytes already in the store (the latest version, or this version's objects) are copied
    # inside it, not re-sent; a file repeated inside the build is sent once and copied after.
    copy_from: dict[str, str] = {}
    latest = read_latest(client, base, name)
    if latest is not None and latest["version"] != version and todo:
        previous, _ = _read_manifest(client, base.bucket, base.key(name, latest["version"], MANIFEST_NAME))
        if previous is not None:
            copy_from = {f.sha256: base.key(name, previous.version, f.path) for f in previous.files}
    copy_from.update({f.sha256: k for k, f in wanted.items() if remote_sha.get(k) == f.sha256})
    first: list[tuple[ManifestFile, Optional[str]]] = []
    repeats: list[ManifestFile] = []
    sent: dict[str, str] = {}
    for f in todo:
        if f.sha256 in copy_from:
            first.append((f, copy_from[f.sha256]))
        elif f.sha256 in sent:
            repeats.append(f)
        else:
            sent[f.sha256] = base.key(name, version, f.path)
            first.append((f, None))

    if cfg.dry_run:  # what would be sent, copied and removed; nothing is written
        report.dry_run = True
        report.uploaded = [f.path for f, source in first if source is None]
        report.bytes_uploaded = sum(f.size for f, source in first if source is None)
        report.copied = [f.path for f, source in first if source is not None] + [f.path for f in repeats]
        report.latest_version = latest["version"] if latest else None
        report.seconds = time.monotonic() - started
        return report

    bar = _progress_bar(sum(f.size for f in todo), f"publish {name}/{version}", progress)

    def run(manager: Any, jobs: list[tuple[ManifestFile, Optional[str]]]) -> None:
        futures = []
        for f, source in jobs:
            key = base.key(name, version, f.path)
            extra = {"Metadata": {SHA_META: f.sha256}, "ContentType": _content_type(f.path)}
            if source is not None:
                extra["MetadataDirective"] = "REPLACE"
                future = manager.copy({"Bucket": base.bucket, "Key": source}, base.bucket, key, extra_args=extra, subscribers=[_Progress(bar)])
            else:
                future = manager.upload(str(build_dir / f.path), base.bucket, key, extra_args=extra, subscribers=[_Progress(bar)])
            futures.append((f, key, source, future))
        for f, key, source, future in futures:
            with _s3_errors(f"s3://{base.bucket}/{key}", "upload" if source is None else "copy"):
                future.result()
            now = (build_dir / f.path).stat()
            if source is None and (now.st_size, now.st_mtime_ns) != (stats[f.path].st_size, stats[f.path].st_mtime_ns):
                raise PublishError(f"{build_dir / f.path}: file changed while it was being published; publish again")
            if source is None:
                report.uploaded.append(f.path)
                report.bytes_uploaded += f.size
            else:
                report.copied.append(f.path)
            if on_file_done is not None:
                on_file_done(f)

    try:
        with create_transfer_manager(client, transfer) as manager:
            run(manager, first)
            run(manager, [(f, sent[f.sha256]) for f in repeats])
    finally:
        bar.close()

    # End-to-end check before the version is declared: every object is there with its size.
    landed = _list_objects(client, base.bucket, version_prefix)
    missing = [f.path for k, f in wanted.items() if landed.get(k) != f.size]
    if missing:
        raise PublishError(f"{uri}: {len(missing)} object(s) missing or of the wrong size after upload, e.g. {missing[:5]}")

    body = manifest.to_json()
    if not _put_json(client, base.bucket, manifest_key, body, if_absent=True):
        # Another publisher finished the same version meanwhile: fine only if it is the same content.
        remote, body = _read_manifest(client, base.bucket, manifest_key)
        if remote is None or not remote.same_content(manifest):
            raise PublishError(f"s3://{base.bucket}/{manifest_key}: another publisher wrote version {version} with different content")
        manifest = remote
    report.latest_version = _update_latest(client, base, manifest, body, cfg.update_latest)
    report.seconds = time.monotonic() - started
    return report


# ---------------------------------------------------------------- pull


def default_pull_root() -> Path:
    """$MUSIC_MIXER_CACHE, else $XDG_CACHE_HOME/music_mixer, else ~/.cache/music_mixer; plus /pulls."""
    explicit = os.environ.get("MUSIC_MIXER_CACHE")
    if explicit:
        return Path(explicit).expanduser() / "pulls"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "music_mixer" / "pulls"


def resolve_version_uri(uri: str) -> tuple[S3Location, str, str]:
    """``s3://bucket/prefix/<name>/<version|latest>`` -> (base location, name, version or 'latest')."""
    loc = parse_s3_uri(uri)
    parts = loc.prefix.split("/") if loc.prefix else []
    if len(parts) < 2:
        raise PublishError(f"{uri}: expected s3://bucket/[prefix/]<name>/<version> or .../<name>/latest")
    name, version = parts[-2], parts[-1]
    check_name(name, f"{uri}: dataset name")
    if version != "latest":
        check_name(version, f"{uri}: version")
    return S3Location(loc.bucket, "/".join(parts[:-2])), name, version


def pull_version(
    uri: str,
    dest: Optional[Path] = None,
    endpoint_url: Optional[str] = None,
    *,
    region: Optional[str] = None,
    max_concurrency: int = 4,
    progress: bool = False,
) -> Path:
    """Download a published version (or ``latest``) and verify every file against its manifest.

    Files already present in ``dest`` with the right sha256 are kept, so an
    interrupted pull resumes. A file whose bytes differ from the manifest
    raises IntegrityError naming it (and the bad download is discarded).
    ``manifest.json`` is written into ``dest`` last. Returns ``dest``.
    """
    base, name, version = resolve_version_uri(uri)
    client = s3_client(endpoint_url, region, max_pool=max(10, max_concurrency + 4), anonymous_ok=True, where=uri)
    try:
        return _pull(client, uri, base, name, version, dest, max_concurrency, progress)
    except PublishError as exc:
        if client.meta.config.signature_version is UNSIGNED and "access denied" in str(exc):
            raise PublishError(f"{exc} (no AWS credentials were found, so the request was sent unsigned)") from exc
        raise


def _pull(
    client: Any, uri: str, base: S3Location, name: str, version: str, dest: Optional[Path], max_concurrency: int, progress: bool
) -> Path:
    with _s3_errors(f"s3://{base.bucket}", "open bucket"):
        client.head_bucket(Bucket=base.bucket)
    expected_manifest_sha = None
    if version == "latest":
        latest = read_latest(client, base, name)
        if latest is None:
            raise PublishError(f"{base.uri(name, LATEST_NAME)}: not found: nothing has been published as {name} here")
        version, expected_manifest_sha = latest["version"], latest.get("manifest_sha256")
    manifest_key = base.key(name, version, MANIFEST_NAME)
    manifest, body = _read_manifest(client, base.bucket, manifest_key)
    if manifest is None or body is None:
        raise PublishError(f"s3://{base.bucket}/{manifest_key}: not found: version {version} does not exist or its upload never finished")
    if expected_manifest_sha and hashlib.sha256(body).hexdigest() != expected_manifest_sha:
        raise IntegrityError(f"s3://{base.bucket}/{manifest_key}: manifest does not match the sha256 recorded in latest.json", [])
    if (manifest.name, manifest.version) != (name, version):
        raise IntegrityError(f"s3://{base.bucket}/{manifest_key}: manifest is for {manifest.name}/{manifest.version}, not {name}/{version}", [])

    dest = Path(dest) if dest is not None else default_pull_root() / base.bucket / base.prefix / name / version
    dest.mkdir(parents=True, exist_ok=True)
    local_manifest = dest / MANIFEST_NAME
    if local_manifest.exists() and local_manifest.read_bytes() != body:
        local_manifest.unlink()  # the folder is no longer a complete copy until this pull finishes

    todo = [f for f in manifest.files if verify_file(dest / f.path, f) is not None]
    problems: list[FileProblem] = []
    partials: list[Path] = []
    bar = _progress_bar(sum(f.size for f in todo), f"pull {name}/{version}", progress)
    transfer = TransferConfig(max_concurrency=max(1, max_concurrency), use_threads=True)
    try:
        with create_transfer_manager(client, transfer) as manager:
            jobs = []
            for f in todo:
                target = dest / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial")
                partials.append(partial)
                key = base.key(name, version, f.path)
                jobs.append((f, key, target, partial, manager.download(base.bucket, key, str(partial), subscribers=[_Progress(bar)])))
            for f, key, target, partial, future in jobs:
                try:
                    future.result()
                except ClientError as exc:
                    if not _is_not_found(exc):
                        raise translate_error(exc, f"s3://{base.bucket}/{key}", "download") from exc
                    problems.append(FileProblem(f.path, f"s3://{base.bucket}/{key}: missing from the bucket"))
                    continue
                except BotoCoreError as exc:
                    raise translate_error(exc, f"s3://{base.bucket}/{key}", "download") from exc
                problem = verify_file(partial, f)
                if problem is not None:
                    problems.append(FileProblem(f.path, f"s3://{base.bucket}/{key}: {problem.reason}"))
                else:
                    os.replace(partial, target)
    finally:
        bar.close()
        for partial in partials:  # bytes that did not verify (or whose download failed) are never kept
            partial.unlink(missing_ok=True)
    if problems:
        listing = "; ".join(f"{p.path} ({p.reason})" for p in problems[:10])
        raise IntegrityError(f"{uri}: {len(problems)} file(s) do not match the manifest: {listing}", problems)
    write_bytes_atomic(local_manifest, body)
    return dest


def list_versions(uri: str, endpoint_url: Optional[str] = None, region: Optional[str] = None) -> list[str]:
    """Published versions (those with a manifest) of ``s3://bucket/prefix/<name>``, sorted."""
    loc = parse_s3_uri(uri)
    parts = loc.prefix.split("/") if loc.prefix else []
    if not parts:
        raise PublishError(f"{uri}: expected s3://bucket/[prefix/]<name>")
    client = s3_client(endpoint_url, region, anonymous_ok=True, where=uri)
    prefix = loc.key() + "/"
    versions = []
    with _s3_errors(uri, "list versions"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                version = common["Prefix"][len(prefix):].strip("/")
                if _remote_exists(client, loc.bucket, f"{prefix}{version}/{MANIFEST_NAME}"):
                    versions.append(version)
    return sorted(versions)
