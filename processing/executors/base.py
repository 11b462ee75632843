"""What the pipeline and its executors exchange: a build's context, a song's outcome, the task set.

An executor runs the pipeline's task functions (``SongTasks``) somewhere (worker processes, a Ray
cluster) and sends back SongOutcomes; it never looks inside a stage. Stages import nothing from here.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Union

from ..config import PipelineConfig
from ..report import time_into
from ..storage import StoreSpec
from ..types import Failure, Song


@dataclass
class BuildContext:
    """What a task needs besides its song: plain data, so it travels to worker processes and nodes."""

    cfg: PipelineConfig
    out_dir: Path
    cache_root: Path
    separator_name: str
    separator_params: dict[str, Any]  # the configured separator's cache parameters
    model_format: Optional[tuple[int, int]] = None  # (rate, channels) when the separator runs in the model worker
    # An s3:// build or cache (processing.storage): out_dir / cache_root are then this node's staging / mirror.
    out_store: Optional[StoreSpec] = None
    cache_store: Optional[StoreSpec] = None

    @property
    def location(self) -> str:
        """Where the build is, as the user named it (a folder or an s3:// URI)."""
        return self.out_store.uri if self.out_store else str(self.out_dir)


@dataclass
class SongOutcome:
    """What one song's tasks produced: small, sent back to the driver."""

    song_id: str
    rows_file: Optional[str] = None  # relative to the build folder
    chunks: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    busy_s: dict[str, float] = field(default_factory=dict)  # seconds spent per stage (summed over workers)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)  # build files of this song, relative to the build folder
    audio_s: float = 0.0  # the song's length (for audio-hours-per-hour figures)
    worker: str = ""  # where it ran (host:pid)
    helpers: list[str] = field(default_factory=list)  # other workers that ran parts of it (host:pid)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def timed(self, stage: str):
        """Add the time spent inside the ``with`` block to ``busy_s[stage]``."""
        return time_into(self.busy_s, stage)

    def add_busy(self, stage: str, seconds: float) -> None:
        """Add time measured elsewhere (e.g. the model worker's share for this song) to ``busy_s[stage]``."""
        if seconds > 0:
            self.busy_s[stage] = self.busy_s.get(stage, 0.0) + seconds

    def cache_use(self, stage: str, hit: bool) -> None:
        counter = self.cache_hits if hit else self.cache_misses
        counter[stage] = counter.get(stage, 0) + 1


@dataclass
class NeedsModel:
    """A song prepared for the model worker (the answer of ``song_task`` when separation must run there)."""

    song: Song
    model_input: Any  # separate.demucs_separator.ModelInput
    outcome: SongOutcome


@dataclass
class FanOut:
    """A song's next work split into parts that any free worker may run at the same time, then joined (the
    answer of a task when one song holds more work than one core should do alone: its chunks' analysis).

    ``parts``: (function, args) pairs, each run as one task (module-level functions: they pickle by name);
    when every part is back, ``join(*join_args, results)`` runs as one more task, ``results`` in the parts'
    order, a part that failed (its own error, or its worker died) given as a ``PartFailed``. The join
    returns the song's SongOutcome (or fans out again)."""

    song_id: str
    parts: list[tuple[Callable[..., Any], tuple]]
    join: Callable[..., Any]
    join_args: tuple


class PartFailed(RuntimeError):
    """A part of a FanOut that gave no result: the reason as plain text (it travels to the join's process) and
    its kind: "error" (the part's own error) or "worker_died" (its worker process died under it)."""

    def __init__(self, reason: str, kind: str = "error"):
        super().__init__(reason, kind)

    @property
    def kind(self) -> str:
        return self.args[1]

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class FanIn:
    """An executor's record of one FanOut in flight: its parts' results as they come back."""

    fan: FanOut
    results: list[Any] = field(default_factory=list)
    left: int = 0

    @classmethod
    def start(cls, fan: FanOut) -> "FanIn":
        return cls(fan, [None] * len(fan.parts), len(fan.parts))

    def arrive(self, index: int, result: Any) -> bool:
        """Record part ``index``'s result; True when it was the last one (the join may run)."""
        self.results[index] = result
        self.left -= 1
        return self.left == 0

    def join_args(self) -> tuple:
        return (*self.fan.join_args, self.results)


@dataclass(frozen=True)
class SongTasks:
    """The pipeline's task functions, handed to an executor (module-level functions: they pickle by name).

    - ``needs_model(song, ctx) -> bool``: driver side, cheap: must this song go through the model worker?
    - ``song_task(song, ctx) -> SongOutcome | NeedsModel | FanOut``: a CPU worker's share of one song up to
      its rows, or up to the parts that other workers may share (FanOut).
    - ``finish_task(song, model_output, outcome, ctx) -> SongOutcome | FanOut``: after the model worker.
    - ``model_failure(song, error, outcome) -> SongOutcome``: a song the model worker could not separate.
    - ``from_cache(song, ctx) -> SongOutcome | None``: driver side, first: the song's outcome when every stage
      it needs is cached (no task to run for it), else None.
    """

    needs_model: Callable[[Song, BuildContext], bool]
    song_task: Callable[[Song, BuildContext], Union[SongOutcome, NeedsModel, FanOut]]
    finish_task: Callable[..., SongOutcome]
    model_failure: Callable[[Song, BaseException, SongOutcome], SongOutcome]
    from_cache: Callable[[Song, BuildContext], Optional[SongOutcome]]


class Executor(Protocol):
    """Runs every song of ``items`` (ingest's stream) through ``tasks`` and yields, as they happen, the
    ingest items that are not songs (failures, duplicates), each Song when it is taken in, and each
    song's SongOutcome. ``model`` is the separator that runs in the model worker, or None.
    ``finish(fn, *args)`` runs the build's last step (table and dataset exports) where the executor's
    workers run and returns its result; ``close()`` ends what the executor started.
    ``distributed``: its tasks may run on other machines (which then read songs from a remote cache).
    ``start()`` begins what is slow to start (the local executor's warm fork server) while the caller goes on
    preparing the build (``run_build`` calls it once its checks pass); ``run`` starts it anyway when nobody did."""

    distributed: bool

    def start(self) -> None:
        ...

    def run(self, items: Iterable[Any], ctx: BuildContext, tasks: SongTasks, model: Any) -> Iterator[Any]:
        ...

    def finish(self, fn: Callable[..., Any], *args: Any) -> Any:
        ...

    def ingest_runner(self, ctx: BuildContext) -> Optional[Callable[..., Any]]:
        """What runs ingest's items (``ingest.stream.ThreadRunner``'s interface), or None: threads here."""
        ...

    def close(self) -> None:
        ...


def feed_ingest(items: Iterable[Any], slots: threading.Semaphore, stop: threading.Event,
                put: Callable[[str, Any], None]) -> threading.Thread:
    """Start the thread that hands ingest's items to an executor's event loop: ``put("ingest", item)`` for
    each, waiting for one of ``slots`` before each Song (that bounds the songs in flight), then
    ``put("ingest-end", None)``; ``put("ingest-error", exc)`` when the stream itself fails."""

    def run() -> None:
        try:
            for item in items:
                if isinstance(item, Song):
                    while not slots.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                if stop.is_set():
                    return
                put("ingest", item)
        except BaseException as exc:  # the stream itself failed: report it, end the build cleanly
            put("ingest-error", exc)
        put("ingest-end", None)

    thread = threading.Thread(target=run, name="ingest", daemon=True)
    thread.start()
    return thread


class SongsInFlight:
    """An executor driver's record of the songs between ingest and their outcome (the same for every executor).

    Ingest takes one of ``slots`` before each song (``feed_ingest``) and ``done`` gives it back. Songs that
    need the model queue in ``model_waiting`` until fewer than ``model_capacity`` are being prepared for,
    waiting for, or inside the model (``model_share``); ``so_far`` holds what a song's first task did while
    the model works on it."""

    def __init__(self, slots: threading.Semaphore, model_capacity: int):
        self.slots = slots
        self.model_capacity = model_capacity
        self.songs: dict[str, Song] = {}
        self.so_far: dict[str, SongOutcome] = {}
        self.model_waiting: deque[Song] = deque()
        self.model_share = 0
        self.count = 0
        self.ingest_done = False

    @property
    def finished(self) -> bool:
        return self.ingest_done and self.count == 0

    def arrive(self, song: Song) -> None:
        self.count += 1
        self.songs[song.song_id] = song

    def done(self, outcome: SongOutcome) -> SongOutcome:
        self.count -= 1
        self.slots.release()
        self.songs.pop(outcome.song_id, None)
        return outcome

    def admit_to_model(self) -> Iterator[Song]:
        """The waiting songs that may go to the model now; each counts in ``model_share`` until it leaves it."""
        while self.model_waiting and self.model_share < self.model_capacity:
            self.model_share += 1
            yield self.model_waiting.popleft()

    def outcome_so_far(self, song: Song) -> SongOutcome:
        """What the song's first task did (taken out of ``so_far``), or a fresh outcome when it did nothing yet."""
        return self.so_far.pop(song.song_id, None) or SongOutcome(song.song_id, audio_s=song.duration_s)
