"""Music or not beyond the clips the thresholds were first set on: classes of sounds (processing.demo.soundscapes),
transformed copies of the real clips (resampled, pitch-shifted, time-stretched, mixed), and descriptions that
never call what is not music an instrumental of any genre. benchmarks/bench_musicness.py prints the same checks
on more lengths and seeds, with every cue."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import BIRD, DRUM_BASS, PIANO, SPEECH, VIBE_ACE
from processing import audio_io
from processing.analyse.analyse import NOT_MUSIC_FLAGS, analyse_audio, analyse_song
from processing.config import AnalyseConfig, DescribeConfig
from processing.demo import soundscapes
from processing.describe.describe import describe_chunks
from processing.types import AudioData
from test_analyse import clip, make_song

CFG = AnalyseConfig()


def judged_music(audio: AudioData) -> tuple[bool, list[str]]:
    result = analyse_audio(audio, CFG)
    return not NOT_MUSIC_FLAGS & set(result.flags), result.flags


@pytest.mark.parametrize("name", sorted(soundscapes.MUSIC))
def test_music_without_a_steady_beat_and_noisy_music_are_kept(name):
    music, flags = judged_music(soundscapes.MUSIC[name](12.0, 0))
    assert music, flags


@pytest.mark.parametrize("name", sorted(soundscapes.NOT_MUSIC))
def test_animal_sounds_weather_and_noise_beds_are_rejected(name):
    music, flags = judged_music(soundscapes.NOT_MUSIC[name](12.0, 1))
    assert not music and flags[0] == "non_music", flags


def test_crowd_babble_is_rejected(shared_audio):
    music, flags = judged_music(soundscapes.crowd(audio_io.decode(shared_audio / SPEECH), 6, 0))
    assert not music, flags


def _resampled(audio: AudioData, ratio: float) -> AudioData:
    """Played `ratio` times faster: pitch and tempo move together."""
    import soxr

    x = audio.samples.mean(axis=0) if audio.samples.ndim == 2 else audio.samples
    return AudioData(soxr.resample(x, audio.sample_rate, int(audio.sample_rate / ratio)).astype(np.float32), audio.sample_rate)


@pytest.mark.parametrize("name,start,ratio", [(VIBE_ACE, 10, 0.85), (PIANO, 30, 1.15), (DRUM_BASS, 5, 1.15)])
def test_resampled_music_is_kept(shared_audio, name, start, ratio):
    music, flags = judged_music(_resampled(clip(shared_audio / name, start, 15), ratio))
    assert music, flags


@pytest.mark.parametrize("name,ratio", [(SPEECH, 0.85), (SPEECH, 1.15), (BIRD, 0.85)])
def test_resampled_speech_and_bird_are_rejected(shared_audio, name, ratio):
    music, flags = judged_music(_resampled(audio_io.decode(shared_audio / name), ratio))
    assert not music, flags


def test_music_over_whale_moans_is_kept_and_moans_over_nothing_are_not(shared_audio):
    whale = soundscapes.whale_song(15.0, 7).samples.reshape(-1)
    music = clip(shared_audio / PIANO, 10, 15).samples.mean(axis=0)
    mix = music / np.abs(music).max() + 0.5 * whale[: len(music)] / np.abs(whale).max()
    kept, flags = judged_music(AudioData((0.8 * mix / np.abs(mix).max()).astype(np.float32), 44100))
    assert kept, flags
    alone, flags = judged_music(AudioData(whale, 44100))
    assert not alone, flags


def test_a_chunk_judged_not_music_is_never_described_as_an_instrumental_of_a_genre(tmp_path):
    rain = soundscapes.rain(65.0, 3)
    separated, chunks = make_song(tmp_path, rain, {}, rain, 30.0, model="none")
    analysis = analyse_song(separated, chunks, CFG)
    assert all("non_music" in c.flags for c in analysis.chunks)
    for row in describe_chunks(separated.song, analysis, chunks, DescribeConfig()):
        assert row["description"].startswith("Not music:") and "instrumental" not in row["description"]
        assert row["genre"] is None and row["genres"] == [] and row["genre_source"] is None
        assert not any(g in row["description"].lower() for g in ("ambient", "electronic", "techno", "jazz", "rock"))
