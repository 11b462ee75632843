"""Content-addressed stage cache: a stage's output is kept under a key made of
the stage name, its code version, its input's content hash and its parameters.

A rerun with the same key reuses the output; a changed parameter changes the
key of that stage and of every stage after it (their input hash changes), so
only the affected stages run again. An entry is complete only once its
``done.json`` marker is written, which happens last, inside a private folder that
is then renamed into place: a killed run leaves no half entry under the key.

A cache on a remote store (``s3://``, see ``processing.storage``) keeps the same layout there: an entry
is written locally as above, then uploaded with its ``done.json`` last (an entry without it is not
done, and is made again), and read back through a node-local mirror of the entries it needs, fetched
when a stage needs their files (``CacheEntry.fetch``); done entries never change, so the mirror stays true.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .storage import Store

PARTIAL_SUFFIX = ".partial"


def stable_hash(*parts: Any) -> str:
    """sha256 over a JSON rendering of the parts (dataclasses/Paths rendered as text)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheEntry:
    stage: str
    key: str
    path: Path  # the entry's folder (for a remote cache: in the local mirror)
    _work: Optional[Path] = None  # the private folder an unfinished entry is written in
    remote: Optional["Store"] = None  # the cache's remote store, if any
    rel: str = ""  # the entry's folder relative to the cache root

    @property
    def marker(self) -> Path:
        return self.path / "done.json"

    def is_done(self) -> bool:
        return self.marker.is_file() or (self.remote is not None and self.remote.exists(f"{self.rel}/done.json"))

    def read_meta(self) -> dict[str, Any]:
        if self.marker.is_file() or self.remote is None:
            return json.loads(self.marker.read_text())
        return json.loads(self.remote.read_text(f"{self.rel}/done.json"))

    def fetch(self) -> Path:
        """The entry's folder with its files (a remote entry is copied into the local mirror first, whole)."""
        if self.marker.is_file() or self.remote is None:
            return self.path
        work = self.begin()
        try:
            files = self.remote.list(self.rel)
            if f"{self.rel}/done.json" not in files:
                raise FileNotFoundError(f"cache entry {self.remote.uri(self.rel)} is not done")
            for rel in files:
                self.remote.download(rel, work / rel[len(self.rel) + 1:])
            self._into_place()
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            self._work = None
            raise
        return self.path

    def begin(self) -> Path:
        """A fresh private folder to write this entry in; ``finish`` moves it into place in one rename,
        so a reader never sees half an entry and two writers of one key never mix their files."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = f"{socket.gethostname()}.{os.getpid()}"  # lets a later run see that the writer is gone
        self._work = self.path.parent / f".{self.key}.{owner}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}"
        self._work.mkdir()
        return self._work

    def finish(self, meta: dict[str, Any]) -> None:
        if self._work is None:
            raise RuntimeError(f"cache entry {self.stage}/{self.key}: finish() without begin()")
        # key order kept (no sort_keys): rows rebuilt from the cache must have the columns of a fresh build,
        # or the table (chunks.parquet) of a rerun would differ from the first build byte for byte
        (self._work / "done.json").write_text(json.dumps(meta, default=str, indent=1))
        self._into_place()
        if self.remote is not None:  # every file, then the marker: a reader never sees a done entry half sent
            files = sorted(p for p in self.path.rglob("*") if p.is_file() and p.name != "done.json")
            for path in files:
                self.remote.upload(path, f"{self.rel}/{path.relative_to(self.path).as_posix()}")
            self.remote.upload(self.marker, f"{self.rel}/done.json")

    def _into_place(self) -> None:
        if self.path.exists() and not self.marker.is_file():  # left by a run of an older layout: not an entry
            shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.rename(self._work, self.path)
        except OSError:  # another writer finished the same entry first: keep theirs (same key, same content)
            if not self.marker.is_file():
                raise
            shutil.rmtree(self._work, ignore_errors=True)
        self._work = None


@dataclass
class StageCache:
    root: Path  # the cache folder (for a remote cache: its local mirror)
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    remote: Optional["Store"] = None  # the remote store the cache lives in, if any

    def entry(self, stage: str, version: str, input_hash: str, params: Any) -> CacheEntry:
        key = stable_hash(stage, version, input_hash, params)[:32]
        rel = f"{stage}/{key[:2]}/{key}"
        return CacheEntry(stage, key, Path(self.root) / rel, remote=self.remote, rel=rel)

    def holds(self, stage: str) -> bool:
        """Whether any finished entry of ``stage`` is in the cache folder (for a remote cache: its local mirror)."""
        return next((Path(self.root) / stage).glob("*/*/done.json"), None) is not None

    def record(self, stage: str, hit: bool) -> None:
        counter = self.hits if hit else self.misses
        counter[stage] = counter.get(stage, 0) + 1

    def get_or_compute(self, stage: str, version: str, input_hash: str, params: Any,
                       compute: Callable[[Path], dict[str, Any]]) -> tuple[CacheEntry, dict[str, Any], bool]:
        """The entry's record, computing it when missing: ``compute(folder)`` writes its files into
        ``folder`` and returns the record. Returns (entry, record, whether it was a hit)."""
        entry = self.entry(stage, version, input_hash, params)
        if entry.is_done():
            self.record(stage, hit=True)
            return entry, entry.read_meta(), True
        folder = entry.begin()
        try:
            meta = compute(folder)
            entry.finish(meta)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.record(stage, hit=False)
        return entry, meta, False

    def sweep_partials(self, older_than_s: float = 3600.0) -> int:
        """Remove unfinished entry folders left by killed runs: those whose writer (on this host) is gone,
        and any older than ``older_than_s`` (a writer on another host sharing the cache may own a newer one)."""
        removed = 0
        now = time.time()
        host = socket.gethostname()
        root = Path(self.root)
        for folder in root.glob(f"*/*/.*{PARTIAL_SUFFIX}") if root.exists() else []:
            parts = folder.name[: -len(PARTIAL_SUFFIX)].split(".")  # "", key, host..., pid, random
            try:
                dead = parts[2:-2] == host.split(".") and not _alive(int(parts[-2]))
                if dead or now - folder.stat().st_mtime > older_than_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except (FileNotFoundError, ValueError, IndexError):
                continue
        return removed


def _alive(pid: int) -> bool:
    """Whether a process of this host still runs (a zombie, dead but not reaped yet, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
