"""Where a build and its stage cache live when they are not a local folder: an ``s3://bucket/prefix`` on S3
or any S3-compatible store (MinIO, R2, ... through an endpoint URL), read and written with pyarrow's S3
file system, by whichever process makes or needs each file.

A remote location is used through a node-local folder beside it: the stage cache through a *mirror* (entries
are immutable once done, so a copy is always valid), the build through a *staging* folder (what a worker
makes there is sent to the remote build by that worker). Both lie under ``MUSIC_MIXER_LOCAL`` (default: the
system's temporary folder, ``music-mixer/``), at a path named after the URI, the same on every node.
Credentials come from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an
instance role), on every node that touches the store.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import is_uri


class StorageError(RuntimeError):
    """A remote store cannot be used (bad URI, no bucket, no access); the message names it."""


def is_remote(location: object) -> bool:
    """An s3:// location rather than a local path."""
    return is_uri(location)


def local_side(uri: str, kind: str) -> Path:
    """The node-local folder that stands for a remote location (``kind``: "cache" mirror or "build" staging)."""
    root = Path(os.environ.get("MUSIC_MIXER_LOCAL") or Path(tempfile.gettempdir()) / "music-mixer")
    return (root / hashlib.sha256(uri.encode()).hexdigest()[:16] / kind).resolve()


@dataclass(frozen=True)
class StoreSpec:
    """A remote location and how to reach it (plain data: it travels to every task)."""

    uri: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def open(self) -> "Store":
        return _open(self)


@functools.lru_cache(maxsize=16)
def _open(spec: StoreSpec) -> "Store":
    return Store(spec)


class Store:
    """Files under one S3 prefix, addressed by paths relative to it ("audio/x/y.wav")."""

    def __init__(self, spec: StoreSpec):
        from pyarrow import fs

        if not is_remote(spec.uri) or len(spec.uri) <= len("s3://"):
            raise StorageError(f"{spec.uri!r}: not an s3://bucket/prefix URI")
        self.spec = spec
        self.base = spec.uri[len("s3://"):].strip("/")
        kwargs = {"region": spec.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"}
        if spec.endpoint_url:
            kwargs["endpoint_override"] = spec.endpoint_url
        self.fs = fs.S3FileSystem(**kwargs)
        self._local = fs.LocalFileSystem()

    def __reduce__(self):  # a Store travels as its spec and is opened again where it lands
        return (_open, (self.spec,))

    def key(self, rel: str) -> str:
        return f"{self.base}/{rel.strip('/')}" if rel.strip("/") else self.base

    def uri(self, rel: str = "") -> str:
        return f"s3://{self.key(rel)}"

    def check(self) -> None:
        """Fail now, naming the location, when the bucket cannot be reached."""
        from pyarrow import fs

        bucket = self.base.split("/", 1)[0]
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as exc:
            raise StorageError(f"{self.spec.uri}: cannot reach the store ({exc})") from exc
        if info.type == fs.FileType.NotFound:
            raise StorageError(f"{self.spec.uri}: bucket {bucket!r} does not exist"
                               + (f" at {self.spec.endpoint_url}" if self.spec.endpoint_url else ""))

    def exists(self, rel: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.key(rel)).type == fs.FileType.File

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.key(rel)) as fh:
            return fh.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def write_bytes(self, rel: str, data: bytes) -> None:
        """One PUT: the object appears whole or not at all."""
        with self.fs.open_output_stream(self.key(rel)) as fh:
            fh.write(data)

    def upload(self, local: Path, rel: str) -> None:
        from pyarrow import fs

        fs.copy_files(str(local), self.key(rel), source_filesystem=self._local, destination_filesystem=self.fs)

    def download(self, rel: str, local: Path) -> None:
        """Into ``local``, whole or not at all (written beside it, then renamed)."""
        from pyarrow import fs

        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            fs.copy_files(self.key(rel), str(tmp), source_filesystem=self.fs, destination_filesystem=self._local)
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: "Store", source_rel: str, rel: str) -> None:
        """A copy inside the store (server side: the bytes never leave it) when both are on one endpoint."""
        self.fs.copy_file(source.key(source_rel), self.key(rel))

    def same_endpoint(self, other: "Store") -> bool:
        return (self.spec.endpoint_url, self.spec.region) == (other.spec.endpoint_url, other.spec.region)

    def list(self, prefix: str = "") -> list[str]:
        """Every file under ``prefix``, relative to the store's base."""
        from pyarrow import fs

        selector = fs.FileSelector(self.key(prefix), recursive=True, allow_not_found=True)
        start = len(self.base) + 1
        return sorted(i.path[start:] for i in self.fs.get_file_info(selector) if i.type == fs.FileType.File)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.key(rel))
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix: str) -> int:
        files = self.list(prefix)
        for rel in files:
            self.delete(rel)
        return len(files)

    def download_tree(self, prefix: str, local: Path) -> int:
        """Every file under ``prefix`` into ``local``/prefix (kept where present with the same size)."""
        from pyarrow import fs

        selector = fs.FileSelector(self.key(prefix), recursive=True, allow_not_found=True)
        start = len(self.base) + 1
        n = 0
        for info in self.fs.get_file_info(selector):
            if info.type != fs.FileType.File:
                continue
            dest = local / info.path[start:]
            if not (dest.is_file() and dest.stat().st_size == info.size):
                self.download(info.path[start:], dest)
                n += 1
        return n


def upload_tree(store: Store, local: Path, prefix: str = "", skip: frozenset = frozenset()) -> int:
    """Every file under ``local`` to ``prefix``, except the relative paths in ``skip``; returns the count."""
    n = 0
    for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        rel = path.relative_to(local).as_posix()
        if rel not in skip and not path.name.endswith(".partial"):
            store.upload(path, f"{prefix}/{rel}" if prefix else rel)
            n += 1
    return n


def fresh_folder(parent: Path, name: str) -> Path:
    """An empty private folder (removed by the caller with ``shutil.rmtree``)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
