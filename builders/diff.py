"""What changed between two dataset versions (build folders, pulled versions or s3:// versions).

Songs and chunks added and removed (by id, among the chunks in each dataset: a chunk that became
excluded is removed), chunks present in both tables whose facts changed and which (``FACTS``), and how
each distribution of the balance report (builders/diversity.py) moved: counts and the effective number
of values before and after. ``VersionDiff.to_dict()`` is the JSON for machines, ``text()`` the table
for people; ``scripts/diff.py`` is the command line.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import pyarrow.parquet as pq

from processing.config import BALANCE_FIELDS

from .diversity import LABELS, field_balance
from .source import local_build, recorded_name_version
from .table import to_output_row

FACTS = ("bpm", "key", "scale", "genre", "moods", "instruments", "description", "excluded", "weight")
SHOWN = 20  # ids listed per line in the text table


@dataclass
class Side:
    source: str
    folder: Path
    name: Optional[str]
    version: Optional[str]
    facts: dict[str, dict[str, Any]]  # chunk_id -> FACTS (every row of chunks.parquet)
    rows: list[dict[str, Any]]  # the dataset's rows (not excluded), in the published schema

    @property
    def chunk_ids(self) -> set[str]:
        return {r["chunk_id"] for r in self.rows}

    @property
    def song_ids(self) -> set[str]:
        return {r["song_id"] for r in self.rows}


def _fact(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


def read_side(source: str | Path, endpoint_url: Optional[str] = None, pull_dest: Optional[Path] = None) -> Side:
    """One side of a diff: the build's chunks.parquet rows and their facts (an s3:// version is pulled first)."""
    folder = local_build(source, pull_dest, endpoint_url)
    facts: dict[str, dict[str, Any]] = {}
    rows = []
    for raw in pq.read_table(folder / "chunks.parquet").to_pylist():
        out = to_output_row(raw, split="", audio=None)
        out["excluded"] = bool(raw.get("excluded"))
        out["scale"] = raw.get("scale")
        facts[raw["chunk_id"]] = {f: _fact(out.get(f)) for f in FACTS}
        if not out["excluded"]:
            rows.append(out)
    name, version = recorded_name_version(folder)
    return Side(str(source), folder, name, version, facts, rows)


@dataclass
class ChunkChange:
    chunk_id: str
    changes: dict[str, list[Any]]  # fact -> [old, new]


@dataclass
class DistributionMove:
    field: str
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    effective_before: float
    effective_after: float
    values_before: int
    values_after: int


@dataclass
class VersionDiff:
    old: dict[str, Any]  # source, folder, name, version
    new: dict[str, Any]
    songs_added: list[str]
    songs_removed: list[str]
    chunks_added: list[str]
    chunks_removed: list[str]
    changed: list[ChunkChange] = field(default_factory=list)
    distributions: list[DistributionMove] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed_facts"] = self.fact_counts()
        return data

    def fact_counts(self) -> dict[str, int]:
        counts = {f: 0 for f in FACTS}
        for c in self.changed:
            for f in c.changes:
                counts[f] += 1
        return {f: n for f, n in counts.items() if n}

    def text(self) -> str:
        def ids(values: list[str]) -> str:
            return ", ".join(values[:SHOWN]) + (f", ... ({len(values) - SHOWN} more)" if len(values) > SHOWN else "")

        lines = [f"old: {self.old['source']} (version {self.old['version']})",
                 f"new: {self.new['source']} (version {self.new['version']})",
                 f"songs: {len(self.songs_added)} added, {len(self.songs_removed)} removed"]
        lines += [f"  + {ids(self.songs_added)}"] if self.songs_added else []
        lines += [f"  - {ids(self.songs_removed)}"] if self.songs_removed else []
        lines.append(f"chunks: {len(self.chunks_added)} added, {len(self.chunks_removed)} removed")
        lines += [f"  + {ids(self.chunks_added)}"] if self.chunks_added else []
        lines += [f"  - {ids(self.chunks_removed)}"] if self.chunks_removed else []
        counts = self.fact_counts()
        lines.append(f"facts changed: {len(self.changed)} chunks"
                     + (" (" + ", ".join(f"{f} {n}" for f, n in counts.items()) + ")" if counts else ""))
        for c in self.changed[:SHOWN]:
            lines.append(f"  {c.chunk_id}: " + "; ".join(f"{f} {old!r} -> {new!r}" for f, (old, new) in c.changes.items()))
        if len(self.changed) > SHOWN:
            lines.append(f"  ... {len(self.changed) - SHOWN} more (--json lists them all)")
        lines.append("distributions (all splits): effective number of values, values seen, biggest moves")
        width = max(len(LABELS[m.field]) for m in self.distributions) if self.distributions else 0
        for m in self.distributions:
            moved = sorted(set(m.counts_before) | set(m.counts_after),
                           key=lambda v: (-abs(m.counts_after.get(v, 0) - m.counts_before.get(v, 0)), v))
            moves = ", ".join(f"{v} {m.counts_before.get(v, 0)}->{m.counts_after.get(v, 0)}" for v in moved[:4]
                              if m.counts_after.get(v, 0) != m.counts_before.get(v, 0))
            lines.append(f"  {LABELS[m.field]:<{width}}  {m.effective_before:5.2f} -> {m.effective_after:5.2f}   "
                         f"{m.values_before:>3} -> {m.values_after:<3}  {moves or 'unchanged'}")
        return "\n".join(lines)


def diff_sides(old: Side, new: Side) -> VersionDiff:
    changed = []
    for cid in sorted(set(old.facts) & set(new.facts)):
        a, b = old.facts[cid], new.facts[cid]
        delta = {f: [a[f], b[f]] for f in FACTS if a[f] != b[f]}
        if delta:
            changed.append(ChunkChange(cid, delta))
    moves = []
    for name in BALANCE_FIELDS:
        before, after = field_balance(old.rows, name), field_balance(new.rows, name)
        moves.append(DistributionMove(name, before.counts, after.counts, before.effective, after.effective,
                                      before.categories, after.categories))

    def about(side: Side) -> dict[str, Any]:
        return {"source": side.source, "folder": str(side.folder), "name": side.name, "version": side.version}

    return VersionDiff(
        old=about(old), new=about(new),
        songs_added=sorted(new.song_ids - old.song_ids), songs_removed=sorted(old.song_ids - new.song_ids),
        chunks_added=sorted(new.chunk_ids - old.chunk_ids), chunks_removed=sorted(old.chunk_ids - new.chunk_ids),
        changed=changed, distributions=moves,
    )


def diff_versions(old: str | Path, new: str | Path, endpoint_url: Optional[str] = None,
                  pull_dest: Optional[Path] = None) -> VersionDiff:
    """The diff of two versions; each a build folder, a pulled version or an s3:// version (pulled first).

    ``pull_dest``: a folder under which s3:// versions are pulled (``old/`` and ``new/``); default the pull cache."""
    return diff_sides(read_side(old, endpoint_url, pull_dest / "old" if pull_dest else None),
                      read_side(new, endpoint_url, pull_dest / "new" if pull_dest else None))
