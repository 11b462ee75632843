"""Analysis's networks batched across chunks and songs (processing.analyse.network_stream), on the CPU:
batched results equal one-piece results within 1e-5 (issue 20).

Real pieces of four clips (chunks of 6 to 30 s, and a 16 kHz speech clip) for the tagger; windows of
two real clips, of equal and of different lengths, for the beat network."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DRUM_BASS, PIANO, SPEECH, VIBE_ACE
from processing.analyse import beat_network
from processing.analyse.features import to_mono
from processing.analyse.network_stream import BeatRequest, NetworkStream, TagRequest, beat_request, tag_request
from processing.analyse.tagger import MusicnnTagger
from test_analyse import clip

TOLERANCE = 1e-5  # the bound; measured (tagger, 3 of these pieces): at most 3e-8


def test_tagger_scores_of_many_chunks_in_one_batch_equal_each_chunk_alone(shared_audio):
    tagger = MusicnnTagger()
    pieces = [clip(shared_audio / VIBE_ACE, 0, 30), clip(shared_audio / PIANO, 10, 12), clip(shared_audio / DRUM_BASS, 0, 25),
              clip(shared_audio / SPEECH, 0, 6), clip(shared_audio / VIBE_ACE, 40, 9)]
    stream = NetworkStream(tagger=tagger.models, max_patches=16)  # 10 + 4 fit one pass, then 8 + 2 + 3
    for i, audio in enumerate(pieces):
        stream.add(("chunk", i), tag_request(audio))
    assert not stream.idle()
    results = dict(stream.step())
    assert stream.idle() and sorted(results) == [("chunk", i) for i in range(len(pieces))]
    for i, audio in enumerate(pieces):
        alone = tagger.tag(audio)
        batched = results[("chunk", i)]
        assert batched.shape == (len(tagger.labels),)
        diff = max(abs(alone[label] - round(float(score), 4)) for label, score in zip(tagger.labels, batched))
        assert diff <= 1e-4 + TOLERANCE  # tag() rounds to 4 decimals
        assert np.abs(batched - tagger.patch_scores(audio).mean(axis=0)).max() < TOLERANCE
    assert max(results[("chunk", 0)]) > 0.3  # real scores, not a flat output


def test_beat_windows_of_several_songs_in_one_batch_equal_each_window_alone(shared_audio, monkeypatch):
    monkeypatch.setattr(beat_network, "WINDOW_S", 10.0)
    monkeypatch.setattr(beat_network, "CONTEXT_S", 3.0)
    network = beat_network.load_network()
    songs = {"vibe": to_mono(clip(shared_audio / VIBE_ACE, 0, 25), 44100),
             "drums": to_mono(clip(shared_audio / DRUM_BASS, 0, 17), 44100)}
    stream = NetworkStream(beat=network)
    expected = {}
    for name, x in songs.items():
        for i, window in enumerate(beat_network.windows(beat_network.frame_count(len(x)))):
            stream.add((name, i), beat_request(x, window))
            expected[(name, i)] = beat_network.window_activations(x, network, window)
    lengths = {len(r.features) for _, r in stream.beats}
    assert len(lengths) > 1 and len(stream.beats) == 5  # equal windows batched, shorter ones apart
    results = dict(stream.step())
    assert results.keys() == expected.keys()
    for key, act in expected.items():
        assert results[key].shape == act.shape and np.abs(results[key] - act).max() < TOLERANCE, key
    joined = np.concatenate([results[("vibe", i)] for i in range(3)])
    assert joined.shape == (beat_network.frame_count(len(songs["vibe"])),) and joined.max() > 0.3


def test_a_request_the_stream_cannot_run_is_refused():
    stream = NetworkStream()
    with pytest.raises(ValueError, match="no tagger"):
        stream.add("a", TagRequest(np.zeros((1, 187, 96), np.float32)))
    with pytest.raises(ValueError, match="no beat network"):
        stream.add("b", BeatRequest(np.zeros((10, 266), np.float32), slice(0, 10)))
    with pytest.raises(TypeError, match="not a network request"):
        stream.add("c", "audio")
