"""The Ray executor: the local executor's work, spread over a Ray cluster (``build.executor=ray``).

It calls the very same task functions (``SongTasks``) as the local executor; only where they run changes:
- CPU work (``song_task``, ``finish_task``: decode, the ``none``/``offline`` separators, preparing songs for
  the model, chunk, convert, analyse, describe, rows) runs as Ray tasks on any node, retried by Ray
  (``max_retries``) when the worker process or its node dies; a song's analysis parts (a FanOut: its beat
  windows and chunks) run as tasks of their own, so a long song spreads over the cluster;
- a model separator (Demucs) runs in model actors: one per GPU of the cluster (``num_gpus=1``), or one CPU
  actor on a cluster without GPUs. Each loads the weights on its own node and drives a ``DemucsStream``
  from a thread (the local executor's model worker), so segments of several songs share each batch;
- prepared and separated audio never goes through the driver: the prepare task's ObjectRef goes to the
  actor and the actor's ObjectRef to the finish task; the driver ``ray.get``s only the small SongOutcomes;
- bounds as in the local executor: at most ``max_in_flight`` songs between ingest and their rows, and at
  most ``separate.songs_per_group`` + 2 songs prepared for or inside each model actor.

- ingest's items (download, check, hash, fingerprint) run as Ray tasks too (``RayIngest``), at most
  ``ingest.concurrency`` at once on the whole cluster, while the driver keeps source order, duplicates
  and the download index;
- the build's last step (``finish``: the table and the dataset exports, and for an s3:// build their
  upload) runs in one Ray task; the driver writes only the report.

Every node must reach the build folder and the stage cache: the same absolute paths (one machine, or a
shared file system) or an s3:// store (``processing.storage``; each worker then reads and writes the store
itself, and songs it does not have on disk come from the cache's ``sources/``). Every node runs the same
environment (this project installed with its ``ray`` extra), and, for Demucs, finds the weights
(``separate.weights`` on a shared path, or each node's own caches).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import ray

from ..separate.base import SeparatorError
from ..types import Failure, Song
from .base import BuildContext, FanIn, FanOut, NeedsModel, PartFailed, SongOutcome, SongsInFlight, SongTasks, feed_ingest
from .local import ONE_THREAD_ENV, WARM_ENV

log = logging.getLogger("music_mixer")

MAX_RETRIES = 3  # tries of a task after its worker process (or node) died, on top of the first


def _one_thread() -> None:
    """A CPU task uses one core (Ray runs one per CPU it counts): no library thread pools on top."""
    try:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    except ImportError:
        pass


# ----------------------------------------------------------------------------- worker side


@ray.remote(num_returns=2)
def _song_task(tasks: SongTasks, song: Song, ctx: BuildContext) -> tuple[tuple[str, SongOutcome], Any]:
    """``song_task`` in a Ray worker: ((what, outcome), model input or None). The small first value is all
    the driver fetches; the second (the prepared song) goes from here to a model actor by reference."""
    _one_thread()
    result = tasks.song_task(song, ctx)
    if isinstance(result, NeedsModel):
        return ("model", result.outcome), result.model_input
    return ("done", result), None


@ray.remote
def _warm_up(what: str = "all") -> None:
    """Import the pipeline in a fresh Ray worker (~7 s of lazy imports and first calls, see warm.py) while the
    driver starts ingest, so the first songs do not pay it; Ray then reuses the warm worker for them. ``what``:
    "stages" for a build without analysis (its workers need no analysis library; a later build's tasks that do
    import them when they first run). A worker warmed before stays as it is."""
    os.environ[WARM_ENV] = what  # warm.py reads it when it is first imported in this process
    from . import warm  # noqa: F401


@ray.remote
def _finish_task(tasks: SongTasks, song: Song, model_output: Any, outcome: SongOutcome, ctx: BuildContext) -> SongOutcome:
    _one_thread()
    return tasks.finish_task(song, model_output, outcome, ctx)


class ModelActor:
    """One model (one GPU, or some CPU cores): the separator, loaded on this actor's node, and the local
    executor's model worker thread driving its DemucsStream. ``separate`` is called once per song from
    several of the actor's threads at once; each call waits for its song while the stream batches them all."""

    def __init__(self, ctx: BuildContext, capacity: int, threads: int):
        from ..separate.choose import make_separator
        from .local import ModelWorker

        import torch

        torch.set_num_threads(max(1, threads))
        self.separator = make_separator(ctx.cfg.separate)
        self.events: queue.Queue = queue.Queue()
        self.worker = ModelWorker(self.separator, ctx, self.events, capacity)
        self.waiting: dict[Any, Future] = {}
        self.lock = threading.Lock()
        self.broken: Optional[BaseException] = None
        self.worker.start()
        threading.Thread(target=self._dispatch, name="model-results", daemon=True).start()

    def info(self) -> dict[str, Any]:
        import socket

        return {"params": self.separator.cache_params(), "format": list(self.separator.model_format()),
                "node": socket.gethostname(), "pid": os.getpid(), "device": str(self.separator.device)}

    def _dispatch(self) -> None:
        while True:
            kind, key, payload = self.events.get()
            with self.lock:
                if kind == "model-broken":
                    self.broken = payload
                    waiting, self.waiting = self.waiting, {}
                    for future in waiting.values():
                        future.set_exception(payload)
                    continue
                future = self.waiting.pop(key, None)
            if future is None:
                continue
            if isinstance(payload, BaseException):
                future.set_exception(payload)
            else:
                future.set_result(payload)

    @ray.method(num_returns=2)
    def separate(self, key: str, model_input: Any) -> tuple[Optional[str], Any]:
        """(None, ModelOutput), or (the reason, None) when the model could not separate this song."""
        import numpy as np

        future: Future = Future()
        with self.lock:
            if self.broken is not None:
                return f"{type(self.broken).__name__}: {self.broken}", None
            self.waiting[key] = future
        # the object store's arrays are read-only; the stream needs its own (and the store gets its memory back)
        model_input.tracks = [np.array(t, copy=True) for t in model_input.tracks]
        self.worker.submit(key, model_input)
        try:
            return None, future.result()
        except Exception as exc:  # this song's own failure (e.g. out of device memory), or the stream broke
            return f"{type(exc).__name__}: {exc}", None


# ----------------------------------------------------------------------------- driver side


def _death(exc: BaseException, tries: int) -> Failure:
    """A task that Ray gave up on: its process or node died on every try, or its own code raised."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return Failure("", "worker", f"{type(cause).__name__}: {cause}", "error")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Failure("", "worker", f"its Ray worker died on each of {tries} tries ({type(exc).__name__}"
                   f"{': ' + text if text else ''})", "worker_died")


@dataclasses.dataclass
class _Actor:
    handle: Any
    node: str
    device: str
    songs: int = 0  # songs sent and not yet back


@ray.remote
def _call(fn: Callable[..., Any], *args: Any) -> Any:
    _one_thread()
    return fn(*args)


# ----------------------------------------------------------------------------- ingest on the cluster


INGEST_TASK_CPUS = 0.25  # a download mostly waits on the network; checks and fingerprints are short


@ray.remote
def _ingest_item(item: Any, cfg: Any, download_dir: Any, state: Any, fingerprints: Any, share: Any) -> tuple[Any, list]:
    """One ingest item (download, check, hash, fingerprint) on any node; the song's audio is put into the
    remote cache's ``sources/`` from here when there is one (other nodes may not see this node's disk)."""
    from ..ingest.remote import run_item
    from ..outputs import source_rel

    outcome, journal = run_item(item, cfg, download_dir, state, fingerprints)
    song = getattr(outcome, "song", None)
    if share is not None and song is not None:
        store = share.open()
        if not store.exists(source_rel(song)):
            store.upload(song.audio_path, source_rel(song))
    return outcome, journal


def _split_rate(rate: Optional[str], parts: int) -> Optional[str]:
    """``ingest.rate_limit`` shared by ``parts`` downloads at once (bytes/s each, as yt-dlp reads it)."""
    if not rate:
        return rate
    from yt_dlp.utils import parse_bytes

    return str(max(1, int(parse_bytes(str(rate)) // parts)))


class RayIngest:
    """Ingest's runner on the cluster (see ``ingest.stream.ThreadRunner``): URL items run as Ray tasks on any
    node, into the download folder (a shared path); items that are local files stay on the driver, which
    has them. ``ingest.concurrency`` and ``ingest.rate_limit`` hold for the cluster as a whole: at most
    ``concurrency`` items at once, each download limited to rate_limit / concurrency. The driver keeps source
    order, duplicates and the download index (it writes the records each task hands back)."""

    def __init__(self, share: Any, max_retries: int, cfg: Any, store: Any, failures: Any, fingerprints: Any):
        from ..ingest.stream import ThreadRunner

        self.concurrency = max(1, int(cfg.concurrency))
        self.capacity = self.concurrency
        self.cfg = dataclasses.replace(cfg, rate_limit=_split_rate(cfg.rate_limit, self.concurrency))
        self.store, self.failures, self.fingerprints, self.share = store, failures, fingerprints, share
        self.local = ThreadRunner(cfg, store, failures, fingerprints)
        self.task = _ingest_item.options(num_cpus=INGEST_TASK_CPUS, max_retries=max_retries,
                                         runtime_env={"env_vars": dict(ONE_THREAD_ENV)})
        self.remote: dict[Future, tuple[Any, Any]] = {}  # future -> (item, ObjectRef)
        self.tries = max_retries + 1

    def submit(self, item: Any) -> Future:
        if not item.spec.is_url:
            return self.local.submit(item)
        from ..ingest.remote import item_state

        state = item_state(item, self.store, self.failures)
        ref = self.task.remote(item, self.cfg, Path(self.store.root).resolve(), state,
                               Path(self.fingerprints).resolve() if self.fingerprints else None, self.share)
        future = ref.future()
        self.remote[future] = (item, ref)
        return future

    def result(self, future: Future) -> Any:
        if future not in self.remote:
            return self.local.result(future)
        from ..ingest.remote import replay

        item, _ = self.remote.pop(future)
        try:
            outcome, journal = future.result()
        except ray.exceptions.RayError as exc:
            failure = _death(exc, self.tries)
            return Failure(item.display, "ingest", failure.reason, failure.kind)
        replay(journal, self.store)
        return outcome

    def shutdown(self) -> None:
        for _, ref in self.remote.values():
            ray.cancel(ref, force=True)
        self.remote.clear()
        self.local.shutdown()


class RayExecutor:
    """See the module docstring. ``address``: the cluster to join (None: start a local one, which ends with
    the build); ``max_in_flight``: songs between ingest and their rows (default: two per cluster CPU plus
    the model actors' share); ``max_retries``: tries of a CPU task after its worker died."""

    def __init__(self, address: Optional[str] = None, max_in_flight: Optional[int] = None,
                 max_retries: int = MAX_RETRIES, init_kwargs: Optional[dict[str, Any]] = None):
        self.address = address
        self.distributed = True  # its tasks may run on other machines
        self.max_in_flight = max_in_flight
        self.max_retries = max(0, int(max_retries))
        self.init_kwargs = dict(init_kwargs or {})
        self._started_here = False

    # -- the cluster

    def _connect(self) -> bool:
        """Join (or start) the cluster unless this process already has; True when this call started it."""
        if ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, "log_to_driver": True, **self.init_kwargs}
        ray.init(address=self.address, **kwargs)
        return True

    def _start_model_actors(self, ctx: BuildContext, capacity: int) -> tuple[list[_Actor], list[dict[str, Any]]]:
        """One actor per GPU (none: one CPU actor), each with the weights loaded on its node."""
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        on_cpu = gpus == 0 or ctx.cfg.separate.device == "cpu"
        cls = ray.remote(ModelActor)
        options = {"max_concurrency": capacity + 4, "max_restarts": 2, "max_task_retries": 2}
        if on_cpu:
            # As many torch threads as the local executor's model worker (this process's torch) uses: Demucs on
            # a CPU rounds differently with another thread count, and a one-machine cluster must give the local
            # executor's dataset bit for bit. It holds one of Ray's CPUs, as the local model worker holds no
            # pool slot, and its threads share the cores with the tasks.
            import torch

            threads = torch.get_num_threads()
            handles = [cls.options(num_cpus=1, **options).remote(ctx, capacity, threads)]
        else:
            handles = [cls.options(num_cpus=1, num_gpus=1, **options).remote(ctx, capacity, 1) for _ in range(gpus)]
        infos = ray.get([h.info.remote() for h in handles])
        actors = [_Actor(h, i["node"], i["device"]) for h, i in zip(handles, infos)]
        log.info("model actors: %s", ", ".join(f"{a.node} ({a.device})" for a in actors))
        return actors, infos

    # -- the build

    def run(self, items: Iterable[Any], ctx: BuildContext, tasks: SongTasks, model: Any) -> Iterator[Any]:
        self._started_here = self._connect() or self._started_here
        yield from self._run(items, ctx, tasks, model)

    def start(self) -> None:
        """Nothing to start early: the cluster is joined when the build runs."""

    def finish(self, fn: Callable[..., Any], *args: Any) -> Any:
        """The build's last step (table, dataset exports; for an s3:// build their upload) in one Ray task."""
        self._started_here = self._connect() or self._started_here
        task = _call.options(num_cpus=1, max_retries=self.max_retries, runtime_env={"env_vars": dict(ONE_THREAD_ENV)})
        return ray.get(task.remote(fn, *args))

    def ingest_runner(self, ctx: BuildContext) -> Callable[..., RayIngest]:
        """What ``iter_ingest`` runs its items with: Ray tasks (see RayIngest)."""
        return functools.partial(RayIngest, ctx.cache_store, self.max_retries)

    def close(self) -> None:
        """Shut down the local cluster this executor started (a cluster it joined goes on)."""
        if self._started_here and ray.is_initialized():
            ray.shutdown()
        self._started_here = False

    def _run(self, items: Iterable[Any], ctx: BuildContext, tasks: SongTasks, model: Any) -> Iterator[Any]:
        ctx = dataclasses.replace(ctx, cfg=ctx.cfg.with_absolute_paths())
        capacity = ctx.cfg.separate.songs_per_group + 2
        actors: list[_Actor] = []
        if model is not None:
            actors, infos = self._start_model_actors(ctx, capacity)
            params = [i["params"] for i in infos]
            if any(p != params[0] for p in params) or params[0].get("weights") != ctx.separator_params.get("weights"):
                found = "; ".join(f"{i['node']} ({i['device']}): weights sha256 {i['params'].get('weights', '?')[:12]}"
                                  for i in infos)
                raise SeparatorError(f"the model actors do not all load the driver's weights (sha256 "
                                     f"{str(ctx.separator_params.get('weights'))[:12]}): {found}. Give every node the same "
                                     "weights: separate.weights on a shared path, or the same file in each node's cache")
            if params[0] != ctx.separator_params:
                # e.g. the actors run on GPUs in bfloat16 and the driver has none: the cache keys follow the actors
                log.info("separation runs with the actors' settings %s (the driver's: %s)", params[0], ctx.separator_params)
                ctx = dataclasses.replace(ctx, separator_params=params[0], model_format=tuple(infos[0]["format"]))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        max_in_flight = self.max_in_flight or 2 * cpus + capacity * len(actors)
        ctx_ref = ray.put(ctx)
        warmed = False  # the warm-up is sent with the first song that needs a worker (none when the cache answers all)
        warmth = "all" if ctx.cfg.analyse.enabled else "stages"

        def warm_up() -> None:
            nonlocal warmed
            if not warmed:  # one per CPU: no result awaited, they only warm the workers the songs will use
                warmed = True
                for _ in range(cpus):
                    _warm_up.options(runtime_env={"env_vars": dict(ONE_THREAD_ENV)}).remote(warmth)
        one_thread = {"env_vars": dict(ONE_THREAD_ENV)}  # as the local executor's workers: set before any import
        song_task = _song_task.options(max_retries=self.max_retries, runtime_env=one_thread)
        finish_task = _finish_task.options(max_retries=self.max_retries, runtime_env=one_thread)
        part_task = _call.options(max_retries=self.max_retries, runtime_env=one_thread)
        fans: dict[str, FanIn] = {}  # song id -> its parts in flight (a song's chunks analysed on any worker)

        events: queue.Queue = queue.Queue()
        slots = threading.Semaphore(max_in_flight)
        stop_ingest = threading.Event()

        feed_ingest(items, slots, stop_ingest, lambda kind, payload: events.put((kind, payload)))

        flight = SongsInFlight(slots, capacity * len(actors))
        songs, so_far = flight.songs, flight.so_far
        pending: dict[Any, tuple[str, str]] = {}  # ObjectRef the driver waits on -> (what, song id)
        held: dict[str, Any] = {}  # song id -> the ObjectRef of its prepared input or separated output
        actor_of: dict[str, _Actor] = {}

        def done(outcome: SongOutcome) -> SongOutcome:
            held.pop(outcome.song_id, None)
            return flight.done(outcome)

        def failed(key: str, failure: Failure) -> SongOutcome:
            failure.item = key
            outcome = flight.outcome_so_far(songs[key])
            outcome.failures.append(failure)
            return done(outcome)

        def admit_model_songs() -> None:
            for song in flight.admit_to_model():
                status, prepared = song_task.remote(tasks, song, ctx_ref)
                pending[status] = ("prepare", song.song_id)
                held[song.song_id] = prepared

        def fan_out(fan: FanOut) -> None:
            fans[fan.song_id] = FanIn.start(fan)
            for index, (fn, args) in enumerate(fan.parts):
                pending[part_task.remote(fn, *args)] = ("part", (fan.song_id, index))

        def part_done(ref: Any, song_id: str, index: int) -> None:
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # its own error, or its worker died on every try
                death = _death(exc, self.max_retries + 1)
                result = PartFailed(death.reason, death.kind)
            fan = fans[song_id]
            if fan.arrive(index, result):
                del fans[song_id]
                pending[part_task.remote(fan.fan.join, *fan.join_args())] = ("finish", song_id)

        def handle_ingest(kind: str, payload: Any) -> Iterator[Any]:
            if kind == "ingest-end":
                flight.ingest_done = True
            elif kind == "ingest-error":
                yield Failure("ingest", "ingest", f"{type(payload).__name__}: {payload}", "error")
            elif not isinstance(payload, Song):
                yield payload  # an ingest failure or a duplicate
            else:
                flight.arrive(payload)
                yield payload
                answered = tasks.from_cache(payload, ctx)
                if answered is not None:  # every stage cached: answered by the driver, no task to run
                    yield done(answered)
                    return
                warm_up()
                if actors and tasks.needs_model(payload, ctx):
                    flight.model_waiting.append(payload)
                    admit_model_songs()
                else:
                    status, _ = song_task.remote(tasks, payload, ctx_ref)
                    pending[status] = ("cpu", payload.song_id)

        def handle_ready(ref: Any) -> Iterator[Any]:
            what, key = pending.pop(ref)
            if what == "part":
                part_done(ref, *key)
                return
            if what == "model":
                actor = actor_of.pop(key)
                actor.songs -= 1
                flight.model_share -= 1
                admit_model_songs()
                try:
                    error = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the actor died for good
                    error = f"{type(exc).__name__}: {exc}"
                if error is not None:
                    yield done(tasks.model_failure(songs[key], RuntimeError(error), so_far.pop(key)))
                    return
                pending[finish_task.remote(tasks, songs[key], held.pop(key), so_far.pop(key), ctx_ref)] = ("finish", key)
                return
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                if what == "prepare":
                    flight.model_share -= 1
                    admit_model_songs()
                yield failed(key, _death(exc, self.max_retries + 1))
                return
            if what == "finish":
                if isinstance(result, FanOut):
                    fan_out(result)
                    return
                yield done(result)
                return
            tag, outcome = result
            if what == "prepare" and tag == "model":
                actor = min(actors, key=lambda a: a.songs)
                actor.songs += 1
                actor_of[key] = actor
                so_far[key] = outcome
                error_ref, output_ref = actor.handle.separate.remote(key, held.pop(key))
                held[key] = output_ref
                pending[error_ref] = ("model", key)
                return
            if what == "prepare":  # it left without the model (e.g. its file no longer decodes)
                flight.model_share -= 1
                admit_model_songs()
            if isinstance(outcome, FanOut):
                fan_out(outcome)
                return
            yield done(outcome)

        try:
            while not flight.finished:
                try:
                    timeout = None if not pending else 0.0
                    while True:
                        kind, payload = events.get(timeout=timeout) if timeout != 0.0 else events.get_nowait()
                        yield from handle_ingest(kind, payload)
                        timeout = 0.0
                except queue.Empty:
                    pass
                if pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2, fetch_local=False)
                    if ready:
                        more, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0, fetch_local=False)
                        for ref in dict.fromkeys(ready + more):
                            yield from handle_ready(ref)
        finally:
            stop_ingest.set()
            for ref, (what, _) in pending.items():
                if what != "model":
                    ray.cancel(ref, force=True)
            for actor in actors:
                ray.kill(actor.handle)
