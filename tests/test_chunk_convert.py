"""Chunk planning, tail policies, conversion to the training format."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from processing import audio_io
from processing.chunk.spans import cut, is_silent, plan_chunks, rms_db
from processing.config import ChunkConfig, ConvertConfig
from processing.chunk.convert import peak_safe, to_training_format, write_chunk
from processing.types import AudioData

from conftest import SONG_WITH_VOCALS


def spans(duration, **kw):
    return [(s.start_s, s.end_s, s.padded_s) for s in plan_chunks(duration, ChunkConfig(**kw))]


def test_133s_song_gives_four_full_chunks_and_drops_the_13s_tail_by_default():
    assert spans(133.0) == [(0, 30, 0), (30, 60, 0), (60, 90, 0), (90, 120, 0)]


def test_pad_policy_pads_the_tail_to_a_full_chunk():
    out = spans(133.0, tail_policy="pad")
    assert len(out) == 5
    assert out[-1] == pytest.approx((120.0, 133.0, 17.0))


def test_merge_policy_appends_a_short_tail_to_the_previous_chunk():
    out = spans(133.0, tail_policy="merge")
    assert len(out) == 4 and out[-1] == pytest.approx((90.0, 133.0, 0.0))
    # a merged chunk longer than max_merged_s is not made: the tail is dropped instead
    assert spans(133.0, tail_policy="merge", max_merged_s=40.0)[-1] == (90, 120, 0)


def test_long_tails_are_kept_as_shorter_chunks_and_exact_multiples_have_no_tail():
    assert spans(80.0)[-1] == (60, 80, 0)  # 20 s >= min_tail_s 15 s
    assert len(spans(120.0)) == 4
    assert spans(10.0) == []  # all tail, under 15 s
    assert spans(10.0, tail_policy="pad") == [(0, 10, 20)]
    assert spans(133.0, chunk_s=10.0, min_tail_s=2.0)[-1] == pytest.approx((130.0, 133.0, 0.0))


def test_cut_pads_with_zeros_and_silence_is_detected():
    audio = AudioData(np.full((1, 32000 * 13), 0.5, np.float32), 32000)
    [span] = plan_chunks(13.0, ChunkConfig(tail_policy="pad"))
    piece = cut(audio, span)
    assert piece.num_frames == 30 * 32000
    assert piece.samples[0, 13 * 32000 - 1] == 0.5 and piece.samples[0, 13 * 32000] == 0.0
    assert rms_db(AudioData(np.zeros((1, 100), np.float32), 8000)) == -200.0
    assert rms_db(AudioData(np.full((2, 100), 0.1, np.float32), 8000)) == pytest.approx(-20.0)
    assert is_silent(AudioData(np.full((1, 8000), 1e-4, np.float32), 8000), ChunkConfig())  # -80 dBFS
    assert not is_silent(AudioData(np.full((1, 8000), 1e-2, np.float32), 8000), ChunkConfig())  # -40 dBFS


def test_convert_real_song_to_32k_mono_keeps_duration(shared_audio):
    src = audio_io.decode(shared_audio / SONG_WITH_VOCALS)
    assert (src.sample_rate, src.channels) == (44100, 2)
    out = to_training_format(src, ConvertConfig())
    assert (out.sample_rate, out.channels) == (32000, 1)
    assert out.duration_s == pytest.approx(src.duration_s, abs=1e-3)
    assert out.duration_s == pytest.approx(133.0, abs=0.1)


def test_resampling_keeps_pitch_and_16k_option_works():
    rate = 44100
    t = np.arange(rate * 2) / rate
    tone = AudioData(np.stack([0.5 * np.sin(2 * np.pi * 1000 * t)] * 2), rate)
    for target in (32000, 16000):
        out = to_training_format(tone, ConvertConfig(sample_rate=target))
        spectrum = np.abs(np.fft.rfft(out.samples[0]))
        peak_hz = np.argmax(spectrum) * target / out.num_frames
        assert peak_hz == pytest.approx(1000, abs=1)
        assert out.num_frames == 2 * target


def test_peak_safe_scales_down_only_and_written_chunk_never_clips(tmp_path):
    loud = AudioData(np.array([[0.0, 1.7, -2.0, 0.5]], np.float32), 32000)
    safe, gain = peak_safe(loud, 0.99)
    assert gain == pytest.approx(0.99 / 2.0) and np.abs(safe.samples).max() == pytest.approx(0.99)
    quiet = AudioData(np.array([[0.1, -0.2]], np.float32), 32000)
    assert peak_safe(quiet, 0.99) == (quiet, 1.0)
    path = write_chunk(tmp_path / "c.flac", safe, ConvertConfig(format="flac"))
    data, rate = sf.read(path, dtype="float32")
    assert rate == 32000 and np.abs(data).max() <= 0.99 + 1e-4
    assert sf.info(path).format == "FLAC"
