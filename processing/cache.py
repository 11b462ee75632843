"""Content-addressed stage cache: a stage's output is kept under a key made of
the stage name, its code version, its input's content hash and its parameters.

A rerun with the same key reuses the output; a changed parameter changes the
key of that stage and of every stage after it (their input hash changes), so
only the affected stages run again. An entry is complete only once its
``done.json`` marker is written, which happens last.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def stable_hash(*parts: Any) -> str:
    """sha256 over a JSON rendering of the parts (dataclasses/Paths rendered as text)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheEntry:
    stage: str
    key: str
    path: Path

    @property
    def marker(self) -> Path:
        return self.path / "done.json"

    def is_done(self) -> bool:
        return self.marker.is_file()

    def read_meta(self) -> dict[str, Any]:
        return json.loads(self.marker.read_text())

    def begin(self) -> Path:
        """Start (or restart) this entry: anything left by an interrupted run is removed."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        return self.path

    def finish(self, meta: dict[str, Any]) -> None:
        tmp = self.marker.with_suffix(".partial")
        # key order kept (no sort_keys): rows rebuilt from the cache must have the columns of a fresh build,
        # or the table (chunks.parquet) of a rerun would differ from the first build byte for byte
        tmp.write_text(json.dumps(meta, default=str, indent=1))
        tmp.replace(self.marker)


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
