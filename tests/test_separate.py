"""The separate stage: Demucs (with a tiny random HTDemucs), the offline separator and the cached driver."""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tiny_demucs  # noqa: E402

from conftest import DRUM_BASS, SONG_WITH_VOCALS, VIBE_ACE, VIBE_ACE_LOWQ  # noqa: E402
from processing import audio_io  # noqa: E402
from processing.config import SeparateConfig  # noqa: E402
from processing.separate.demucs_separator import DemucsSeparator, apply_model_batched  # noqa: E402
from processing.separate.offline_separator import OfflineSeparator  # noqa: E402
from processing.separate.base import PassThroughSeparator, SeparatorError  # noqa: E402
from processing.separate.choose import make_separator  # noqa: E402
from processing.demo.synth import synth_song  # noqa: E402
from processing.types import AudioData, Song, SongMetadata  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SR = 44100


@pytest.fixture()
def empty_caches(tmp_path, monkeypatch) -> Path:
    """No Hugging Face cache, no torch hub checkpoints: as on a fresh offline machine."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _mixes(lengths_s, sample_rate=SR, channels=2, seed=0) -> list[AudioData]:
    rng = np.random.default_rng(seed)
    out = []
    for length in lengths_s:
        n = int(length * sample_rate)
        t = np.arange(n) / sample_rate
        tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))
        noise = 0.1 * rng.standard_normal((channels, n))
        out.append(AudioData((tone + noise + 0.05).astype(np.float32), sample_rate))
    return out


def _reference(bag, mix: AudioData, shifts: int, overlap: float, seed: int) -> np.ndarray:
    """What demucs's own separate path gives for one song: normalise, apply_model, denormalise."""
    from demucs.apply import apply_model

    wav = torch.from_numpy(mix.samples)
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    random.seed(seed)
    out = apply_model(bag, ((wav - mean) / std)[None], shifts=shifts, overlap=overlap)[0]
    return (out * std + mean).numpy()


def _stack(stems: dict[str, AudioData], names) -> np.ndarray:
    return np.stack([stems[n].samples for n in names])


# ------------------------------------------------------------------ demucs: batching equals apply_model


@pytest.mark.parametrize("shifts", [0, 2])
def test_batched_separation_equals_apply_model_per_song(tiny_repo, empty_caches, shifts):
    # 0.7 s is shorter than the tiny model's 2 s segment; the others span several segments.
    mixes = _mixes([0.7, 3.3, 5.1])
    cfg = SeparateConfig(weights=tiny_repo, cpu_batch_segments=3, shifts=shifts, overlap=0.25, seed=7, device="cpu")
    sep = DemucsSeparator(cfg)
    outputs = sep.separate_many(mixes)
    assert sep.stems == ["drums", "bass", "other", "vocals"]
    for mix, stems in zip(mixes, outputs):
        got = _stack(stems, sep.stems)
        expected = _reference(sep.bag, mix, shifts, 0.25, seed=7)
        assert got.shape == expected.shape == (4, 2, mix.num_frames)
        assert np.abs(expected).max() > 1e-3  # the comparison is not between zeros
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_batching_does_not_depend_on_the_company_a_song_keeps(tiny_repo, empty_caches):
    mixes = _mixes([2.5, 4.0, 1.2], seed=3)
    sep = DemucsSeparator(SeparateConfig(weights=tiny_repo, cpu_batch_segments=4, overlap=0.5, seed=1))
    together = sep.separate_many(mixes)
    alone = sep.separate_many([mixes[1]])[0]
    np.testing.assert_allclose(_stack(together[1], sep.stems), _stack(alone, sep.stems), atol=1e-5, rtol=0)


def test_bag_of_models_weights_equal_apply_model(tmp_path, empty_caches):
    models = [tiny_demucs.tiny_htdemucs(seed=1), tiny_demucs.tiny_htdemucs(seed=2)]
    weights = [[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0]]
    repo = tiny_demucs.save_repo(tmp_path / "bag", name="htdemucs_ft", models=models, weights=weights)
    sep = DemucsSeparator(SeparateConfig(model="htdemucs_ft", weights=repo, cpu_batch_segments=5, seed=3))
    assert len(sep.bag.models) == 2
    mixes = _mixes([1.5, 3.0], seed=5)
    for mix, stems in zip(mixes, sep.separate_many(mixes)):
        np.testing.assert_allclose(_stack(stems, sep.stems), _reference(sep.bag, mix, 1, 0.25, seed=3),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["htdemucs", "hdemucs"])
def test_apply_model_batched_low_level_equals_apply_model(kind):
    """Also for the hybrid (mdx*) models, whose last, shorter segment has another input length."""
    from demucs.apply import BagOfModels, apply_model
    from demucs.hdemucs import HDemucs

    torch.manual_seed(0)
    model = tiny_demucs.tiny_htdemucs() if kind == "htdemucs" else HDemucs(
        sources=list(tiny_demucs.SOURCES), channels=4, segment=2).eval()
    bag = BagOfModels([model])
    mixes = [torch.from_numpy(m.samples) for m in _mixes([0.4, 2.9], seed=9)]
    got = apply_model_batched(bag, mixes, shifts=2, overlap=0.1, batch_segments=3, seed=11)
    for mix, out in zip(mixes, got):
        random.seed(11)
        np.testing.assert_allclose(out.numpy(), apply_model(bag, mix[None], shifts=2, overlap=0.1)[0].numpy(),
                                   atol=1e-5, rtol=0)


# ------------------------------------------------------------------ demucs: weights routes and errors


def _probe(sep) -> np.ndarray:
    return _stack(sep.separate_many(_mixes([1.0], seed=2))[0], sep.stems)


def test_weights_from_folder_th_file_safetensors_file_and_caches(tmp_path, tiny_repo, monkeypatch):
    model = tiny_demucs.tiny_htdemucs()
    th = tiny_demucs.save_th(model, tmp_path / "files" / "955717e8.th")
    st = tiny_demucs.save_safetensors(model, tmp_path / "files" / "955717e8.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "none"))
    from_folder = DemucsSeparator(SeparateConfig(weights=tiny_repo))
    reference = _probe(from_folder)
    for weights in (th, st, tiny_repo / "htdemucs.yaml"):
        sep = DemucsSeparator(SeparateConfig(weights=weights))
        assert sep.weights_sha256() == from_folder.weights_sha256()
        np.testing.assert_allclose(_probe(sep), reference, atol=1e-6)

    # $TORCH_HOME/hub/checkpoints/, under the file name demucs's legacy download uses
    torch_home = tmp_path / "torch_home"
    tiny_demucs.save_th(model, torch_home / "hub" / "checkpoints" / tiny_demucs.TORCH_HUB_NAME)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    sep = DemucsSeparator(SeparateConfig())
    assert "torch hub" in sep.origin and sep.weights_sha256() == from_folder.weights_sha256()

    # a filled Hugging Face cache wins over the torch hub one, like demucs's own lookup order
    hf = tiny_demucs.fill_hf_cache(tmp_path / "hf", model)
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    sep = DemucsSeparator(SeparateConfig())
    assert "Hugging Face cache" in sep.origin
    np.testing.assert_allclose(_probe(sep), reference, atol=1e-6)


def test_missing_weights_fail_fast_with_instructions(empty_caches):
    start = time.perf_counter()
    with pytest.raises(SeparatorError) as err:
        make_separator(SeparateConfig(model="htdemucs", offline=True))  # tests/test_weights_download.py: online
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"the missing-weights error took {elapsed:.1f} s (a network wait?)"
    text = str(err.value)
    for needle in ("separate.weights=", "htdemucs.yaml", "955717e8.th", "955717e8-8726e21a.th",
                   str(empty_caches / "torch" / "hub" / "checkpoints"), str(empty_caches / "hf"),
                   "adefossez/HTDemucs", "955717e8.safetensors", "separate.model=offline", "separate.model=none"):
        assert needle in text, f"{needle!r} missing from:\n{text}"


def test_bad_weights_and_names_are_named(tmp_path, empty_caches, tiny_repo):
    with pytest.raises(SeparatorError, match="no such file or folder"):
        DemucsSeparator(SeparateConfig(weights=tmp_path / "nope"))
    with pytest.raises(SeparatorError, match="not a released demucs model"):
        DemucsSeparator(SeparateConfig(model="htdemucs_typo"))
    with pytest.raises(SeparatorError, match="htdemucs_6s"):  # the folder has no htdemucs_6s.yaml
        DemucsSeparator(SeparateConfig(model="htdemucs_6s", weights=tiny_repo))
    junk = tmp_path / "junk.th"
    torch.save({"weight": torch.zeros(3)}, junk)
    with pytest.raises(SeparatorError, match="not a demucs model package"):
        DemucsSeparator(SeparateConfig(weights=junk))
    with pytest.raises(SeparatorError, match="bag of 4 models"):
        DemucsSeparator(SeparateConfig(model="htdemucs_ft", weights=tiny_repo / "955717e8.th"))
    with pytest.raises(SeparatorError, match="CUDA"):
        DemucsSeparator(SeparateConfig(weights=tiny_repo, device="cuda" if not torch.cuda.is_available() else "cuda:99"))


# ------------------------------------------------------------------ demucs: rates and channels


def test_mono_and_other_rates_come_back_in_the_input_shape(tiny_repo, empty_caches):
    sep = DemucsSeparator(SeparateConfig(weights=tiny_repo, shifts=0))
    stereo22 = _mixes([1.3], sample_rate=22050)[0]
    mono22 = AudioData(stereo22.samples[:1].copy(), 22050)
    quiet22 = AudioData(stereo22.samples[1:] * 0.5, 22050)
    three = AudioData(np.concatenate([stereo22.samples, quiet22.samples]), 22050)
    dual = AudioData(np.repeat(mono22.samples, 2, axis=0), 22050)  # the mono song, duplicated
    mixes = [stereo22, mono22, three, dual, quiet22]
    outs = sep.separate_many(mixes)
    for mix, stems in zip(mixes, outs):
        assert set(stems) == set(sep.stems)
        for stem in stems.values():
            assert stem.sample_rate == 22050 and stem.samples.shape == mix.samples.shape
            assert np.isfinite(stem.samples).all() and np.abs(stem.samples).max() > 1e-3
    for name in sep.stems:
        # mono goes through the model as duplicated stereo and comes back as its channel average
        np.testing.assert_allclose(outs[1][name].samples[0], outs[3][name].samples.mean(axis=0), atol=1e-5)
        # beyond two channels, each channel is separated as a mono song of its own
        np.testing.assert_allclose(outs[2][name].samples[2], outs[4][name].samples[0], atol=1e-5)


# ------------------------------------------------------------------ offline separator


def _vocal_to_accompaniment_db(signal: np.ndarray, vocals: np.ndarray, accompaniment: np.ndarray) -> float:
    """Level of the true vocals relative to the true accompaniment inside `signal` (least-squares fit)."""
    basis = np.stack([vocals.ravel(), accompaniment.ravel()], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, signal.ravel(), rcond=None)
    return float(20 * np.log10(abs(a) * np.linalg.norm(vocals) / (abs(b) * np.linalg.norm(accompaniment))))


@pytest.mark.parametrize("seed,bpm,key,sample_rate,stereo", [(0, 133, "C", 44100, True), (5, 99, "A", 22050, False)])
def test_offline_separator_lowers_the_vocals_of_a_synthetic_song(seed, bpm, key, sample_rate, stereo):
    song = synth_song(bpm=bpm, key=key, duration_s=10, sample_rate=sample_rate, stereo=stereo, seed=seed)
    sep = make_separator(SeparateConfig(model="offline"))
    assert isinstance(sep, OfflineSeparator) and sep.name == "offline-repet"
    start = time.perf_counter()
    stems = sep.separate_many([song.mix])[0]
    elapsed = time.perf_counter() - start
    assert set(stems) == {"vocals", "other"}
    for stem in stems.values():
        assert stem.samples.shape == song.mix.samples.shape and stem.sample_rate == sample_rate
    vocals = song.stems["vocals"].samples
    accompaniment = song.mix.samples - vocals
    mix_db = _vocal_to_accompaniment_db(song.mix.samples, vocals, accompaniment)
    instrumental_db = _vocal_to_accompaniment_db(stems["other"].samples, vocals, accompaniment)
    # observed over 8 synthetic songs of 10 s: 5.4 to 8.6 dB lower; assert 3 dB
    assert instrumental_db < mix_db - 3.0, (mix_db, instrumental_db)
    print(f"offline: vocals {mix_db:.1f} dB -> {instrumental_db:.1f} dB in {elapsed:.2f} s")


@pytest.mark.parametrize("k", [40, 7])
def test_offline_neighbour_median_equals_librosas_nn_filter_bit_for_bit(shared_audio, k):
    """The hand-written median of similar frames gives exactly librosa's nn_filter(aggregate=np.median) numbers
    (even and odd neighbour counts), on a real clip's spectrum and on a synthetic song's, blocks not filling the end."""
    import librosa
    import scipy.sparse

    from processing.separate.offline_separator import nearest_frames, neighbour_median

    real = audio_io.decode(shared_audio / VIBE_ACE).samples[0, 10 * 44100: 22 * 44100]
    synthetic = synth_song(bpm=97, key="E", duration_s=9, stereo=False, seed=3).mix.samples[0]
    for signal in (real, synthetic):
        spectrum = np.abs(librosa.stft(signal, n_fft=2048, hop_length=512))  # (bins, frames)
        neighbours = nearest_frames(spectrum, k=k, width=20, window=300)
        rows = np.ascontiguousarray(spectrum.T)
        assert len(rows) % 64 and neighbours.shape == (len(rows), k)
        marks = np.repeat(np.arange(len(rows)), k)  # row i of the recurrence matrix marks neighbours[i]
        recurrence = scipy.sparse.csr_matrix((np.ones(marks.size, np.float32), (marks, neighbours.ravel())),
                                             shape=(len(rows), len(rows)))
        expected = librosa.decompose.nn_filter(rows, rec=recurrence, aggregate=np.median, axis=0)
        np.testing.assert_array_equal(neighbour_median(rows, neighbours), expected)


def test_softmask_equals_librosas_bit_for_bit(shared_audio):
    """processing.softmask (the offline separator's and HPSS's masks) gives librosa.util.softmask's numbers and
    dtype exactly: real stereo spectra with silent frames in one or both, float32 and float64, powers 1, 2 and 1.5,
    zeros split or not; and refuses what librosa refuses."""
    import librosa

    from processing.softmask import softmask

    stereo = audio_io.decode(shared_audio / VIBE_ACE).samples[:, 10 * 44100: 16 * 44100]
    x, ref = (np.abs(librosa.stft(np.ascontiguousarray(channel), n_fft=2048, hop_length=512)) for channel in stereo)
    x[:, 100:110], ref[:, 105:120] = 0, 0  # frames where one or both are silent (bins below float's tiny)
    assert (np.maximum(x, ref) == 0).any() and ((x == 0) & (ref > 0)).any()
    for dtype in (np.float32, np.float64):
        for power in (1, 2.0, 1.5):
            for split_zeros in (False, True):
                a, b = x.astype(dtype), 2.0 * ref.astype(dtype)
                expected = librosa.util.softmask(a, b, power=power, split_zeros=split_zeros)
                got = softmask(a, b, power=power, split_zeros=split_zeros)
                assert got.dtype == expected.dtype, (dtype, power)
                assert np.array_equal(*(np.ascontiguousarray(m).view(np.uint8) for m in (got, expected))), \
                    (dtype, power, split_zeros)  # bit for bit
    for bad in (dict(x=x, x_ref=ref[:, :-1]), dict(x=-x, x_ref=ref), dict(x=x, x_ref=ref, power=0.0),
                dict(x=x, x_ref=ref, power=np.inf)):
        with pytest.raises(ValueError, match="softmask"):
            softmask(**bad)


def test_offline_separator_handles_clips_shorter_than_its_window():
    mix = AudioData(np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32) * 0.1, 44100)
    stems = OfflineSeparator().separate(mix)
    np.testing.assert_array_equal(stems["other"].samples, mix.samples)
    assert not stems["vocals"].samples.any()


# ------------------------------------------------------------------ the cached driver


def _song(path: Path, song_id: str, instrumental: bool = False) -> Song:
    duration, rate, channels = audio_io.info(path)
    return Song(song_id=song_id, audio_path=path, metadata=SongMetadata(title=song_id),
                content_hash=audio_io.file_sha256(path), duration_s=duration, sample_rate=rate,
                channels=channels, instrumental=instrumental)


def _excerpt(src: Path, dst: Path, start_s: float, length_s: float) -> Path:
    audio = audio_io.decode(src)
    a = int(start_s * audio.sample_rate)
    return audio_io.write(dst, AudioData(audio.samples[:, a:a + int(length_s * audio.sample_rate)], audio.sample_rate),
                          subtype="PCM_16")


def test_stream_fed_songs_while_it_runs_equals_separate_many(tiny_repo, empty_caches):
    """The model worker's stream: a second song arrives after the first batch ran, a third has one channel
    at another rate; each comes back (instrumental and stem levels) as separate_many makes it."""
    from processing.separate.demucs_separator import prepare_model_input, separation_from_model
    from processing.separate.levels import stem_levels

    cfg = SeparateConfig(weights=tiny_repo, cpu_batch_segments=3, seed=4, device="cpu")
    sep = DemucsSeparator(cfg)
    mixes = _mixes([3.1, 2.2], seed=6) + _mixes([1.7], sample_rate=22050, channels=1, seed=7)
    stream = sep.stream("sum", keep_stems=False)
    stream.add("a", prepare_model_input(mixes[0], sep.samplerate, sep.audio_channels))
    results = dict(stream.step())  # one batch of song a alone
    stream.add("b", prepare_model_input(mixes[1], sep.samplerate, sep.audio_channels))
    stream.add("c", prepare_model_input(mixes[2], sep.samplerate, sep.audio_channels))
    while not stream.idle():
        results.update(stream.step())
    assert set(results) == {"a", "b", "c"}
    reference = sep.separate_many(mixes)
    for key, mix, stems in zip("abc", mixes, reference):
        got = separation_from_model(results[key], None)
        expected = sum(stems[n].samples for n in ("drums", "bass", "other"))
        assert got.instrumental.samples.shape == mix.samples.shape and got.instrumental.sample_rate == mix.sample_rate
        np.testing.assert_allclose(got.instrumental.samples, expected, atol=1e-4, rtol=0)
        levels = got.levels
        assert levels.sample_rate == sep.samplerate and set(levels.stems) == set(sep.stems)
        # stem levels at the model's rate against the same measure on the stems at the song's rate
        ref = stem_levels(mix.samples, {n: s.samples for n, s in stems.items()}, expected, mix.sample_rate)
        for name in sep.stems:
            ours = 10 * np.log10(levels.stems[name].sum() / levels.mix.sum())
            theirs = 10 * np.log10(ref.stems[name].sum() / ref.mix.sum())
            assert ours == pytest.approx(theirs, abs=0.2)


def _build_cfg(tmp_path, *overrides):
    from processing.config import load_config

    base = [f"out_dir={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}", "analyse.enabled=false",
            "build.exports=[]", "progress=false", "ingest.min_duration_s=1", "chunk.chunk_s=1", "chunk.min_tail_s=0.5",
            "workers=2"]
    return load_config(None, base + list(overrides))


def test_build_separates_once_keeps_levels_not_stems_and_reuses_the_cache(shared_audio, tmp_path, tiny_repo, empty_caches):
    from processing.pipeline import run_build
    from processing.types import SourceSpec, StemLevels

    sources = [
        SourceSpec(str(_excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 40, 3.0))),
        SourceSpec(str(_excerpt(shared_audio / VIBE_ACE_LOWQ, tmp_path / "jazz22k.wav", 10, 2.0))),  # mono 22.05k
        SourceSpec(str(_excerpt(shared_audio / DRUM_BASS, tmp_path / "drums.wav", 5, 2.0)), instrumental=True),
    ]
    cfg = _build_cfg(tmp_path, f"separate.weights={tiny_repo}", "separate.cpu_batch_segments=4")
    first = run_build(cfg, sources)
    assert not first.report.failures and first.report.cache_misses["separate"] == 3
    models = {r["source_title"]: r["separation_model"] for r in first.rows}
    assert models == {"vocal": "htdemucs", "jazz22k": "htdemucs", "drums": "none"}
    entries = sorted((tmp_path / "cache" / "separate").glob("*/*/done.json"))
    assert len(entries) == 3
    for marker in entries:
        folder = marker.parent
        assert not (folder / "stems").exists()  # no stems without keep_stems
        inst = sf.info(str(folder / "instrumental.flac"))
        assert inst.subtype == "PCM_24"
        if (folder / "levels.npz").exists():
            levels = StemLevels.load(folder / "levels.npz")
            assert set(levels.stems) == {"drums", "bass", "other", "vocals"} and levels.vocal_dot is not None
        else:  # the pass-through song: its instrumental is the mix
            np.testing.assert_allclose(audio_io.decode(folder / "instrumental.flac").samples,
                                       audio_io.decode(Path(sources[2].location)).samples, atol=1e-4)
    assert len([m for m in entries if (m.parent / "levels.npz").exists()]) == 2

    again = run_build(cfg, sources)
    assert again.report.cache_hits["separate"] == 3 and "separate" not in again.report.cache_misses
    assert [r["audio_sha256"] for r in again.rows] == [r["audio_sha256"] for r in first.rows]

    # another seed changes the demucs output, hence the key: those songs run again, the pass-through one does not
    third = run_build(_build_cfg(tmp_path, f"separate.weights={tiny_repo}", "separate.seed=1"), sources)
    assert third.report.cache_misses["separate"] == 2 and third.report.cache_hits["separate"] == 1


def test_offline_separator_residual_mode_on_a_real_song(shared_audio, tmp_path):
    from processing.separate.stage import separate_on_cpu

    mix = audio_io.decode(_excerpt(shared_audio / SONG_WITH_VOCALS, tmp_path / "vocal.wav", 30, 6.0))
    cfg = SeparateConfig(model="offline", instrumental_mode="residual", keep_stems=True)
    separation = separate_on_cpu(mix, make_separator(cfg), cfg)
    assert set(separation.stems) == {"vocals", "other"}
    vocals = separation.stems["vocals"].samples
    # residual mode: instrumental = mix - vocals
    np.testing.assert_allclose(separation.instrumental.samples, mix.samples - vocals, atol=1e-6)
    assert 0 < np.sqrt(np.mean(vocals ** 2)) < np.sqrt(np.mean(mix.samples ** 2))
    assert set(separation.levels.stems) == {"vocals", "other"}
    assert separate_on_cpu(mix, make_separator(SeparateConfig(model="offline")), SeparateConfig(model="offline")).stems == {}


def test_make_separator_none_and_bad_failures_are_reported(tmp_path):
    from processing.config import load_config
    from processing.pipeline import build_context, song_task

    assert isinstance(make_separator(SeparateConfig(model="none")), PassThroughSeparator)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    song = Song("bad", bad, SongMetadata(), audio_io.file_sha256(bad), 1.0, 44100, 2)
    cfg = load_config(None, [f"out_dir={tmp_path / 'out'}", "separate.model=offline"])
    outcome = song_task(song, build_context(cfg, make_separator(cfg.separate)))
    [failure] = outcome.failures
    assert failure.item == "bad" and failure.kind == "decode" and failure.stage == "separate"