"""Analyse stage: tempo/key against synthetic ground truth, instruments from stems
and from cues on real clips, "is this music?" flags, genre/mood sources, tagger
interface and the report summary."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import BIRD, DRUM_BASS, PIANO, SONG_WITH_VOCALS, SPEECH, VIBE_ACE
from processing import audio_io
from processing.analyse.analyse import STEM_NAMES, SongAnalysis, analyse_audio, check_config, analyse_file, analyse_song, summarise
from processing.config import AnalyseConfig, config_from_dict
from processing.analyse.features import measure, steady_beat, to_mono
from processing.demo.synth import synth_song
from processing.analyse.tagger import TaggerUnavailable, labels_to_vocabulary, make_tagger
from processing.demo.testsignals import chord_progression, click_track
from processing.separate.levels import stem_levels
from processing.types import AudioData, Chunk, SeparatedSong, Song, SongMetadata

CFG = AnalyseConfig()  # the default tagger: musicnn, real weights
NO_TAGGER = AnalyseConfig(tagger="none")


def clip(path: Path, start_s: float, dur_s: float) -> AudioData:
    audio = audio_io.decode(path)
    a, b = int(start_s * audio.sample_rate), int((start_s + dur_s) * audio.sample_rate)
    return AudioData(audio.samples[:, a:b], audio.sample_rate)


def make_song(
    tmp: Path,
    mix: AudioData,
    stems: dict[str, AudioData],
    instrumental: AudioData,
    chunk_s: float,
    metadata: SongMetadata | None = None,
    model: str = "htdemucs",
    song_id: str = "s1",
) -> tuple[SeparatedSong, list[Chunk]]:
    """Write the files a separated, chunked song has on disk (chunks as 32 kHz mono wav) and measure
    the stem levels as separation does."""
    src = audio_io.write(tmp / f"{song_id}.flac", mix)
    song = Song(song_id, src, metadata or SongMetadata(), "0" * 64, mix.duration_s, mix.sample_rate, mix.channels)
    levels = stem_levels(mix.samples, {n: s.samples for n, s in stems.items()}, instrumental.samples,
                         mix.sample_rate) if stems else None
    inst_path = audio_io.write(tmp / f"{song_id}_instrumental.flac", instrumental)
    chunks = []
    mono32 = to_mono(instrumental, 32000)
    for i in range(int(instrumental.duration_s // chunk_s)):
        start, end = i * chunk_s, (i + 1) * chunk_s
        samples = mono32[int(start * 32000) : int(end * 32000)]
        path = audio_io.write(tmp / "audio" / f"{song_id}-{i:03d}.wav", AudioData(samples, 32000), "PCM_16")
        chunks.append(
            Chunk(f"{song_id}-{i:03d}", song_id, i, start, end, chunk_s, 32000, 1, path, audio_io.file_sha256(path),
                  float(np.abs(samples).max()), -20.0)
        )
    return SeparatedSong(song, inst_path, {}, mix.sample_rate, model, levels), chunks


# ------------------------------------------------------------------ tempo and key


@pytest.mark.parametrize("bpm", [90, 120, 140])
def test_click_track_tempo_within_2_percent(bpm):
    f = measure(click_track(bpm, duration_s=15), CFG.key_profile)
    assert f.bpm == pytest.approx(bpm, rel=0.02)
    assert f.bpm_confidence >= 1.5


@pytest.mark.parametrize("key,scale", [("A", "minor"), ("Eb", "major"), ("F#", "minor"), ("C", "major")])
def test_key_of_chord_progressions(key, scale):
    f = measure(chord_progression(key, scale, bpm=96, duration_s=12), CFG.key_profile)
    assert (f.key, f.scale) == (key if key != "F#" else "F#", scale)


def test_default_profile_gets_synth_song_minor_loop_right():
    # synth_song's i-VI-III-VII loop: edma calls it the relative major, shaath does not
    song = synth_song(bpm=100, key="A", scale="minor", duration_s=12, vocals=False, stereo=False)
    f = measure(song.mix, CFG.key_profile)
    assert (f.key, f.scale) == ("A", "minor")


def test_unknown_key_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="key profile 'nope' unknown"):
        measure(click_track(120, duration_s=3), "nope")


# ------------------------------------------------------------------ songs with stems


def test_song_with_stems_tempo_key_instruments_and_vocals(tmp_path):
    s = synth_song(bpm=128, key="D", scale="major", duration_s=20, vocals=True, seed=1)
    inst = AudioData(sum(s.stems[n].samples for n in ("drums", "bass", "other")), s.mix.sample_rate)
    sep, chunks = make_song(tmp_path, s.mix, s.stems, inst, chunk_s=10)
    result = analyse_song(sep, chunks, CFG)
    rows = result.chunk_rows()
    assert len(rows) == len(chunks) == 2
    for row in rows:
        assert row["bpm"] == pytest.approx(128, rel=0.02)
        assert (row["key"], row["scale"]) == ("D", "major")
        assert row["instrument"][:3] == ["drums", "bass", "other"]  # the stems decide what they can name ...
        assert row["instrument_source"][:3] == ["stems"] * 3
        assert set(row["instrument_source"][3:]) <= {"model"}  # ... the model adds what "other" holds (synth)
        assert row["instrument_method"] == "stems"
        assert row["vocal_score"] < CFG.vocal_threshold and "vocals_heard" not in row["flags"]
        assert row["source_vocals"] is True  # the source had vocals ...
        assert row["residual_vocal_db"] < CFG.residual_vocal_db  # ... the instrumental holds none
        assert row["flags"] == []
        assert set(f"stem_{n}_db" for n in STEM_NAMES) <= set(row)
        assert row["stem_guitar_db"] is None and -20 < row["stem_drums_db"] < 0
    song = result.song_row()
    restored = SongAnalysis.from_dict(json.loads(json.dumps(result.to_dict())))  # the stage cache's round trip
    assert restored.song_row() == song and restored.chunk_rows() == rows
    assert song["song_bpm"] == pytest.approx(128, rel=0.02)
    assert (song["song_key"], song["song_scale"]) == ("D", "major")
    assert song["song_vocals_in_source"] is True and song["song_flags"] == []
    assert all(k.startswith("song_") for k in song)
    rules = analyse_song(sep, chunks, NO_TAGGER).song_row()
    assert rules["song_mood_source"] == "rules" and rules["song_moods_derived"] is True
    assert "upbeat" in rules["song_moods"]  # rule: major and >= 110 BPM
    assert rules["song_tagger"] is None and rules["song_tag_scores"] == []


def test_vocal_bleed_and_missing_drums_are_measured(tmp_path):
    s = synth_song(bpm=100, key="G", scale="major", duration_s=10, vocals=True, drums=False, seed=2)
    leaky = AudioData(s.stems["bass"].samples + s.stems["other"].samples + 0.5 * s.stems["vocals"].samples, s.mix.sample_rate)
    stems = dict(s.stems, drums=AudioData(np.zeros_like(s.mix.samples), s.mix.sample_rate))
    sep, chunks = make_song(tmp_path, s.mix, stems, leaky, chunk_s=10)
    result = analyse_song(sep, chunks, CFG)
    row = result.chunk_rows()[0]
    assert "drums" not in row["instrument"] and row["stem_drums_db"] == -200.0
    assert row["residual_vocal_db"] > CFG.residual_vocal_db
    assert "residual_vocals" in row["flags"] and "residual_vocals" in result.flags  # 1 of 1 chunks: a song flag


def test_soft_mask_leakage_in_a_song_without_vocals_is_not_residual_vocals(tmp_path):
    """The offline separator's "vocals" of a purely instrumental song hold drum transients, which
    correlate with its instrumental; with no vocals in the source nothing can be left behind."""
    from processing.separate.offline_separator import OfflineSeparator

    # 40 s: REPET needs several repetitions of the loop to tell what repeats (10 s leaks -13 dB, 40 s -40 dB)
    s = synth_song(bpm=140, key="E", scale="minor", duration_s=40, vocals=False, seed=3)
    stems = OfflineSeparator().separate(s.mix)
    sep, chunks = make_song(tmp_path, s.mix, stems, stems["other"], chunk_s=30)
    row = analyse_song(sep, chunks, CFG).chunk_rows()[0]
    assert row["source_vocals"] is False
    assert row["residual_vocal_db"] > CFG.residual_vocal_db  # the leakage alone would trip the threshold
    assert "residual_vocals" not in row["flags"]


# ------------------------------------------------------------------ real clips, no stems


def test_drum_bass_excerpt_without_stems(shared_audio, tmp_path):
    audio = clip(shared_audio / DRUM_BASS, 0, 20)
    sep, chunks = make_song(tmp_path, audio, {}, audio, chunk_s=20, model="none")
    row = analyse_song(sep, chunks, CFG).chunk_rows()[0]
    assert row["instrument_method"] == "features"
    assert {"drums", "bass"} <= set(row["instrument"])
    assert row["flags"] == [] and row["source_vocals"] is None  # no vocal stem: unknown
    assert row["stem_drums_db"] is None
    assert 60 <= row["bpm"] <= 200 and row["loudness_lufs"] < -10


def _same_outputs(a, b) -> bool:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a) == len(b) and all(type(x) is type(y) and np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(a, b))


def test_essentia_algorithms_without_essentia_standard_give_its_outputs(shared_audio):
    """Every essentia algorithm a build uses, built one at a time (processing.essentia_algorithms, which spares each
    process the 1.1 s import of essentia.standard), gives essentia.standard's outputs exactly, type for type."""
    import essentia.standard as es

    from processing.essentia_algorithms import algorithm

    uses = [("RhythmExtractor2013", {"method": "multifeature"}), ("Danceability", {"sampleRate": 44100}),
            ("Chromaprinter", {"sampleRate": 44100.0, "maxLength": 120.0}),
            *(("KeyExtractor", {"profileType": p, "sampleRate": 44100}) for p in ("shaath", "edma", "temperley"))]
    for name, start in ((VIBE_ACE, 10), (PIANO, 30)):
        x = to_mono(clip(shared_audio / name, start, 12), 44100)
        for algo, params in uses:
            assert _same_outputs(algorithm(algo, **params)(x), getattr(es, algo)(**params)(x)), (name, algo)
    # what essentia.standard's wrapper does to its inputs: float64 narrowed to float32, strided arrays copied
    rhythm = algorithm("RhythmExtractor2013", method="multifeature")
    assert _same_outputs(rhythm(x.astype(np.float64)), rhythm(x))
    assert _same_outputs(rhythm(np.repeat(x, 2)[::2]), rhythm(x))
    with pytest.raises(ValueError, match="takes 1 input"):
        rhythm(x, x)


def test_hpss_equals_librosas_bit_for_bit(shared_audio):
    """features.hpss is librosa.decompose.hpss written out (so that analysis never imports scikit-learn and pandas):
    the same harmonic and percussive parts, bit for bit, on a real clip and on a spectrogram with silent frames."""
    import librosa
    import librosa.decompose

    from processing.analyse.features import hpss

    x = to_mono(audio_io.decode(shared_audio / DRUM_BASS), 22050)[: 12 * 22050]
    spec = np.abs(librosa.stft(x, n_fft=2048, hop_length=1024))[:512]
    gaps = spec.copy()
    gaps[:, 40:60] = 0.0  # all-zero frames: softmask's split_zeros case
    for s, size in ((spec, (17, 31)), (gaps, (17, 31)), (spec, (5, 9))):
        ours, theirs = hpss(s, kernel_size=size), librosa.decompose.hpss(s, kernel_size=size)
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_piano_ragtime_has_no_drums(shared_audio):
    result = analyse_audio(clip(shared_audio / PIANO, 20, 20), CFG)
    assert "drums" not in result.instruments.instruments
    assert result.flags == []
    assert result.features.key and result.features.bpm > 0


def test_jazz_instrumental_is_music(shared_audio):
    result = analyse_audio(clip(shared_audio / VIBE_ACE, 0, 20), CFG)
    assert result.flags == []
    assert steady_beat(result.features) and -30 < result.features.loudness_lufs < -8


@pytest.mark.parametrize("name,reason", [(SPEECH, "speech_like"), (BIRD, "no_low_range")])
def test_speech_and_bird_are_not_music(shared_audio, name, reason):
    result = analyse_file(shared_audio / name, CFG)
    assert "non_music" in result.flags and reason in result.flags


# ------------------------------------------------------------------ music or not (real weights)

SR = 44100


def _noise(kind: str, seconds: float = 10.0) -> AudioData:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(int(SR * seconds))
    if kind != "white":  # pink: 1/f power; brown: 1/f^2
        spectrum = np.fft.rfft(x) / np.arange(1, len(x) // 2 + 2) ** (0.5 if kind == "pink" else 1.0)
        x = np.fft.irfft(spectrum, len(x))
    return AudioData((0.3 * x / np.abs(x).max()).astype(np.float32), SR)


def _sine_pad(seconds: float = 12.0) -> AudioData:
    """An ambient pad: a sustained A major chord fading in, with a slow swell, no onsets and no beat."""
    t = np.arange(int(SR * seconds)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate([220.0, 277.18, 329.63, 440.0, 554.37]))
    return AudioData((0.1 * chord * np.minimum(1, t / 3) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.1 * t))).astype(np.float32), SR)


def _rubato(audio: AudioData, seed: int = 3) -> AudioData:
    """Real piano with the tempo pulled about every 2 s (x0.55-1.5): no steady beat left."""
    import librosa

    rng = np.random.default_rng(seed)
    x, rate = audio.samples.mean(axis=0), audio.sample_rate
    parts = [librosa.effects.time_stretch(x[i : i + 2 * rate], rate=float(rng.uniform(0.55, 1.5))) for i in range(0, len(x), 2 * rate)]
    return AudioData(np.concatenate(parts).astype(np.float32), rate)


REAL_MUSIC = [(PIANO, 0, 30), (PIANO, 40, 4), (VIBE_ACE, 0, 30), (VIBE_ACE, 5, 4), (VIBE_ACE, 40, 3), (DRUM_BASS, 0, 25),
              (DRUM_BASS, 3, 4), (SONG_WITH_VOCALS, 0, 30), (SONG_WITH_VOCALS, 1, 5)]


@pytest.mark.parametrize("name,start,seconds", REAL_MUSIC)
def test_real_music_is_never_non_music_even_short_or_beatless(shared_audio, name, start, seconds):
    result = analyse_audio(clip(shared_audio / name, start, seconds), CFG)
    assert not {"non_music", "silence"} & set(result.flags), (result.flags, result.instrument_score)


def test_music_without_a_steady_beat_is_kept(shared_audio):
    rubato = analyse_audio(_rubato(clip(shared_audio / PIANO, 0, 24)), CFG)
    assert rubato.flags == [] and "piano" in rubato.heard_instruments
    chords = analyse_audio(chord_progression("A", "minor", bpm=60, duration_s=12), CFG)
    pad = analyse_audio(_sine_pad(), CFG)
    for result in (chords, pad):
        assert result.flags == [], result.flags


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_is_not_music(kind):
    result = analyse_audio(_noise(kind), CFG)
    assert result.flags[:1] == ["non_music"] and "noise_like" in result.flags and result.noise_flatness >= 0.55


def test_speech_excerpts_are_not_music(shared_audio):
    for start, seconds in ((0, 13.9), (2, 4), (10, 3.9)):  # the last: too short for speech's pauses to show
        result = analyse_audio(clip(shared_audio / SPEECH, start, seconds), CFG)
        assert "non_music" in result.flags and {"speech_like", "voice_only"} & set(result.flags), result.flags


def test_no_single_weak_cue_excludes_and_strong_agreement_does():
    from processing.analyse.musicness import music_flags
    from test_describe import feats

    beatless = replace_features(feats(conf=0.3), pulse=0.5, low_energy_ratio=0.1, below_1k_ratio=0.8)
    assert music_flags(beatless) == [] and music_flags(beatless, 0.12) == [] and music_flags(beatless, 0.5, 0.2) == []
    # no beat and an instrument score well below MODEL_NO_INSTRUMENT: the two weak cues agree strongly (whale song)
    assert music_flags(beatless, 0.07)[:1] == ["non_music"]
    # ... unless the model is sure of a genre on a tonal spectrum (an ambient pad: instrument 0.12-0.15, genre >= 0.57)
    assert music_flags(beatless, 0.07, 0.2, 0.02, genre_score=0.6) == []
    speechy = replace_features(beatless, pulse=0.05, low_energy_ratio=0.4)
    assert music_flags(speechy) == ["non_music", "speech_like", "no_beat"]  # no tagger: one strong cue
    assert music_flags(speechy, 0.05)[0] == "non_music" and music_flags(speechy, 0.25) == []  # the model hears music
    with_beat = replace_features(feats(), pulse=0.5, low_energy_ratio=0.1, below_1k_ratio=0.8)
    assert music_flags(with_beat, 0.05, 0.6) == []  # noisy, no instrument heard, but a beat: dubstep, distorted rock
    assert music_flags(with_beat, 0.05, 0.3, 0.3) == []  # a voice and no instrument, but a beat: music (with vocals)
    # a noise-like spectrum without a beat: the tagger's drums 0.37 (a purring cat) does not overrule it
    assert music_flags(beatless, 0.37, 0.58)[:1] == ["non_music"] and "noise_like" in music_flags(beatless, 0.37, 0.58)
    # noisy (not noise-like) without a beat is kept only when the model hears an instrument
    assert music_flags(beatless, 0.12, 0.48)[:1] == ["non_music"] and music_flags(beatless, 0.3, 0.48) == []


def replace_features(f, **kw):
    from dataclasses import replace

    return replace(f, **kw)


def test_too_short_song_is_measured_whole_and_flagged(shared_audio, tmp_path):
    audio = audio_io.decode(shared_audio / SPEECH)
    sep, chunks = make_song(tmp_path, audio, {}, audio, chunk_s=30, model="none")
    assert chunks == []
    result = analyse_song(sep, [], CFG)
    assert "non_music" in result.flags and result.chunk_rows() == []
    assert result.genres == [] and result.genre_source == ""  # no genre from what the model hears in speech
    song = result.song_row()
    assert song["song_bpm"] is None or song["song_bpm"] > 0


def test_silence_is_flagged():
    result = analyse_audio(AudioData(np.zeros((1, 44100 * 3), np.float32), 44100), CFG)
    assert result.flags[0] == "silence" and result.features.key == "" and "non_music" not in result.flags
    row = result.row()
    assert row["key"] is None and row["scale"] is None  # a missing measure is null, never ""


# ------------------------------------------------------------------ genre, moods, tagger


def test_genre_and_moods_come_from_source_metadata(tmp_path):
    s = synth_song(bpm=90, key="C", scale="major", duration_s=8, vocals=False)
    md = SongMetadata(title="Chill Lofi Hip Hop Beat", tags=["Lo-Fi", "relaxing", "Music"], categories=["Music"], genre="Hip-Hop")
    sep, chunks = make_song(tmp_path, s.mix, {}, s.mix, chunk_s=8, metadata=md, model="none")
    song = analyse_song(sep, chunks, NO_TAGGER).song_row()
    assert song["song_genres"] == ["hip hop"] and song["song_genre"] == "hip hop"
    assert song["song_genre_source"] == "user"  # the sources file's genre wins over the site's "Lo-Fi"
    assert song["song_moods"] == ["relaxed"] and song["song_mood_source"] == "site"
    assert song["song_moods_derived"] is False


def test_precedence_user_then_model_then_site_then_rules(tmp_path, monkeypatch):
    """Each fact comes from the first source that has one, and the row says which."""
    module = tmp_path / "mm_fixed_tagger.py"
    module.write_text("def factory(weights):\n    return lambda audio: {'Jazz': 0.9, 'Sad': 0.8}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = AnalyseConfig(tagger="python:mm_fixed_tagger:factory")
    s = synth_song(bpm=120, key="D", scale="major", duration_s=8, vocals=False, stereo=False)

    def song_row(md: SongMetadata, cfg: AnalyseConfig) -> dict:
        sep, chunks = make_song(tmp_path, s.mix, {}, s.mix, chunk_s=8, metadata=md, model="none")
        return analyse_song(sep, chunks, cfg).song_row()

    site = dict(tags=["rock", "happy"], keywords=[])
    user = song_row(SongMetadata(genre="Funk", moods=["dreamy"], **site), model)
    assert (user["song_genres"], user["song_genre_source"], user["song_moods"], user["song_mood_source"]) == (
        ["funk"], "user", ["dreamy"], "user")
    heard = song_row(SongMetadata(**site), model)
    assert (heard["song_genres"], heard["song_genre_source"], heard["song_moods"], heard["song_mood_source"]) == (
        ["jazz"], "model", ["sad"], "model")
    tags = song_row(SongMetadata(**site), NO_TAGGER)
    assert (tags["song_genres"], tags["song_genre_source"], tags["song_moods"], tags["song_mood_source"]) == (
        ["rock"], "site", ["happy"], "site")
    rules = song_row(SongMetadata(), NO_TAGGER)
    assert rules["song_genres"] == [] and rules["song_genre_source"] == "" and rules["song_genre"] is None
    assert rules["song_moods"] and rules["song_mood_source"] == "rules" and rules["song_moods_derived"] is True
    named = song_row(SongMetadata(keywords=["Rhodes"], tags=["Sax"]), NO_TAGGER)
    assert list(zip(named["song_instruments"], named["song_instrument_sources"])) == [("piano", "user"), ("saxophone", "site")]


def test_essentia_tagger_unavailable_says_what_to_do(tmp_path):
    assert make_tagger(None) is None
    with pytest.raises(TaggerUnavailable, match="essentia-tensorflow|tagger_weights"):
        make_tagger("essentia-tf", tmp_path)
    with pytest.raises(TaggerUnavailable, match="unknown"):
        make_tagger("magic")
    with pytest.raises(TaggerUnavailable, match="cannot import"):
        make_tagger("python:no_such_module_xyz:factory")


def test_python_tagger_plugs_in(tmp_path, monkeypatch):
    module = tmp_path / "mm_test_tagger.py"
    module.write_text(textwrap.dedent(
        """
        import numpy as np
        def factory(weights):
            # a stand-in model: percussive, loud audio -> "Drum'n'Bass", else "Ambient"
            def tag(audio):
                level = float(np.sqrt(np.mean(audio.samples ** 2)))
                return {"Drum'n'Bass": 0.9 if level > 0.05 else 0.1, "Ambient": 0.2, "Energetic": 0.8, "Cat": 1.0}
            return tag
        """
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    s = synth_song(bpm=170, duration_s=8, vocals=False, stereo=False)
    sep, chunks = make_song(tmp_path, s.mix, {}, s.mix, chunk_s=8, model="none")
    cfg = AnalyseConfig(tagger="python:mm_test_tagger:factory")
    result = analyse_song(sep, chunks, cfg)
    assert result.genres == ["drum and bass"] and result.genre_source == "model"
    assert result.moods == ["energetic"] and result.mood_source == "model"
    assert labels_to_vocabulary({"Jazz": 0.29, "Sad": 0.5}, 0.3) == ([], ["sad"])


def test_check_config_fails_fast_with_the_setting_named(tmp_path):
    check_config(AnalyseConfig())
    check_config(NO_TAGGER)
    with pytest.raises(TaggerUnavailable, match="pip install --no-deps musicnn==0.1.0.*analyse.tagger=none"):
        check_config(AnalyseConfig(tagger_weights=tmp_path))  # a folder without musicnn's checkpoints
    with pytest.raises(ValueError, match="vocal_threshold"):
        check_config(AnalyseConfig(vocal_threshold=2))
    with pytest.raises(ValueError, match="analyse.key_profile 'major' unknown"):
        check_config(AnalyseConfig(key_profile="major"))
    with pytest.raises(ValueError, match="residual_vocal_db"):
        check_config(AnalyseConfig(residual_vocal_db=10))
    with pytest.raises(TaggerUnavailable, match="essentia"):
        check_config(AnalyseConfig(tagger="essentia-tf", tagger_weights=tmp_path))


def test_config_section_accepts_new_fields():
    cfg = config_from_dict({"analyse": {"residual_vocal_db": -25, "tagger": "essentia-tf", "silence_db": -55}})
    assert cfg.analyse.residual_vocal_db == -25.0 and cfg.analyse.key_profile == "shaath"


# ------------------------------------------------------------------ report


def test_summarise_counts_included_rows():
    rows = [
        {"bpm": 121.0, "key": "D", "scale": "minor", "genre": "jazz", "moods": ["warm"], "instrument": ["drums", "bass"], "flags": []},
        {"bpm": 125.0, "key": "D minor", "scale": "minor", "genre": None, "moods": [], "instrument": ["drums"], "flags": []},
        {"bpm": 90.0, "key": "C", "scale": "major", "instrument": ["piano"], "flags": ["non_music", "speech_like"], "excluded": True},
    ]
    out = summarise(rows)
    assert out["rows"] == 3 and out["included"] == 2
    assert out["bpm_histogram"] == {"120-129": 2} and out["bpm_median"] == 123.0
    assert out["keys"] == {"D minor": 2} and out["scales"] == {"minor": 2}
    assert out["genres"] == {"jazz": 1} and out["moods"] == {"warm": 1}
    assert out["instruments"] == {"drums": 2, "bass": 1}
    assert out["flags"] == {"non_music": 1, "speech_like": 1}
    assert summarise([])["included"] == 0


def test_offline_separator_stems_use_cues_for_instruments(tmp_path):
    # the offline separator returns "vocals" and "other" (= everything else): instruments come from cues
    s = synth_song(bpm=120, key="A", scale="minor", duration_s=10, vocals=True, seed=4)
    inst = AudioData(s.mix.samples - s.stems["vocals"].samples, s.mix.sample_rate)
    sep, chunks = make_song(tmp_path, s.mix, {"vocals": s.stems["vocals"], "other": inst}, inst, chunk_s=10, model="offline")
    result = analyse_song(sep, chunks, CFG)
    row = result.chunk_rows()[0]
    assert row["instrument_method"] == "features" and "drums" in row["instrument"]
    assert row["source_vocals"] is True and result.vocals_in_source is True
    assert row["stem_other_db"] > -3 and row["stem_drums_db"] is None
    assert "residual_vocals" not in row["flags"]


def test_missing_chunk_file_names_the_chunk(tmp_path):
    s = synth_song(duration_s=5, vocals=False)
    sep, chunks = make_song(tmp_path, s.mix, {}, s.mix, chunk_s=5, model="none")
    chunks[0].audio_path.unlink()
    with pytest.raises(ValueError, match="chunk s1-000 of song s1: .*no such file"):
        analyse_song(sep, chunks, CFG)


def test_derived_mood_rules():
    from processing.analyse.moods import derive_moods
    from test_describe import feats

    assert derive_moods(feats(bpm=140, scale="minor", lufs=-26, bright=800)) == ["tense", "energetic", "warm"]
    assert derive_moods(feats(bpm=70, scale="major", lufs=-8, bright=2000)) == ["warm", "calm"]
    assert derive_moods(feats(bpm=100, conf=0.5, scale="minor", lufs=-26, bright=3500)) == ["mellow"]


def test_check_config_reads_every_model_file_without_torch(tmp_path):
    """A build's driver checks the tempo and tagger models before any work but never runs them: the check reads
    and verifies the files in a process that never imports torch (~2 s of every build's start-up), and a cut-off
    file is named as surely as a missing one."""
    import shutil
    import subprocess
    import sys

    import musicnn

    from processing.analyse import beat_network

    tagger = tmp_path / "tagger"
    for model in ("MTT_musicnn", "MSD_musicnn"):
        shutil.copytree(Path(musicnn.__file__).parent / model, tagger / model)
    data = tagger / "MSD_musicnn" / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # a download cut short
    beats = tmp_path / "beats"
    shutil.copytree(beat_network.model_dir(None), beats)
    (beats / beat_network.MODEL_FILES[3]).write_bytes((beats / beat_network.MODEL_FILES[3]).read_bytes()[:1000])
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from processing.analyse.analyse import check_config
        from processing.config import AnalyseConfig
        check_config(AnalyseConfig())  # the installed models: whole
        for cfg in (AnalyseConfig(tagger_weights=Path({str(tagger)!r})), AnalyseConfig(tempo_weights=Path({str(beats)!r}))):
            try:
                check_config(cfg)
            except Exception as exc:
                print(type(exc).__name__, exc)
        print("imported:", sorted(m for m in ("torch", "scipy", "librosa") if m in sys.modules))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("TaggerUnavailable") and "MSD_musicnn" in lines[0], lines
    assert lines[1].startswith("AnalysisError") and beat_network.MODEL_FILES[3] in lines[1], lines
    assert lines[2] == "imported: []", lines
