"""The build report: counts per stage, every failure with its reason, timings."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .atomic import write_text_atomic
from .types import Failure


def node_of(worker: str) -> str:
    """The host of a worker named host:pid."""
    return worker.rsplit(":", 1)[0]


@contextmanager
def time_into(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of a ``with`` block to ``seconds[stage]`` (exceptions included)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = round(seconds.get(stage, 0.0) + time.perf_counter() - start, 3)


@dataclass
class BuildReport:
    out_dir: str
    started_at: float = field(default_factory=time.time)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)  # chunk_id, reason
    timings_s: dict[str, float] = field(default_factory=dict)  # busy seconds per stage, summed over workers
    wall_s: float = 0.0  # the build's wall-clock time, start-up included
    audio_s: float = 0.0  # seconds of audio of the songs that reached separation
    workers: dict[str, dict[str, int]] = field(default_factory=dict)  # host:pid -> songs, chunks
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> songs, chunks, audio_s, processes
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    diversity: dict[str, Any] = field(default_factory=dict)  # the balance report (builders/diversity.py)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)

    def merge(self, outcome: Any) -> None:
        """Add one song's outcome (``executors.base.SongOutcome``): counts, failures, exclusions, busy time."""
        for name, n in outcome.counts.items():
            self.count(name, n)
        self.failures.extend(outcome.failures)
        self.excluded.extend(outcome.excluded)
        for stage, seconds in outcome.busy_s.items():
            self.timings_s[stage] = round(self.timings_s.get(stage, 0.0) + seconds, 3)
        for target, source in ((self.cache_hits, outcome.cache_hits), (self.cache_misses, outcome.cache_misses)):
            for stage, n in source.items():
                target[stage] = target.get(stage, 0) + n
        if outcome.counts.get("songs_separated"):
            self.audio_s += outcome.audio_s
        for helper in getattr(outcome, "helpers", []):  # workers that ran parts of the song (its chunks' analysis)
            self.workers.setdefault(helper, {"songs": 0, "chunks": 0})
            node = self.nodes.setdefault(node_of(helper), {"songs": 0, "chunks": 0, "audio_s": 0.0, "processes": 0})
            node["processes"] = sum(1 for w in self.workers if node_of(w) == node_of(helper))
        if outcome.worker:
            entry = self.workers.setdefault(outcome.worker, {"songs": 0, "chunks": 0})
            entry["songs"] += 1
            entry["chunks"] += outcome.chunks
            node = self.nodes.setdefault(node_of(outcome.worker), {"songs": 0, "chunks": 0, "audio_s": 0.0, "processes": 0})
            node["songs"] += 1
            node["chunks"] += outcome.chunks
            node["audio_s"] = round(node["audio_s"] + outcome.audio_s, 3)
            node["processes"] = sum(1 for w in self.workers if node_of(w) == node_of(outcome.worker))

    @property
    def speed(self) -> float:
        """Audio seconds per wall second (x real time)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def timed(self, stage: str):
        """Add the time spent inside the ``with`` block to ``timings_s[stage]``."""
        return time_into(self.timings_s, stage)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.to_dict() for f in self.failures]
        return data

    def write(self, out_dir: Path) -> Path:
        """report.json and failures.jsonl, each written whole under a temporary name and renamed into
        place: a build killed while writing them leaves the previous complete version, never half a file."""
        path = Path(out_dir) / "report.json"
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=str))
        write_text_atomic(Path(out_dir) / "failures.jsonl", "".join(json.dumps(f.to_dict()) + "\n" for f in self.failures))
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
        if self.diversity.get("summary"):
            lines.append(f"  balance: {self.diversity['summary']}")
        hits = sum(self.cache_hits.values())
        misses = sum(self.cache_misses.values())
        lines.append(f"  cache: {hits} stage results reused, {misses} computed")
        lines.append(f"  time: {self.wall_s:.1f} s wall for {self.audio_s / 60:.1f} min of audio = {self.speed:.1f}x real time "
                     f"({len(self.workers)} worker processes on {len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''})")
        if len(self.nodes) > 1:
            lines.append("  nodes: " + ", ".join(f"{host} {n['songs']} songs / {n['chunks']} chunks ({n['processes']} processes)"
                                                 for host, n in sorted(self.nodes.items())))
        if self.timings_s:
            lines.append("  busy (summed over workers): " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings_s.items()))
        if self.failures:
            lines.append(f"  FAILURES ({len(self.failures)}), also in failures.jsonl:")
            for f in self.failures[:20]:
                lines.append(f"    [{f.stage}] {f.item}: {f.reason}")
            if len(self.failures) > 20:
                lines.append(f"    ... {len(self.failures) - 20} more")
        else:
            lines.append("  failures: none")
        return "\n".join(lines)
