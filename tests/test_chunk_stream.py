"""The streaming chunk stage, pass-through separation and loudness against their whole-song forms.

A song is never held whole any more (issue 20): the chunk stage reads the instrumental in blocks, converts it with
a soxr.ResampleStream into a scratch file, measures loudness with a streaming meter, and cuts the chunks from the
file; the pass-through separation writes the mix's FLAC block by block. These tests hold the whole-song
implementations they replace (``whole_song_chunks``: the stage as it was; ``write_separation`` of the decoded mix)
and compare outputs; each tolerance says what it was checked on and with what margin.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from processing import audio_io
from processing.analyse.features import to_mono
from processing.chunk.convert import TrainingFormatStream, peak_safe, to_training_format, write_chunk
from processing.chunk.handover import BEAT_INPUT, read_beat_input
from processing.chunk.spans import cut, is_silent, plan_chunks, rms_db
from processing.chunk.stage import chunk_song
from processing.config import ChunkConfig, ConvertConfig, SeparateConfig
from processing.loudness import LoudnessMeter, loudness
from processing.separate.base import PassThroughSeparator
from processing.separate.stage import INSTRUMENTAL_FILE, separate_on_cpu, write_passthrough, write_separation
from processing.types import AudioData, SeparatedSong, Song, SongMetadata

from conftest import SONG_WITH_VOCALS, VIBE_ACE, VIBE_ACE_LOWQ

REPO = Path(__file__).resolve().parents[1]

# Streamed vs one-shot soxr: checked on the 133 s clip (44.1 kHz stereo -> 32 kHz mono and 16 kHz), the 22.05 kHz
# mono clip and white noise: the max abs difference was 0.0 in every case (soxr's stream and one-shot share one
# engine); 1e-6 leaves room for another soxr build and is still 100x under a 16-bit step.
RESAMPLE_ATOL = 1e-6
# Streaming loudness vs pyloudnorm: checked on every clip of ../shared/audio and the synthetic signals below:
# largest difference 7e-15 LU, against the 0.01 LU the stage may differ by (rounded to 1e-4 in the record).
LOUDNESS_TOL_LU = 0.01
# Hand-over file vs features.to_mono of the decoded instrumental: 0.0 at 44.1 kHz (no resampling) and for the
# 22.05 kHz and 48 kHz songs (the same soxr engine, streamed); 1e-6 as for the resampler above.
HANDOVER_ATOL = 1e-6


def song_of(path: Path, song_id: str = "s") -> Song:
    return Song(song_id, path, SongMetadata(), audio_io.file_sha256(path), 1.0, 44100, 2)


def separated_of(instrumental: Path, stems: dict[str, Path] | None = None) -> SeparatedSong:
    return SeparatedSong(song=song_of(instrumental), instrumental_path=instrumental, stem_paths=stems or {},
                         sample_rate=sf.info(str(instrumental)).samplerate, model="none")


def whole_song_chunks(separated: SeparatedSong, chunk_cfg: ChunkConfig, convert_cfg: ConvertConfig, keep_stems: bool,
                      folder: Path) -> dict:
    """The chunk stage before it streamed (STAGE_VERSION 2, commit 2c394f8): the reference the stream must match."""
    song = separated.song
    source = audio_io.decode(separated.instrumental_path)
    whole = {"instrumental_loudness_lufs": round(loudness(source), 4),
             "instrumental_peak": float(abs(source.samples).max(initial=0.0)),
             "instrumental_duration_s": source.duration_s}
    instrumental = to_training_format(source, convert_cfg)
    instrumental, gain = peak_safe(instrumental, convert_cfg.peak_limit)
    stems = {n: to_training_format(audio_io.decode(p), convert_cfg) for n, p in separated.stem_paths.items()} \
        if keep_stems else {}
    spans = plan_chunks(instrumental.duration_s, chunk_cfg)
    covered = sum(s.end_s - s.start_s for s in spans)
    chunks, silent = [], []
    for span in spans:
        cid = f"{song.song_id}-{span.index:03d}"
        audio = cut(instrumental, span)
        if is_silent(audio, chunk_cfg):
            silent.append(cid)
            continue
        rel = f"chunks/{cid}.{convert_cfg.format}"
        path = write_chunk(folder / rel, audio, convert_cfg)
        record = {"chunk_id": cid, "index": span.index, "start_s": round(span.start_s, 6), "end_s": round(span.end_s, 6),
                  "duration_s": round(audio.duration_s, 6), "padded_s": round(span.padded_s, 6), "file": rel,
                  "sha256": audio_io.file_sha256(path), "peak": float(abs(audio.samples).max(initial=0.0)),
                  "rms_db": rms_db(audio), "stems": {}}
        for name, stem in stems.items():
            stem_rel = f"stems/{cid}/{name}.flac"
            audio_io.write(folder / stem_rel, peak_safe(cut(stem, span), 0.999)[0], subtype="PCM_24")
            record["stems"][name] = stem_rel
        chunks.append(record)
    return {"chunks": chunks, "skipped_silent": silent, "song_gain": gain,
            "dropped_tail_s": max(0.0, instrumental.duration_s - covered), "song_id": song.song_id, **whole}


def synthetic_song(path: Path, seconds: float, rate: int = 44100, seed: int = 0, scale: float = 1.0) -> Path:
    from processing.demo.synth import synth_song

    song = synth_song(bpm=100, key="D", scale="minor", duration_s=seconds, vocals=True, seed=seed)
    samples = song.mix.samples * np.float32(scale)
    if rate != song.mix.sample_rate:
        samples = soxr.resample(samples.T, song.mix.sample_rate, rate).T
    sf.write(str(path), samples.T, rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return path


def streamed(cls_input: np.ndarray, block: int, convert: TrainingFormatStream) -> np.ndarray:
    out = [convert.convert(cls_input[s:s + block]) for s in range(0, len(cls_input), block)] + [convert.flush()]
    return np.concatenate(out)


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("name,rate,channels", [(SONG_WITH_VOCALS, 32000, 1), (SONG_WITH_VOCALS, 16000, 2),
                                                (VIBE_ACE_LOWQ, 32000, 1)])
def test_streamed_conversion_equals_one_shot_soxr(shared_audio, name, rate, channels):
    audio = audio_io.decode(shared_audio / name)
    cfg = ConvertConfig(sample_rate=rate, channels=channels)
    whole = to_training_format(audio, cfg).samples.T
    for block in (1 << 18, 9973):
        out = streamed(audio.samples.T, block, TrainingFormatStream(audio.sample_rate, audio.channels, cfg))
        assert out.shape == whole.shape  # same length: chunk boundaries fall on the same samples
        assert np.abs(out - whole).max() <= RESAMPLE_ATOL


def _meter(audio: AudioData, block: int) -> float:
    meter = LoudnessMeter(audio.sample_rate, audio.channels)
    for s in range(0, audio.num_frames, block):
        meter.add(audio.samples.T[s:s + block])
    return meter.integrated()


def test_streaming_loudness_equals_pyloudnorm_on_the_real_clips(shared_audio):
    clips = sorted(shared_audio.glob("*.ogg"))
    assert len(clips) >= 6
    for clip in clips:
        audio = audio_io.decode(clip)
        for block in (1 << 18, 4001):
            assert abs(_meter(audio, block) - loudness(audio)) <= LOUDNESS_TOL_LU, clip.name


@pytest.mark.parametrize("rate,channels,seconds", [
    (44100, 2, 0.2),  # shorter than one 400 ms block: measured zero-padded, as loudness() does
    (48000, 1, 0.41), (44100, 2, 0.4), (32000, 5, 3.3), (22050, 6, 7.1),  # 6 channels: the mono downmix
    (44100, 2, 61.37)])
def test_streaming_loudness_equals_pyloudnorm_on_synthetic_signals(rate, channels, seconds):
    rng = np.random.default_rng(channels)
    n = int(rate * seconds)
    ramp = np.linspace(0.0, 0.5, n) ** 3  # quiet start: the absolute and relative gates both drop blocks
    audio = AudioData((rng.standard_normal((channels, n)) * ramp).astype(np.float32), rate)
    expected = loudness(audio)
    for block in (1 << 18, 1000, 7):
        if block == 7 and n > 100000:
            continue
        assert abs(_meter(audio, block) - expected) <= LOUDNESS_TOL_LU
    silence = AudioData(np.zeros((2, rate), np.float32), rate)
    assert _meter(silence, 1000) == loudness(silence) == -70.0


# ----------------------------------------------------------------------------- the stage


def _compare(stream: dict, whole: dict, stream_dir: Path, whole_dir: Path) -> None:
    assert abs(stream.pop("instrumental_loudness_lufs") - whole.pop("instrumental_loudness_lufs")) <= LOUDNESS_TOL_LU
    assert stream == whole  # every chunk's bounds, peak, RMS and sha256 of its file: equal
    for c in whole["chunks"]:
        for rel in [c["file"], *c["stems"].values()]:
            a, _ = sf.read(str(stream_dir / rel), dtype="float32")
            b, _ = sf.read(str(whole_dir / rel), dtype="float32")
            np.testing.assert_array_equal(a, b)


def test_chunk_stage_equals_the_whole_song_stage_on_a_real_clip(shared_audio, tmp_path):
    separated = separated_of(shared_audio / SONG_WITH_VOCALS)
    chunk_cfg, convert_cfg = ChunkConfig(), ConvertConfig()
    stream = chunk_song(separated, chunk_cfg, convert_cfg, False, tmp_path / "stream")
    whole = whole_song_chunks(separated, chunk_cfg, convert_cfg, False, tmp_path / "whole")
    assert len(whole["chunks"]) == 4
    assert not (tmp_path / "stream" / ".scratch").exists()  # the scratch file is gone
    _compare(stream, whole, tmp_path / "stream", tmp_path / "whole")


def test_chunk_stage_equals_the_whole_song_stage_on_a_synthetic_song_with_gain_stems_and_padding(tmp_path):
    # 48 kHz, louder than full scale (float WAV): the song-wide gain applies; a stem is kept; the tail is padded
    inst = synthetic_song(tmp_path / "inst.wav", 65.0, rate=48000, scale=1.6)
    stem = synthetic_song(tmp_path / "drums.wav", 65.0, rate=48000, seed=3, scale=0.5)
    separated = separated_of(inst, {"drums": stem})
    chunk_cfg, convert_cfg = ChunkConfig(tail_policy="pad"), ConvertConfig(format="wav")
    stream = chunk_song(separated, chunk_cfg, convert_cfg, True, tmp_path / "stream")
    whole = whole_song_chunks(separated, chunk_cfg, convert_cfg, True, tmp_path / "whole")
    assert whole["song_gain"] < 1.0 and len(whole["chunks"]) == 3 and whole["chunks"][-1]["padded_s"] > 0
    assert whole["chunks"][0]["stems"] == {"drums": "stems/s-000/drums.flac"}
    _compare(stream, whole, tmp_path / "stream", tmp_path / "whole")


@pytest.mark.parametrize("rate", [44100, 22050, 48000])
def test_handover_file_equals_to_mono_of_the_decoded_instrumental(shared_audio, tmp_path, rate):
    if rate == 22050:
        inst = shared_audio / VIBE_ACE_LOWQ
    else:
        inst = synthetic_song(tmp_path / "inst.flac", 40.0, rate=rate)
    hand = tmp_path / "handover"
    chunk_song(separated_of(inst), ChunkConfig(), ConvertConfig(), False, tmp_path / "entry", handover=hand)
    beat = read_beat_input(hand / BEAT_INPUT)
    expected = to_mono(audio_io.decode(inst), 44100)
    assert isinstance(beat, np.memmap) and beat.dtype == np.float32
    assert beat.shape == expected.shape
    assert np.abs(beat - expected).max() <= HANDOVER_ATOL
    assert not (tmp_path / "entry" / BEAT_INPUT).exists()  # outside the cache entry


# ----------------------------------------------------------------------------- pass-through separation


@pytest.mark.parametrize("kind", ["ogg", "loud-wav", "m4a"])
def test_streamed_passthrough_separation_equals_the_whole_song_one(shared_audio, tmp_path, kind):
    if kind == "ogg":
        source = shared_audio / VIBE_ACE
    elif kind == "loud-wav":  # peak above 0.999: the one gain applies
        source = synthetic_song(tmp_path / "loud.wav", 20.0, scale=1.7)
    else:  # decoded by ffmpeg into a temporary WAV, streamed from there
        source = tmp_path / "song.m4a"
        subprocess.run([audio_io.ffmpeg_exe(), "-nostdin", "-v", "error", "-t", "12", "-i",
                        str(shared_audio / SONG_WITH_VOCALS), "-c:a", "aac", str(source)], check=True)
    song = song_of(source)
    cfg = SeparateConfig(model="none")
    whole = write_separation(song, separate_on_cpu(audio_io.decode(source), PassThroughSeparator(), cfg), "none",
                             (tmp_path / "whole").resolve())
    (tmp_path / "stream").mkdir()
    stream = write_passthrough(song, source, "none", tmp_path / "stream")
    assert stream == whole
    assert (whole["gain"] < 1.0) == (kind == "loud-wav")
    a, rate_a = sf.read(str(tmp_path / "stream" / INSTRUMENTAL_FILE), dtype="int32")
    b, rate_b = sf.read(str(tmp_path / "whole" / INSTRUMENTAL_FILE), dtype="int32")
    assert rate_a == rate_b and a.shape == b.shape and a.shape[0] > 0
    np.testing.assert_array_equal(a, b)  # the same 24-bit samples


def test_passthrough_of_an_undecodable_file_fails_as_decode(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(audio_io.AudioDecodeError):
        write_passthrough(song_of(bad), bad, "none", tmp_path)
    assert not (tmp_path / INSTRUMENTAL_FILE).exists()


# ----------------------------------------------------------------------------- memory


LONG_S = 1200.0  # a 20-minute song
# How much the peak RSS of a process grows while it runs the chunk stage (with the hand-over) on the 20-minute
# song, over its peak once the stage's modules are imported (263 MB here). Measured: +0 MB streaming (blocks of
# ~6 s fit in what the imports had touched); a whole-song stage holds at least the decoded song, 1200 s x 44,100
# x 2 x 4 B = 423 MB (plus pyloudnorm's float64 copy, twice that). 150 MB: 150 MB of margin, under a third of
# the decoded song.
LONG_RSS_GROWTH_MB = 150


def _write_long_song(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A tone-and-noise stereo song of ``seconds``, written block by block (the test holds no song whole either)."""
    rng = np.random.default_rng(7)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=2, format="FLAC", subtype="PCM_16") as fh:
        for start in range(0, int(seconds * rate), 10 * rate):
            t = (start + np.arange(10 * rate)) / rate
            tone = 0.3 * np.sin(2 * np.pi * (220 + 50 * np.sin(t / 7)) * t)
            fh.write(np.stack([tone, tone[::-1]], axis=1) + 0.05 * rng.standard_normal((len(t), 2)))
    return path


def test_a_long_songs_chunk_stage_keeps_its_memory_bounded(tmp_path):
    song = _write_long_song(tmp_path / "long.flac", LONG_S)
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pathlib import Path
        from processing.chunk.stage import chunk_song
        from processing.config import ChunkConfig, ConvertConfig
        from processing.types import SeparatedSong, Song, SongMetadata
        song = Song("long", Path({str(song)!r}), SongMetadata(), "x", {LONG_S}, 44100, 2)
        separated = SeparatedSong(song=song, instrumental_path=song.audio_path, stem_paths={{}}, sample_rate=44100,
                                  model="none")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        meta = chunk_song(separated, ChunkConfig(), ConvertConfig(), False, Path({str(tmp_path / 'entry')!r}),
                          handover=Path({str(tmp_path / 'hand')!r}))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"base_mb": base / 1024, "peak_mb": peak / 1024, "chunks": len(meta["chunks"]),
                          "duration": meta["instrumental_duration_s"]}}))
    """)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["chunks"] == 40 and figures["duration"] == LONG_S
    assert (tmp_path / "hand" / BEAT_INPUT).stat().st_size == int(LONG_S * 44100) * 4
    decoded_mb = LONG_S * 44100 * 2 * 4 / 2 ** 20  # what a whole-song stage holds at the least
    assert LONG_RSS_GROWTH_MB < decoded_mb
    assert figures["peak_mb"] - figures["base_mb"] < LONG_RSS_GROWTH_MB
