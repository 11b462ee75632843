"""The Ray executor on a real local Ray cluster (one per module, 2 CPUs): the same dataset as the local
executor for --model none, offline and the tiny HTDemucs; a killed Ray worker is retried and nothing is
lost or written twice; a song that kills every try is reported; Ray missing fails at once.

The build folder and the stage cache on S3 (moto's S3 server on loopback) with the Ray executor: the
workers write the chunk files, cache entries, rows and exports into the store themselves, and the build,
pulled back, is the local executor's local build; a rerun from fresh nodes reuses the cache on S3."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from builders.audiocraft_export import relocate
from conftest import DRUM_BASS, PIANO, REPO, SONG_WITH_VOCALS, VIBE_ACE, VIBE_ACE_LOWQ, one_at_a_time
from dataset_compare import assert_same_dataset, excerpt, three_songs
from processing.config import load_config
from processing.executors.ray import RayExecutor
from processing.pipeline import run_build
from processing.storage import StoreSpec, local_side
from processing.types import SourceSpec
from s3_server import FAKE_KEYS, s3  # noqa: F401  (s3: the session's server)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):  # noqa: F811
    """A local Ray cluster of 2 CPUs; its workers can import the test plug-ins (crash_tagger), and have the S3
    server's (fake) credentials and their own local folders. One Ray cluster at a time in the test session
    (pytest-xdist workers): a test below kills Ray workers by their process name. (One cluster for every Ray test:
    starting one costs ~8 CPU-s, and ~11 more for each worker it starts cold.)"""
    env = dict(FAKE_KEYS, AWS_EC2_METADATA_DISABLED="true",
               MUSIC_MIXER_LOCAL=str(tmp_path_factory.mktemp("node_local")))
    saved = {k: os.environ.get(k) for k in env}
    with one_at_a_time(tmp_path_factory, "ray-cluster"):
        os.environ.update(env)  # the cluster's processes inherit them
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 ** 2,
                 runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
        try:
            yield ray
        finally:
            ray.shutdown()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _cfg(tmp_path, name, *overrides):
    return load_config(None, [f"out_dir={tmp_path / name}", f"cache_dir={tmp_path / name / '.cache'}", "progress=false",
                              "build.exports=[parquet,audiocraft]", "workers=2", *overrides])


@pytest.fixture(scope="module")
def none_builds(cluster, shared_audio, tmp_path_factory):
    """--model none on three real songs (25 s of each, 10 s chunks), with the local executor and with Ray (shared
    by the tests below)."""
    tmp = tmp_path_factory.mktemp("none")
    sources = three_songs(shared_audio, tmp, 25.0)
    local = run_build(_cfg(tmp, "local", *NONE), sources)
    on_ray = run_build(_cfg(tmp, "ray", *NONE, "build.executor=ray"), sources)
    return tmp, sources, local, on_ray


NONE = ("separate.model=none", "chunk.chunk_s=10")


def test_model_none_same_dataset_as_local_and_rerun_reuses_the_cache(none_builds):
    tmp, sources, local, on_ray = none_builds
    assert not local.report.failures and not on_ray.report.failures and len(on_ray.rows) == 6
    assert_same_dataset(local.out_dir, on_ray.out_dir)
    nodes = on_ray.report.nodes
    assert len(nodes) == 1 and sum(n["songs"] for n in nodes.values()) == 3
    assert sum(n["chunks"] for n in nodes.values()) == 6
    assert "on 1 node" in on_ray.report.summary()
    again = run_build(_cfg(tmp, "ray", *NONE, "build.executor=ray"), sources)
    assert not again.report.cache_misses and again.report.cache_hits["chunk"] == 3
    assert_same_dataset(local.out_dir, again.out_dir)


ANALYSIS_LIBRARIES = ("torch", "librosa", "essentia", "scipy")


@ray.remote
def _loaded() -> tuple[bool, list[str]]:
    """Whether this Ray worker was warmed up, and which analysis libraries it has imported."""
    return "processing.executors.warm" in sys.modules, sorted(m for m in ANALYSIS_LIBRARIES if m in sys.modules)


def test_a_build_without_analysis_warms_its_ray_workers_without_the_analysis_libraries(cluster, shared_audio, tmp_path,
                                                                                      monkeypatch):
    """As the local executor's fork server: the warm-up a build sends its Ray workers imports the stages only when
    the build has no analysis (~7 CPU-s less for each fresh worker), and everything when it has. (Here, after the
    module's first builds, the builds' own workers are warm already: only the probe's worker starts fresh.)"""
    from processing.executors import ray as ray_executor
    from processing.executors.local import ONE_THREAD_ENV

    sent: list[str] = []
    real = ray_executor._warm_up

    class Recorded:  # the real remote function, with what each build asks of it written down
        def __init__(self, call=real):
            self.call = call

        def options(self, **kw):
            return Recorded(self.call.options(**kw))

        def remote(self, what: str = "all"):
            sent.append(what)
            return self.call.remote(what)

    monkeypatch.setattr(ray_executor, "_warm_up", Recorded())
    sources = [excerpt(shared_audio / DRUM_BASS, tmp_path / "drums.wav", 0, 6.0)]
    common = ["separate.model=none", "chunk.chunk_s=3", "ingest.min_duration_s=1", "build.executor=ray",
              "build.exports=[parquet]"]
    off = run_build(_cfg(tmp_path, "off", *common, "analyse.enabled=false"), sources)
    on = run_build(_cfg(tmp_path, "on", *common), sources)
    assert not off.report.failures and not on.report.failures and off.rows and on.rows[0]["bpm"] is not None
    assert sent == ["stages"] * 2 + ["all"] * 2  # one per CPU of the cluster, per build

    # what a fresh worker holds after the stages' warm-up (a runtime env of its own: Ray starts a new worker for it,
    # and runs the next task of that env in the same worker)
    env = {"env_vars": {**ONE_THREAD_ENV, "MUSIC_MIXER_TEST_POOL": "stages"}}
    ray.get(real.options(runtime_env=env).remote("stages"))
    assert ray.get(_loaded.options(runtime_env=env).remote()) == (True, [])


def test_offline_separator_same_dataset_as_local(cluster, shared_audio, tmp_path):
    sources = [excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 30, 16.0),
               excerpt(shared_audio / VIBE_ACE_LOWQ, tmp_path / "jazz22k.wav", 5, 12.0),
               excerpt(shared_audio / DRUM_BASS, tmp_path / "drums.wav", 0, 12.0)]
    sources[2].instrumental = True
    common = ["separate.model=offline", "chunk.chunk_s=5", "chunk.min_tail_s=2", "ingest.min_duration_s=1",
              "ingest.dedup=false", "analyse.exclude_flagged=false"]
    local = run_build(_cfg(tmp_path, "local", *common), sources)
    on_ray = run_build(_cfg(tmp_path, "ray", *common, "build.executor=ray"), sources)
    assert not on_ray.report.failures
    assert {r["separation_model"] for r in on_ray.rows} == {"offline-repet", "none"}
    assert_same_dataset(local.out_dir, on_ray.out_dir)


def test_tiny_htdemucs_same_dataset_as_local(cluster, shared_audio, tmp_path, tiny_repo):
    """Separation in a model actor, fed prepared songs by reference, batching segments across songs."""
    sources = [excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 40, 11.0),
               excerpt(shared_audio / VIBE_ACE_LOWQ, tmp_path / "jazz22k.wav", 10, 6.0),  # mono 22.05 kHz
               excerpt(shared_audio / PIANO, tmp_path / "piano.wav", 0, 7.0)]
    common = [f"separate.weights={tiny_repo}", "separate.cpu_batch_segments=4", "chunk.chunk_s=3", "chunk.min_tail_s=1",
              "ingest.min_duration_s=1", "ingest.dedup=false", "analyse.exclude_flagged=false"]
    local = run_build(_cfg(tmp_path, "local", *common), sources)
    on_ray = run_build(_cfg(tmp_path, "ray", *common, "build.executor=ray"), sources)
    assert not on_ray.report.failures and on_ray.report.cache_misses["separate"] == 3
    assert {r["separation_model"] for r in on_ray.rows} == {"htdemucs"}
    for report in (local.report, on_ray.report):  # busy time per stage, the model worker's included
        assert all(report.timings_s.get(f"separate ({step})") for step in ("prepare", "model", "finish"))
    assert_same_dataset(local.out_dir, on_ray.out_dir)


def _busy_task_pids() -> list[int]:
    """Ray workers running one of the build's tasks now: a song's (decode, separate, chunk) or a part's (analysis
    of a chunk or a beat window, a song's join, the exports). Ray names a busy worker process after its task."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if fh.read().startswith((b"ray::_song_task", b"ray::_call")):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_a_killed_ray_worker_is_retried_and_nothing_is_lost_or_written_twice(none_builds):
    tmp, sources, local, _ = none_builds
    killed: list[int] = []
    stop = threading.Event()

    def kill_one() -> None:
        while not stop.is_set() and not killed:
            pids = _busy_task_pids()
            if pids:
                time.sleep(0.3)  # inside the task, not at its first instruction
                if pids[0] in _busy_task_pids():  # still running it (or another task): killed mid-task
                    try:
                        os.kill(pids[0], signal.SIGKILL)
                        killed.append(pids[0])
                    except ProcessLookupError:
                        pass
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_one, daemon=True)
    watcher.start()
    try:
        result = run_build(_cfg(tmp, "killed", *NONE, "build.executor=ray"), sources)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no Ray worker was caught running a song"
    assert not result.report.failures
    assert_same_dataset(local.out_dir, result.out_dir)
    assert not [p for p in result.out_dir.rglob("*") if ".partial" in p.name and "/.cache/" not in p.as_posix()]


def test_a_song_that_kills_every_try_is_reported_and_the_rest_is_built(cluster, shared_audio, tmp_path):
    sources = [SourceSpec(str(shared_audio / DRUM_BASS)),  # the crash tagger kills on its one 25 s chunk
               excerpt(shared_audio / VIBE_ACE, tmp_path / VIBE_ACE.replace(".ogg", ".wav"), 10, 20.0)]
    cfg = _cfg(tmp_path, "crash", "separate.model=none", "build.executor=ray", "build.exports=[parquet]",
               "analyse.tagger=python:crash_tagger:factory")
    result = run_build(cfg, sources, RayExecutor(max_retries=1))
    [failure] = result.report.failures
    # the tagger runs in the part analysing the drum song's chunk: that Ray task dies on both tries, the song's
    # analysis fails by name and its chunk is kept, excluded
    assert failure.kind == "worker_died" and failure.stage == "analyse" and "each of 2 tries" in failure.reason
    drum_rows = [r for r in result.rows if r["song_id"] == failure.item]
    assert failure.item and drum_rows and all(r["excluded"] and "analysis_failed" in r["flags"] for r in drum_rows)
    assert {r["source_title"] for r in result.rows if not r["excluded"]} == {"Vibe Ace"}


def test_cli_joins_a_running_cluster_by_address(cluster, shared_audio, tmp_path):
    address = ray.get_runtime_context().gcs_address
    listing = tmp_path / "sources.txt"
    listing.write_text(f"{shared_audio / DRUM_BASS}\n")
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "build.py"), str(listing), "--out", str(out),
                          "--model", "none", "--no-progress", "--executor", "ray", "--ray-address", address,
                          "--set", "build.exports=[parquet]"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    # the song's task and its analysis parts (beat window, chunk) may each run in another Ray worker process
    assert f"{len(report['workers'])} worker processes on 1 node" in run.stdout and report["workers"]
    assert report["settings"]["build"]["executor"] == "ray" and report["counts"]["chunks_included"] == 1


def test_without_ray_the_ray_executor_fails_at_once_saying_how_to_install_it(tmp_path):
    hide = tmp_path / "no_ray"
    (hide / "ray").mkdir(parents=True)
    (hide / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = dict(os.environ, PYTHONPATH=str(hide))
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "build.py"), "--demo", "--out", str(tmp_path / "b"),
                          "--executor", "ray"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "pip install -e '.[ray]'" in run.stderr, run.stderr
    assert not (tmp_path / "b").exists() and time.monotonic() - started < 60


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; counts requests per path and the most ever in progress at once."""

    lock = threading.Lock()
    active = 0
    most = 0
    hits: dict[str, int] = {}

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
            cls.hits[self.path] = cls.hits.get(self.path, 0) + 1
        try:
            time.sleep(0.2)  # long enough for a second download to overlap if one were allowed
            super().do_GET()
        finally:
            with cls.lock:
                cls.active -= 1


def test_downloads_run_as_ray_tasks_within_the_clusters_concurrency(cluster, shared_audio, tmp_path, monkeypatch):
    """URL items are downloaded, checked and fingerprinted by Ray tasks, never more than ingest.concurrency
    at once on the cluster; the driver keeps their order and the download index; same dataset as local."""
    import functools

    import processing.ingest.stream as stream

    served = tmp_path / "site"
    names = ["vocal.wav", "jazz.wav", "piano.wav"]
    for name, (src, start) in zip(names, [(SONG_WITH_VOCALS, 30), (VIBE_ACE, 10), (PIANO, 0)]):
        excerpt(shared_audio / src, served / name, start, 8.0)
    handler = type("Handler", (_CountingHandler,), {"hits": {}, "active": 0, "most": 0, "lock": threading.Lock()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sources = [SourceSpec(f"{base}/{n}", title=n.split(".")[0]) for n in names] + [SourceSpec(f"{base}/gone.wav")]
    common = ["separate.model=none", "chunk.chunk_s=4", "chunk.min_tail_s=1", "ingest.min_duration_s=1",
              "ingest.concurrency=1", "ingest.rate_limit=50M", "analyse.exclude_flagged=false"]
    try:
        local = run_build(_cfg(tmp_path, "local", *common), sources)
        handler.most = 0
        on_driver: list[str] = []  # URL items the driver process itself ran (none: they are Ray tasks)
        real = stream._process
        monkeypatch.setattr(stream, "_process", lambda item, *a: on_driver.append(item.display) or real(item, *a))
        on_ray = run_build(_cfg(tmp_path, "ray", *common, "build.executor=ray"), sources)
    finally:
        server.shutdown()
    assert not on_driver and handler.most == 1
    [failure] = on_ray.report.failures
    assert failure.item.endswith("/gone.wav") and failure.stage == "ingest"
    assert [f.to_dict() for f in local.report.failures] == [failure.to_dict()]
    assert_same_dataset(local.out_dir, on_ray.out_dir)
    index = (on_ray.out_dir / ".cache" / "downloads" / "downloads.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["url"] for line in index) == sorted(s.location for s in sources[:3])
    assert all(handler.hits.get(f"/{n}", 0) >= 1 for n in names)


def test_the_download_rate_is_shared_by_the_cluster_s_concurrent_downloads():
    from processing.executors.ray import _split_rate

    assert _split_rate("2M", 4) == str(2 * 1024 * 1024 // 4) and _split_rate(None, 4) is None


# ----------------------------------------------------------------------------- the build and its cache on S3


def test_build_and_cache_on_s3_equal_the_local_build_and_a_rerun_reuses_the_cache(cluster, s3, shared_audio,  # noqa: F811
                                                                                 tmp_path, tiny_repo):
    bucket = s3.new_bucket()
    sources = [excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 40, 11.0),
               excerpt(shared_audio / VIBE_ACE_LOWQ, tmp_path / "jazz22k.wav", 10, 6.0),
               excerpt(shared_audio / PIANO, tmp_path / "piano.wav", 0, 7.0),
               excerpt(shared_audio / DRUM_BASS, tmp_path / "drums.wav", 0, 6.0)]
    sources[3].instrumental = True
    common = [f"separate.weights={tiny_repo}", "separate.cpu_batch_segments=4", "chunk.chunk_s=3", "chunk.min_tail_s=1",
              "ingest.min_duration_s=1", "ingest.dedup=false", "analyse.exclude_flagged=false", "progress=false",
              "build.exports=[parquet,audiocraft,hf]", "workers=2"]
    local = run_build(load_config(None, [f"out_dir={tmp_path / 'local'}", *common]), sources)
    build_uri, cache_uri = f"s3://{bucket}/builds/set1", f"s3://{bucket}/mm-cache"
    remote_cfg = [f"out_dir={build_uri}", f"cache_dir={cache_uri}", f"build.endpoint_url={s3.endpoint_url}",
                  "build.executor=ray", *common]
    on_s3 = run_build(load_config(None, remote_cfg), sources)
    assert not on_s3.report.failures and on_s3.report.cache_misses["separate"] == 4
    assert on_s3.location == build_uri and on_s3.report.out_dir == build_uri

    build = StoreSpec(build_uri, s3.endpoint_url).open()
    keys = build.list()
    assert not [k for k in keys if k.startswith(".rows/") or ".partial" in k]
    assert {"chunks.parquet", "report.json", "config.json", "dataset_card.md", "hf/README.md"} <= set(keys)
    pulled = tmp_path / "pulled"
    build.download_tree("", pulled)
    relocate(pulled)  # audiocraft's manifests name the folder they are in (as after scripts/pull.py)
    assert_same_dataset(local.out_dir, pulled)
    assert [r["audio_sha256"] for r in on_s3.rows] == [r["audio_sha256"] for r in local.rows]

    cache = StoreSpec(cache_uri, s3.endpoint_url).open()
    done = [k.split("/")[0] for k in cache.list() if k.endswith("/done.json")]
    assert {stage: done.count(stage) for stage in set(done)} == {"separate": 4, "chunk": 4, "analyse": 4}
    assert len(cache.list("sources")) == 4  # each song's audio, for nodes without the file

    # fresh nodes: no local mirror or staging; everything comes from the cache on S3, and no cached audio is
    # fetched (chunk files go from cache to build inside the store; nothing else reads audio on a full hit)
    shutil.rmtree(local_side(cache_uri, "cache"))
    shutil.rmtree(local_side(build_uri, "build"))
    again = run_build(load_config(None, remote_cfg), sources)
    assert not again.report.failures and not again.report.cache_misses
    assert again.report.cache_hits == {"separate": 4, "chunk": 4, "analyse": 4, "describe": 4}
    assert [r["audio_sha256"] for r in again.rows] == [r["audio_sha256"] for r in local.rows]
    mirror = local_side(cache_uri, "cache")
    assert not [p for p in mirror.rglob("*") if p.suffix in (".flac", ".wav", ".npz")]


def test_a_cache_entry_on_s3_is_done_only_with_its_marker_and_is_read_through_the_mirror(s3, tmp_path):  # noqa: F811
    """A writer killed mid-upload leaves files without done.json: not an entry; the next writer makes it whole."""
    from processing.cache import StageCache

    bucket = s3.new_bucket()
    store = StoreSpec(f"s3://{bucket}/c", s3.endpoint_url).open()
    writer = StageCache(tmp_path / "node_a", remote=store)
    entry = writer.entry("chunk", "1", "abc", {"x": 1})
    store.write_bytes(f"{entry.rel}/chunks/0.wav", b"half")  # what a killed upload leaves
    assert not entry.is_done()

    def compute(folder):
        (folder / "chunks").mkdir()
        (folder / "chunks" / "0.wav").write_bytes(b"whole")
        return {"n": 1}

    _, meta, hit = writer.get_or_compute("chunk", "1", "abc", {"x": 1}, compute)
    assert not hit and meta == {"n": 1} and store.read_bytes(f"{entry.rel}/chunks/0.wav") == b"whole"
    reader = StageCache(tmp_path / "node_b", remote=store)  # another node: nothing local yet
    again = reader.entry("chunk", "1", "abc", {"x": 1})
    assert again.is_done() and again.read_meta() == {"n": 1} and not again.path.exists()  # no file fetched
    assert (again.fetch() / "chunks" / "0.wav").read_bytes() == b"whole"
    assert reader.get_or_compute("chunk", "1", "abc", {"x": 1}, lambda f: 1 / 0)[2]  # a hit: nothing computed
