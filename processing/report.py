"""The build report: counts per stage, every failure with its reason, timings."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .types import Failure


@dataclass
class BuildReport:
    out_dir: str
    started_at: float = field(default_factory=time.time)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)  # chunk_id, reason
    timings_s: dict[str, float] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[stage] = round(self.timings_s.get(stage, 0.0) + time.perf_counter() - start, 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.to_dict() for f in self.failures]
        return data

    def write(self, out_dir: Path) -> Path:
        """report.json and failures.jsonl, each written whole under a temporary name and renamed into
        place: a build killed while writing them leaves the previous complete version, never half a file."""
        path = Path(out_dir) / "report.json"
        _write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str))
        _write_atomic(Path(out_dir) / "failures.jsonl", "".join(json.dumps(f.to_dict()) + "\n" for f in self.failures))
        return path

    def summary(self) -> str:
        """A short human summary for the end of a build."""
        c = self.counts
        lines = [
            f"Build in {self.out_dir}",
            f"  songs: {c.get('sources', 0)} listed, {c.get('songs_ingested', 0)} ingested, "
            f"{c.get('duplicates', 0)} duplicates, {c.get('songs_separated', 0)} separated",
            f"  chunks: {c.get('chunks_included', 0)} in the dataset "
            f"({self.hours.get('included', 0.0) * 60:.1f} min), {c.get('chunks_excluded', 0)} excluded by analysis, "
            f"{c.get('chunks_silent', 0)} silent skipped",
        ]
        if self.dataset.get("splits"):
            lines.append("  splits: " + ", ".join(
                f"{name} {s.get('songs', 0)} songs / {s.get('chunks', 0)} chunks / {s.get('hours', 0.0) * 60:.1f} min"
                for name, s in self.dataset["splits"].items()))
        hits = sum(self.cache_hits.values())
        misses = sum(self.cache_misses.values())
        lines.append(f"  cache: {hits} stage results reused, {misses} computed")
        lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings_s.items()))
        if self.failures:
            lines.append(f"  FAILURES ({len(self.failures)}), also in failures.jsonl:")
            for f in self.failures[:20]:
                lines.append(f"    [{f.stage}] {f.item}: {f.reason}")
            if len(self.failures) > 20:
                lines.append(f"    ... {len(self.failures) - 20} more")
        else:
            lines.append("  failures: none")
        return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)
