"""musicnn with its real weights: the PyTorch port equals musicnn's own TensorFlow graph, hears
what the real clips hold, and its facts reach the rows and descriptions only above thresholds."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DRUM_BASS, PIANO, SONG_WITH_VOCALS, SPEECH, VIBE_ACE
from processing import audio_io
from processing.analyse import musicnn
from processing.analyse.analyse import analyse_audio, analyse_song
from processing.analyse.features import to_mono
from processing.analyse.tag_facts import chunk_facts, song_genres_moods
from processing.analyse.tagger import MusicnnTagger, TaggerUnavailable, make_tagger
from processing.analyse.tf_checkpoint import CheckpointError, read_checkpoint
from processing.config import AnalyseConfig, DescribeConfig
from processing.describe.describe import describe_chunks
from processing.types import AudioData
from test_analyse import clip, make_song
from test_describe import assert_facts_in_row

REPO = Path(__file__).resolve().parents[1]
CFG = AnalyseConfig()


@pytest.fixture(scope="module")
def tagger() -> MusicnnTagger:
    return make_tagger("musicnn")


def test_checkpoint_reader_reads_musicnn_weights():
    tensors = read_checkpoint(str(musicnn.checkpoint_dir("MTT_musicnn")) + os.sep)
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204) and tensors["conv2d/kernel"].dtype == np.float32
    assert tensors["dense_1/kernel"].shape == (200, 50) and tensors["batch_normalization_9/moving_mean"].shape == (1506,)
    assert np.isfinite(tensors["dense/kernel"]).all() and np.abs(tensors["dense/kernel"]).max() > 0


def test_checkpoint_reader_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint index"):
        read_checkpoint(tmp_path / "x")
    (tmp_path / "x.index").write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="bad table magic"):
        read_checkpoint(tmp_path / "x")


@pytest.fixture(scope="module")
def tensorflow_scores(shared_audio, tmp_path_factory) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(input patches of five real clips, each model's scores from musicnn's own graph run by TensorFlow), both
    models in one run of the TensorFlow venv."""
    tmp = tmp_path_factory.mktemp("tf")
    batch = np.concatenate([
        musicnn.patches(musicnn.log_mel(to_mono(clip(shared_audio / name, start, 9.0), musicnn.SAMPLE_RATE)))
        for name, start in ((PIANO, 20), (SONG_WITH_VOCALS, 40), (SPEECH, 0), (DRUM_BASS, 5), (VIBE_ACE, 30))
    ])
    np.save(tmp / "patches.npy", batch)
    pairs = [str(a) for model in musicnn.MODELS for a in (musicnn.checkpoint_dir(model), tmp / f"{model}.npy")]
    proc = subprocess.run(
        [os.environ["MUSIC_MIXER_TF_PYTHON"], str(REPO / "tests" / "musicnn_tf_reference.py"), str(tmp / "patches.npy"),
         *pairs], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return batch, {model: np.load(tmp / f"{model}.npy") for model in musicnn.MODELS}


@pytest.mark.skipif(
    not os.environ.get("MUSIC_MIXER_TF_PYTHON"),
    reason="set MUSIC_MIXER_TF_PYTHON to a python with tensorflow-cpu (make test does) to compare with musicnn's graph",
)
@pytest.mark.parametrize("model", musicnn.MODELS)
def test_pytorch_port_equals_musicnn_tensorflow_graph(model, tensorflow_scores):
    """Same input patches -> the same scores as musicnn's own graph, run by TensorFlow."""
    import torch

    batch, references = tensorflow_scores
    reference = references[model]
    with torch.inference_mode():
        ours = musicnn.load_network(model)(torch.from_numpy(batch)).numpy()
    assert reference.shape == ours.shape == (len(batch), 50)
    assert np.abs(ours - reference).max() < 1e-4
    assert reference.std(axis=0).max() > 0.05  # the patches really differ (no saturated, identical input)


def test_log_mel_is_float32_and_loud_clips_keep_their_own_scores(shared_audio, tagger):
    """musicnn's own extractor casts to float16 first: loud audio overflows to inf and every clip scores alike."""
    loud = []
    for name in (PIANO, DRUM_BASS):
        audio = clip(shared_audio / name, 5, 6.0)
        audio = AudioData(audio.samples / np.abs(audio.samples).max(), audio.sample_rate)  # peak 0 dBFS
        spec = musicnn.log_mel(to_mono(audio, musicnn.SAMPLE_RATE))
        assert spec.dtype == np.float32 and np.isfinite(spec).all() and spec.max() > np.log10(65504.0)
        loud.append(tagger.tag(audio))
    assert loud[0]["mtt:piano"] > 0.5 > loud[1]["mtt:piano"]


def test_short_audio_is_repeated_to_one_patch(tagger):
    spec = musicnn.log_mel(np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1)
    assert musicnn.patches(spec).shape == (1, musicnn.PATCH_FRAMES, musicnn.N_MELS)
    assert len(tagger.tag(AudioData(np.zeros((1, 4000), np.float32), 16000))) == 100


def test_missing_weights_say_how_to_install(tmp_path):
    with pytest.raises(TaggerUnavailable, match=r"pip install --no-deps musicnn==0\.1\.0.*analyse\.tagger=none"):
        make_tagger("musicnn", tmp_path)
    assert make_tagger("none") is None


def test_tagger_device_auto_takes_the_gpu_only_when_there_is_one():
    import torch

    gpu = torch.cuda.is_available()
    assert musicnn.tagger_device("auto") == ("cuda" if gpu else "cpu") and musicnn.tagger_device("cpu") == "cpu"
    if not gpu:  # asking for a GPU that is not there fails at once, naming the setting
        with pytest.raises(TaggerUnavailable, match=r"analyse\.tagger_device=cuda:1, but this process sees no CUDA GPU"):
            make_tagger("musicnn", device="cuda:1")


@pytest.mark.parametrize("name,start,heard", [(PIANO, 20, "piano"), (DRUM_BASS, 0, "drums")])
def test_real_clips_instruments_are_heard(shared_audio, name, start, heard):
    result = analyse_audio(clip(shared_audio / name, start, 20.0), CFG)
    assert heard in result.heard_instruments
    assert result.instrument_sources[result.heard_instruments.index(heard)] == "model"
    assert result.vocal_score < CFG.vocal_threshold and result.flags == []


def test_speech_gets_voice_tags_and_is_flagged(shared_audio):
    result = analyse_audio(audio_io.decode(shared_audio / SPEECH), CFG)
    top = sorted(result.tag_scores, key=lambda t: -result.tag_scores[t])[:5]
    assert {"mtt:female", "mtt:vocal", "mtt:woman"} & set(top)
    assert result.vocal_score >= CFG.vocal_threshold and "vocals_heard" in result.flags and "non_music" in result.flags
    assert result.heard_instruments == []  # a voice is no drums and bass


def test_song_without_metadata_gets_genre_and_tag_scores_from_the_model(shared_audio, tmp_path):
    audio = clip(shared_audio / VIBE_ACE, 0, 60.0)
    sep, chunks = make_song(tmp_path, audio, {}, audio, chunk_s=30, model="none")
    result = analyse_song(sep, chunks, CFG)
    song = result.song_row()
    assert song["song_genre"] == "jazz" and song["song_genre_source"] == "model" and song["song_tagger"] == "musicnn"
    scores = {d["tag"]: d["score"] for d in song["song_tag_scores"]}
    rows = result.chunk_rows()
    assert len(scores) == 100 and all(len(r["tag_scores"]) == 100 for r in rows)
    for tag in ("msd:jazz", "mtt:piano"):  # the song's scores are the chunks' average
        assert scores[tag] == pytest.approx(np.mean([{d["tag"]: d["score"] for d in r["tag_scores"]}[tag] for r in rows]), abs=1e-3)
    assert all(r["flags"] == [] for r in rows)
    for row in describe_chunks(sep.song, result, chunks, DescribeConfig()):
        assert row["genre"] == "jazz" and "jazz" in row["description"] and row["genre_source"] == "model"
        assert_facts_in_row(row)


def test_singing_is_never_called_instrumental(shared_audio, tmp_path):
    """Sung vocals left in the audio (here: no separation at all) are heard, flagged and not described as instrumental."""
    audio = clip(shared_audio / SONG_WITH_VOCALS, 20, 30.0)
    sep, chunks = make_song(tmp_path, audio, {}, audio, chunk_s=30, model="none")
    result = analyse_song(sep, chunks, CFG)
    row = result.chunk_rows()[0]
    assert row["vocal_score"] >= CFG.vocal_threshold and "vocals_heard" in row["flags"]
    assert "vocals_heard" in result.flags
    assert "guitar" in row["instrument"] and "bass" not in row["instrument"]  # the low voice fakes the bass cue
    for desc in describe_chunks(sep.song, result, chunks, DescribeConfig()):
        assert "instrumental" not in desc["description"]
        assert_facts_in_row(desc)


def test_mapping_thresholds():
    scores = dict({"msd:jazz": 0.44, "msd:blues": 0.23, "mtt:electronic": 0.19, "msd:Mellow": 0.12, "mtt:slow": 0.14,
                   "mtt:piano": 0.31, "mtt:guitar": 0.29, "mtt:drums": 0.16, "mtt:female": 0.2, "mtt:beat": 0.4})
    genres, moods = song_genres_moods(scores, 0.3)
    assert genres == ["jazz", "blues"]  # electronic < 0.2; blues >= 0.2 and >= half of jazz
    assert moods == ["mellow"]  # slow 0.14 < 0.15
    facts = chunk_facts(scores)
    assert list(facts.instruments) == ["piano", "drums"] and facts.vocal_score == 0.2 and facts.instrument_score == 0.4
    assert song_genres_moods({"msd:jazz": 0.3, "msd:rock": 0.14}, 0.3) == (["jazz"], [])


def test_tagger_runs_with_one_torch_thread_and_restores_it(shared_audio, tagger):
    import torch

    before = torch.get_num_threads()
    seen = []
    original = tagger.models.scores
    tagger.models.scores = lambda x: (seen.append(torch.get_num_threads()), original(x))[1]
    try:
        tagger.tag(clip(shared_audio / PIANO, 0, 3.0))
    finally:
        tagger.models.scores = original
    assert seen == [1] and torch.get_num_threads() == before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
