"""The local executor (the default): every core of one machine, and its GPU, kept busy.

Songs stream through the stages as soon as each is ready:
- ingest runs in a thread (its downloads on threads of their own) and hands over each song as it is done;
- a song whose every stage is cached is answered in this process (``SongTasks.from_cache``: its rows written
  from the cache), so a rerun the cache answers whole starts no worker;
- CPU work (decode, resample, chunk and encode, analyse, describe, and separation by the ``none`` and
  ``offline`` separators) runs in a pool of ``workers`` processes (one per core by default). A song's
  chunks are analysed by any free worker: after chunking, its task answers with a FanOut (one part per
  chunk, and the beat network's windows), whose join assembles the song; so one long song uses every core. The pool is
  pebble's: a worker that dies (a crash, the out-of-memory killer) fails only the song it was working on,
  which the report names, and is replaced;
- a model separator (Demucs) runs in one model worker thread of this process, on the GPU when there is
  one. CPU workers prepare the next songs (decode, resample, normalise) while it works and finish the
  songs it hands back (back to the song's rate, into the cache, then chunk and analyse), so it is fed
  continuously and batches segments across songs;
- bounds: at most ``max_in_flight`` songs are between ingest and their rows (ingest waits for a slot),
  and at most ``separate.songs_per_group`` + 2 songs are prepared for or inside the model worker, so
  memory does not grow with the number of songs; each song's rows go to disk as soon as it is done.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Iterable, Iterator, Optional

from ..types import Failure, Song
from .base import BuildContext, FanIn, FanOut, NeedsModel, PartFailed, SongOutcome, SongsInFlight, SongTasks, feed_ingest

log = logging.getLogger("music_mixer")

PRELOAD = ["processing.executors.warm"]  # imported once by the fork server: workers start warm, in milliseconds


def _exit_with(driver_pid: int) -> None:
    """Exit this worker at once when the build's driver process is gone (a kill -9 of the build): no
    orphan goes on writing into the cache or the build folder. The worker's parent is the fork server,
    which lives as long as its children, so the parent-death signal alone cannot do this."""
    try:
        import select

        fd = os.pidfd_open(driver_pid)
        select.select([fd], [], [])  # a pidfd turns readable when its process exits
    except (AttributeError, OSError):  # no pidfd here: poll
        while True:
            try:
                os.kill(driver_pid, 0)
            except ProcessLookupError:
                break
            threading.Event().wait(0.5)
    os._exit(70)


def _init_worker(driver_pid: int) -> None:
    """In each worker process: die with the driver, and one thread per library (the pool uses every core)."""
    threading.Thread(target=_exit_with, args=(driver_pid,), name="driver-watch", daemon=True).start()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: also die with the fork server
        except OSError:
            pass
    torch = sys.modules.get("torch")  # a worker that imports it later gets one thread from OMP_NUM_THREADS
    if torch is not None:
        torch.set_num_threads(1)


def _mp_context() -> Any:
    """A fork server (preloaded with the pipeline's imports) where there is one; spawn elsewhere. Never a
    plain fork: the parent may hold CUDA state and threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


# What the fork server warms (warm.py), from its environment: "all" (the default), or "stages" for a build without
# analysis in a process that runs no other build (scripts/build.py): its workers never run the analysis, so the
# server skips torch, scipy, librosa and essentia. A worker imports whatever else it needs itself.
WARM_ENV = "MUSIC_MIXER_WARM"
ONE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


def _set_env(values: dict[str, str]) -> dict[str, Optional[str]]:
    """Set ``values`` in this process's environment (for the processes started from it); the values it replaced."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return saved


def _restore_env(saved: dict[str, Optional[str]]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _describe_death(exc: BaseException) -> str:
    code = getattr(exc, "exitcode", None)
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: often the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"its worker process died of {name}{hint}"
    return f"its worker process died (exit code {code})"


class ModelWorker(threading.Thread):
    """The one thread that runs the model: prepared songs in, separated songs out as events (the local
    executor runs one in its driver, the Ray executor one in each model actor)."""

    def __init__(self, model: Any, ctx: BuildContext, events: queue.Queue, capacity: int):
        super().__init__(name="model-worker", daemon=True)
        self.stream = model.stream(ctx.cfg.separate.instrumental_mode, ctx.cfg.separate.keep_stems)
        self.events = events
        self.capacity = capacity
        self.inbox: deque = deque()
        self.cv = threading.Condition()
        self.stopped = False
        self.unassigned_busy_s = 0.0

    def submit(self, key: Any, model_input: Any) -> None:
        with self.cv:
            self.inbox.append((key, model_input))
            self.cv.notify()

    def stop(self) -> None:
        with self.cv:
            self.stopped = True
            self.cv.notify()

    def run(self) -> None:
        while True:
            with self.cv:
                while not self.stopped and not self.inbox and self.stream.idle():
                    self.cv.wait()
                if self.stopped:
                    return
                arrivals = []
                while self.inbox and self.stream.songs_in_flight() + len(arrivals) < self.capacity:
                    arrivals.append(self.inbox.popleft())
            started = time.perf_counter()
            for key, model_input in arrivals:
                try:
                    self.stream.add(key, model_input)
                except Exception as exc:  # e.g. out of device memory for this song alone
                    self.events.put(("model", key, exc))
            try:
                finished = self.stream.step()
            except Exception as exc:  # the stream itself broke: fail what it held, keep the build going
                log.exception("model worker failed")
                self.events.put(("model-broken", None, exc))
                return
            # busy time (everything but waiting for songs) is shared among the songs it finishes
            self.unassigned_busy_s += time.perf_counter() - started
            for key, result in finished:
                if not isinstance(result, BaseException):
                    result.busy_s = self.unassigned_busy_s / len(finished)
                self.events.put(("model", key, result))
            if finished:
                self.unassigned_busy_s = 0.0


class LocalExecutor:
    """See the module docstring. ``workers``: CPU worker processes; ``max_in_flight``: songs between
    ingest and their rows (default: two per worker plus the model worker's share); ``warm``: what the fork server
    warms (``warm.WARM_ENV``): "all", or "stages" for a build without analysis that is its process's only build
    (the server lives as long as the process and serves every later build with what it warmed)."""

    distributed = False

    def __init__(self, workers: int, max_in_flight: Optional[int] = None, warm: str = "all"):
        self.workers = max(1, int(workers))
        self.max_in_flight = max_in_flight
        self.warm = warm

    def _server_env(self) -> dict[str, Optional[str]]:
        """Set the environment the fork server must start with (its workers' too); the values it replaced."""
        return _set_env({**ONE_THREAD_ENV, WARM_ENV: self.warm})

    def start(self) -> None:
        """Start the fork server now: it spends ~9 s importing and warming the stages' libraries (2-core machine),
        which then overlaps the driver's set-up and ingest instead of following them. Called once the build's
        checks have passed: a build that stops on a missing model or a bad setting starts no server."""
        if _mp_context().get_start_method() == "forkserver":
            from multiprocessing import forkserver

            saved = self._server_env()
            try:
                forkserver.ensure_running()
            finally:
                _restore_env(saved)

    def finish(self, fn, *args):
        """The build's last step, here (it writes the table and exports from the songs' rows)."""
        return fn(*args)

    def ingest_runner(self, ctx: BuildContext) -> None:
        """Ingest runs on its own threads here (ingest.stream's default)."""
        return None

    def close(self) -> None:
        pass

    def run(self, items: Iterable[Any], ctx: BuildContext, tasks: SongTasks, model: Any) -> Iterator[Any]:
        from pebble import ProcessExpired, ProcessPool

        model_capacity = ctx.cfg.separate.songs_per_group + 2 if model is not None else 0
        max_in_flight = self.max_in_flight or 2 * self.workers + model_capacity
        events: queue.Queue = queue.Queue()
        slots = threading.Semaphore(max_in_flight)
        stop_ingest = threading.Event()

        saved_env = self._server_env()  # workers inherit it; this process's libraries are already set up
        pool = ProcessPool(max_workers=self.workers, initializer=_init_worker, initargs=(os.getpid(),),
                           context=_mp_context())
        worker = ModelWorker(model, ctx, events, model_capacity) if model is not None else None
        if worker is not None:
            worker.start()
        feed_ingest(items, slots, stop_ingest, lambda kind, payload: events.put((kind, None, payload)))

        flight = SongsInFlight(slots, model_capacity)
        phase: dict[str, str] = {}  # song id -> "cpu", "prepare", "model", "finish", "parts" or "join"
        model_error: Optional[BaseException] = None  # the model worker broke: later model songs fail with this

        fans: dict[str, FanIn] = {}  # song id -> its parts in flight (a song's chunks analysed by any worker)

        def schedule(fn, key: str, *args, kind: str = "task") -> None:
            future = pool.schedule(fn, args=args)
            future.add_done_callback(lambda f, key=key: events.put((kind, key, f)))

        def fan_out(fan: FanOut) -> None:
            fans[fan.song_id] = FanIn.start(fan)
            phase[fan.song_id] = "parts"
            for index, (fn, args) in enumerate(fan.parts):
                schedule(fn, (fan.song_id, index), *args, kind="part")

        def admit_model_songs() -> None:
            for song in flight.admit_to_model():
                phase[song.song_id] = "prepare"
                schedule(tasks.song_task, song.song_id, song, ctx)

        def done(outcome: SongOutcome) -> SongOutcome:
            phase.pop(outcome.song_id, None)
            return flight.done(outcome)

        def model_failed(song: Song, error: BaseException) -> SongOutcome:
            return done(tasks.model_failure(song, error, flight.outcome_so_far(song)))

        try:
            while not flight.finished:
                kind, key, payload = events.get()
                if kind == "ingest":
                    if not isinstance(payload, Song):
                        yield payload  # an ingest failure or a duplicate
                        continue
                    flight.arrive(payload)
                    yield payload
                    answered = tasks.from_cache(payload, ctx)
                    if answered is not None:  # every stage cached: answered here, no worker needed (nor started)
                        yield done(answered)
                    elif model is not None and tasks.needs_model(payload, ctx):
                        if model_error is not None:
                            yield model_failed(payload, model_error)
                        else:
                            flight.model_waiting.append(payload)
                            admit_model_songs()
                    else:
                        phase[payload.song_id] = "cpu"
                        schedule(tasks.song_task, payload.song_id, payload, ctx)
                elif kind == "ingest-end":
                    flight.ingest_done = True
                elif kind == "ingest-error":
                    yield Failure("ingest", "ingest", f"{type(payload).__name__}: {payload}", "error")
                elif kind == "task":
                    song = flight.songs[key]
                    try:
                        result = payload.result()
                    except ProcessExpired as exc:
                        result = SongOutcome(key, audio_s=song.duration_s,
                                             failures=[Failure(key, "worker", _describe_death(exc), "worker_died")])
                    except Exception as exc:  # a task's own error that its stages did not catch
                        result = SongOutcome(key, audio_s=song.duration_s,
                                             failures=[Failure(key, "worker", f"{type(exc).__name__}: {exc}", "error")])
                    if phase.get(key) == "prepare":
                        if isinstance(result, NeedsModel):
                            if model_error is not None:
                                flight.model_share -= 1
                                yield model_failed(song, model_error)
                                continue
                            phase[key] = "model"
                            flight.so_far[key] = result.outcome
                            worker.submit(key, result.model_input)
                            continue
                        flight.model_share -= 1  # it left without the model (e.g. its file no longer decodes)
                        admit_model_songs()
                    if isinstance(result, FanOut):
                        fan_out(result)
                        continue
                    yield done(result)
                elif kind == "part":
                    song_id, index = key
                    try:
                        result = payload.result()
                    except ProcessExpired as exc:
                        result = PartFailed(_describe_death(exc), "worker_died")
                    except Exception as exc:  # the part's own error: the join reports it
                        result = PartFailed(f"{type(exc).__name__}: {exc}")
                    fan = fans[song_id]
                    if fan.arrive(index, result):
                        del fans[song_id]
                        phase[song_id] = "join"
                        schedule(fan.fan.join, song_id, *fan.join_args())
                elif kind == "model":
                    song = flight.songs[key]
                    flight.model_share -= 1
                    admit_model_songs()
                    if isinstance(payload, BaseException):
                        yield model_failed(song, payload)
                    else:
                        phase[key] = "finish"
                        schedule(tasks.finish_task, key, song, payload, flight.so_far.pop(key), ctx)
                elif kind == "model-broken":
                    model_error = payload
                    for key in [k for k, p in phase.items() if p == "model"]:
                        flight.model_share -= 1
                        yield model_failed(flight.songs[key], payload)
                    while flight.model_waiting:
                        yield model_failed(flight.model_waiting.popleft(), payload)
        finally:
            stop_ingest.set()
            if worker is not None:
                worker.stop()
            pool.stop()
            pool.join()
            _restore_env(saved_env)
