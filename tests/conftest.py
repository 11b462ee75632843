"""Shared fixtures: the real clips in ../shared/audio and synthetic songs."""
from __future__ import annotations

import os
from pathlib import Path

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
