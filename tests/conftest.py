"""Shared fixtures: the real clips in ../shared/audio and synthetic songs."""
from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = Path(os.environ.get("MUSIC_MIXER_SHARED_AUDIO", REPO.parent / "shared" / "audio"))

SONG_WITH_VOCALS = "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"  # 133.0 s, 44.1 kHz stereo
VIBE_ACE = "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"  # 61.5 s, jazz instrumental
VIBE_ACE_LOWQ = "Kevin_MacLeod_-_Vibe_Ace.lowq-22k-mono.ogg"  # the same recording, 22.05 kHz mono
DRUM_BASS = "admiralbob77_-_Choice_-_Drum-bass.hq.ogg"  # 25.0 s, drums and bass only
PIANO = "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg"  # 70.8 s solo piano
SPEECH = "198-209-0000.hq.ogg"  # 13.9 s read speech, 16 kHz mono
BIRD = "456440__inspectorj__bird-whistling-robin-single-13.hq.ogg"  # 2.7 s bird call


# `make test` runs the modules on 2 pytest-xdist processes (--dist loadfile), handed out in collection order: the
# slowest modules first (seconds, serial, 2-core machine), so that no long one starts last and runs alone.
SLOW_MODULES_FIRST = (
    "test_ray_executor",  # ~290 s
    "test_faults_kill",  # ~245 s
    "test_executor",  # ~200 s
    "test_end_to_end",  # ~200 s
    "test_musicgen_training",  # ~100 s
    "test_bad_inputs",  # ~80 s
    "test_chunk_stream",  # ~80 s alone, ~7 min on a loaded machine (a 20-minute song)
    "test_build_cli",  # ~70 s
    "test_curate",  # ~70 s
    "test_beat_network",  # ~55 s
    "test_fan_out",  # ~50 s (two one-song builds, after the session's small real build)
    "test_weights_download",  # ~45 s
)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering; a stable sort keeps each module's order
def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not (SHARED_AUDIO / SONG_WITH_VOCALS).is_file():
        pytest.fail(f"real test clips not found in {SHARED_AUDIO} (expected ../shared/audio beside the repo)")
    return SHARED_AUDIO


@pytest.fixture(scope="module")
def single_torch_thread():
    """The test machine's 2 cores are shared: torch's spinning worker threads only slow it down."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    """A demucs local repo holding a tiny randomly initialised HTDemucs saved as `htdemucs`."""
    import tiny_demucs

    return tiny_demucs.save_repo(tmp_path_factory.mktemp("tiny_repo"))


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder this test session's processes share: under pytest-xdist (`make test`), the parent of every
    worker's own temporary folder (.../pytest-N/popen-gwK), else the session's temporary folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def one_at_a_time(tmp_path_factory: pytest.TempPathFactory, name: str):
    """Held by one process of the test session at a time (a file lock): for what the workers must not do together,
    such as running two local Ray clusters (a test kills Ray workers by their process name)."""
    from filelock import FileLock

    with FileLock(str(_session_root(tmp_path_factory) / f"{name}.lock")):
        yield


def shared_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]) -> Any:
    """`make(folder)` run once per test session, also under pytest-xdist: its workers share one folder (beside
    their own temporary folders) and a file lock, the first to come builds and pickles the result, the others
    wait and read it. Only for what the tests read and never change."""
    root = _session_root(tmp_path_factory)
    folder, done = root / f"shared-{name}", root / f"shared-{name}.pickle"
    with one_at_a_time(tmp_path_factory, f"shared-{name}"):
        if not done.is_file():
            folder.mkdir(exist_ok=True)
            done.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(done.read_bytes())


REAL_SMALL_SONGS = (  # clip, start and length of the excerpt (s), what a user would write in the sources file
    (VIBE_ACE, 10.0, 20.0, {"artist": "Kevin MacLeod", "genre": "jazz", "moods": ["relaxed"], "licence": "CC-BY-3.0"}),
    (DRUM_BASS, 0.0, 12.0, {"artist": "Admiral Bob", "licence": "CC-BY-NC-3.0"}),
    (PIANO, 20.0, 12.0, {"artist": "Lena Orsa", "licence": "CC-BY-NC-3.0"}),
)
REAL_SMALL_BUILD_NAME = "mm_test"


@pytest.fixture(scope="session")
def real_small_build(tmp_path_factory, shared_audio):
    """A real `--model none` build (ingest, chunking, analysis with the default tagger and tempo, descriptions,
    every export) of three excerpts of real clips, 10 s chunks: (build folder, DatasetArtifacts). The export and
    loading tests run on it as on builders.fixture's made-up values. Built once per session; read only."""

    def make(folder: Path):
        from builders import build_dataset
        from processing import audio_io
        from processing.config import load_config
        from processing.pipeline import run_build
        from processing.types import AudioData, SourceSpec

        sources = []
        for clip, start_s, length_s, meta in REAL_SMALL_SONGS:
            audio = audio_io.decode(shared_audio / clip)
            a = int(start_s * audio.sample_rate)
            path = folder / "in" / (clip.split(".")[0] + ".wav")
            audio_io.write(path, AudioData(audio.samples[:, a:a + int(length_s * audio.sample_rate)], audio.sample_rate),
                           subtype="PCM_16")
            sources.append(SourceSpec(str(path), **meta))
        cfg = load_config(None, [f"out_dir={folder / 'build'}", f"cache_dir={folder / 'cache'}", "separate.model=none",
                                 "chunk.chunk_s=10", "progress=false", f"build.name={REAL_SMALL_BUILD_NAME}"])
        result = run_build(cfg, sources)
        assert not result.report.failures, result.report.failures
        return result.out_dir, build_dataset(result.out_dir, cfg)  # the exports again: their DatasetArtifacts

    return shared_once(tmp_path_factory, "real_small_build", make)

