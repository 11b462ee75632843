"""The build folder and the stage cache on S3 (moto's S3 server on loopback) with the Ray executor: the
workers write the chunk files, cache entries, rows and exports into the store themselves, and the build,
pulled back, is the local executor's local build; a rerun from fresh nodes reuses the cache on S3."""
from __future__ import annotations

import os
import shutil

import pytest
import ray

from builders.audiocraft_export import relocate
from conftest import DRUM_BASS, PIANO, SONG_WITH_VOCALS, VIBE_ACE_LOWQ, one_at_a_time
from dataset_compare import assert_same_dataset, excerpt
from processing.config import load_config
from processing.pipeline import run_build
from processing.storage import StoreSpec, local_side
from s3_server import FAKE_KEYS, s3  # noqa: F401  (s3: the session's server)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]


@pytest.fixture(scope="module")
def s3_cluster(s3, tmp_path_factory):  # noqa: F811
    """A 2-CPU Ray cluster whose workers have the store's (fake) credentials and their own local folders."""
    env = dict(FAKE_KEYS, AWS_EC2_METADATA_DISABLED="true",
               MUSIC_MIXER_LOCAL=str(tmp_path_factory.mktemp("node_local")))
    saved = {k: os.environ.get(k) for k in env}
    with one_at_a_time(tmp_path_factory, "ray-cluster"):  # test_ray_executor kills Ray workers by process name
        os.environ.update(env)  # the cluster's processes inherit them
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 ** 2)
        try:
            yield s3
        finally:
            ray.shutdown()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_build_and_cache_on_s3_equal_the_local_build_and_a_rerun_reuses_the_cache(s3_cluster, shared_audio, tmp_path,
                                                                                 tiny_repo):
    bucket = s3_cluster.new_bucket()
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
    remote_cfg = [f"out_dir={build_uri}", f"cache_dir={cache_uri}", f"build.endpoint_url={s3_cluster.endpoint_url}",
                  "build.executor=ray", *common]
    on_s3 = run_build(load_config(None, remote_cfg), sources)
    assert not on_s3.report.failures and on_s3.report.cache_misses["separate"] == 4
    assert on_s3.location == build_uri and on_s3.report.out_dir == build_uri

    build = StoreSpec(build_uri, s3_cluster.endpoint_url).open()
    keys = build.list()
    assert not [k for k in keys if k.startswith(".rows/") or ".partial" in k]
    assert {"chunks.parquet", "report.json", "config.json", "dataset_card.md", "hf/README.md"} <= set(keys)
    pulled = tmp_path / "pulled"
    build.download_tree("", pulled)
    relocate(pulled)  # audiocraft's manifests name the folder they are in (as after scripts/pull.py)
    assert_same_dataset(local.out_dir, pulled)
    assert [r["audio_sha256"] for r in on_s3.rows] == [r["audio_sha256"] for r in local.rows]

    cache = StoreSpec(cache_uri, s3_cluster.endpoint_url).open()
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


def test_a_cache_entry_on_s3_is_done_only_with_its_marker_and_is_read_through_the_mirror(s3_cluster, tmp_path):
    """A writer killed mid-upload leaves files without done.json: not an entry; the next writer makes it whole."""
    from processing.cache import StageCache

    bucket = s3_cluster.new_bucket()
    store = StoreSpec(f"s3://{bucket}/c", s3_cluster.endpoint_url).open()
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
