"""Content-addressed stage cache: a stage's output is kept under a key made of
the stage name, its code version, its input's content hash and its parameters.

A rerun with the same key reuses the output; a changed parameter changes the
key of that stage and of every stage after it (their input hash changes), so
only the affected stages run again. An entry is complete only once its
``done.json`` marker is written, which happens last, inside a private folder that
is then renamed into place: a killed run leaves no half entry under the key.
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
from typing import Any, Callable, Optional

PARTIAL_SUFFIX = ".partial"


def stable_hash(*parts: Any) -> str:
    """sha256 over a JSON rendering of the parts (dataclasses/Paths rendered as text)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheEntry:
    stage: str
    key: str
    path: Path
    _work: Optional[Path] = None  # the private folder an unfinished entry is written in

    @property
    def marker(self) -> Path:
        return self.path / "done.json"

    def is_done(self) -> bool:
        return self.marker.is_file()

    def read_meta(self) -> dict[str, Any]:
        return json.loads(self.marker.read_text())

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
        if self.path.exists() and not self.is_done():  # left by a run of an older layout: not an entry
            shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.rename(self._work, self.path)
        except OSError:  # another writer finished the same entry first: keep theirs (same key, same content)
            if not self.is_done():
                raise
            shutil.rmtree(self._work, ignore_errors=True)
        self._work = None


@dataclass
class StageCache:
    root: Path
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)

    def entry(self, stage: str, version: str, input_hash: str, params: Any) -> CacheEntry:
        key = stable_hash(stage, version, input_hash, params)[:32]
        return CacheEntry(stage, key, Path(self.root) / stage / key[:2] / key)

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
