"""Measurements on one piece of audio: tempo, key, loudness, danceability,
silence, brightness and the low-level cues used for instruments and "is this
music?".

Libraries do the measuring: essentia (RhythmExtractor2013, KeyExtractor,
Danceability), pyloudnorm (EBU R128 integrated loudness), librosa (HPSS,
spectral centroid, onset strength), soxr (resampling). This module only picks
parameters and turns their outputs into one flat dataclass.

Key profile: ``shaath`` by default. Measured on 48 synthetic signals (the 24
keys x {cadential i-iv-V-i / I-IV-V-I progression from
``processing.demo.testsignals``, ``processing.demo.synth.synth_song`` loop}) it was right
on 47/48, against krumhansl 46, edma 41, bgate 36, temperley 36, edmm 24; on
the real clips (Vibe Ace, Lets Go Fishin', the ragtime, the drum-bass excerpt)
shaath, edma and krumhansl agree with one another.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..loudness import MIN_LOUDNESS_LUFS, loudness, rms_db  # noqa: F401  (re-exported)
from ..types import AudioData

ESSENTIA_RATE = 44100  # RhythmExtractor2013 and KeyExtractor assume 44.1 kHz
FEATURE_RATE = 22050  # librosa cues (HPSS, centroid, onsets) need no more
HPSS_MAX_HZ = 5512.5  # harmonic/percussive separation only below this (a quarter of FEATURE_RATE)
KEY_PROFILES = ("shaath", "krumhansl", "edma", "edmm", "bgate", "temperley", "diatonic", "tonictriad", "temperley2005", "noland")


class AnalysisError(ValueError):
    """The audio cannot be analysed (empty, too short, bad parameter); the message says why."""


@dataclass
class Features:
    duration_s: float
    bpm: float  # 0.0 when no beat was found
    bpm_confidence: float  # essentia: its beat confidence (<1 very low, 1-1.5 low, 1.5-3.5 good); rnn: mean beat activation on the beats (0-1)
    key: str  # "C", "C#", ..., "Bb" (essentia's spelling); "" when the audio is silent
    scale: str  # "major" / "minor" / ""
    key_strength: float  # 0..1
    loudness_lufs: float  # EBU R128 integrated loudness, >= MIN_LOUDNESS_LUFS
    peak: float  # sample peak, linear
    peak_db: float  # sample peak, dBFS
    danceability: float  # essentia's DFA danceability, 0..~3
    silence_ratio: float  # share of 50 ms frames below the silence threshold
    brightness_hz: float  # mean spectral centroid of non-silent frames
    percussive_ratio: float  # energy share of the percussive (HPSS) part
    percussive_flatness: float  # spectral flatness of the percussive part below 5.5 kHz (drums ~0.03-0.06, piano ~0.01)
    kick_ratio: float  # percussive energy in 30-150 Hz, share of all energy
    low_harmonic_ratio: float  # harmonic energy in 30-200 Hz, share of all energy (bass)
    below_1k_ratio: float  # energy share below 1 kHz (almost all music puts energy here)
    pulse: float  # peak onset-envelope autocorrelation at 50-200 BPM lags: rhythmic regularity, 0..1
    low_energy_ratio: float  # share of 93 ms frames quieter than half the mean RMS (speech ~0.4, sustained music ~0)
    tempo_method: str = "essentia"  # who measured bpm and bpm_confidence: "essentia" or "rnn" (analyse.tempo)
    beats: list[float] = field(default_factory=list)  # beat times, seconds from the start of this audio

    def to_dict(self) -> dict:
        return asdict(self)


# The beat confidence that counts as "a beat was found" and "a steady beat", per tempo method:
# essentia's RhythmExtractor2013 confidence (0-5.32; its documentation: <1 very low, 1-1.5 low,
# 1.5-3.5 good) and, for the beat network, the mean activation on the tracked beats (0-1;
# thresholds and what they were checked on: processing.analyse.beats).
def has_beat(f: "Features") -> bool:
    from .beats import BEAT_FOUND

    return f.bpm > 0 and f.bpm_confidence >= (BEAT_FOUND if f.tempo_method == "rnn" else 1.0)


def steady_beat(f: "Features") -> bool:
    from .beats import STEADY_BEAT

    return f.bpm > 0 and f.bpm_confidence >= (STEADY_BEAT if f.tempo_method == "rnn" else 1.5)


@functools.lru_cache(maxsize=None)
def _algorithm(name: str, **params):
    """One essentia algorithm per process and settings: building one costs ~40 ms, more than using it. (Without
    ``essentia.standard``, which takes 1.1 s to import: ``essentia_algorithms``.)"""
    from ..essentia_algorithms import algorithm

    return algorithm(name, **params)


def to_mono(audio: AudioData, rate: int) -> np.ndarray:
    """Average channels and resample (soxr, high quality) to `rate`; float32, contiguous."""
    mono = audio.samples.mean(axis=0, dtype=np.float64)
    if audio.sample_rate != rate:
        import soxr

        mono = soxr.resample(mono, audio.sample_rate, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)




def tempo(x44: np.ndarray) -> tuple[float, float, list[float]]:
    """(bpm, confidence, beat times in s) by essentia RhythmExtractor2013 (multifeature) on 44.1 kHz mono."""
    if len(x44) < ESSENTIA_RATE:  # under a second: no beat can be found
        return 0.0, 0.0, []
    bpm, ticks, confidence, _est, _intervals = _algorithm("RhythmExtractor2013", method="multifeature")(x44)
    return float(bpm), float(confidence), [round(float(t), 2) for t in ticks]


def key(x44: np.ndarray, profile: str = "shaath") -> tuple[str, str, float]:
    """(key, scale, strength) by essentia KeyExtractor with the given profile."""
    if profile not in KEY_PROFILES:
        raise AnalysisError(f"key profile {profile!r} unknown; choose one of {', '.join(KEY_PROFILES)}")
    if rms_db(x44) < -90:
        return "", "", 0.0
    k, scale, strength = _algorithm("KeyExtractor", profileType=profile, sampleRate=ESSENTIA_RATE)(x44)
    return str(k), str(scale), float(strength)




def danceability(x44: np.ndarray) -> float:
    if len(x44) < 2 * ESSENTIA_RATE:
        return 0.0
    return float(_algorithm("Danceability", sampleRate=ESSENTIA_RATE)(x44)[0])


def silence_ratio(x: np.ndarray, rate: int, silence_db: float, frame_s: float = 0.05) -> float:
    """Share of `frame_s` frames whose RMS is below `silence_db` dBFS."""
    frame = max(1, int(frame_s * rate))
    n = len(x) // frame
    if n == 0:
        return 1.0 if rms_db(x) < silence_db else 0.0
    frames = x[: n * frame].reshape(n, frame).astype(np.float64)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return float(np.mean(levels < silence_db))


def hpss(spec: np.ndarray, kernel_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.decompose.hpss(spec, kernel_size=kernel_size)`` for a real magnitude spectrogram, the same
    operations in the same order (bit-identical, tested). Written out because importing librosa.decompose
    imports scikit-learn and pandas for its NMF (~0.9 s in every worker process that analyses); its soft masks are
    ``processing.softmask``'s, librosa's numbers ~4x faster."""
    from scipy.ndimage import median_filter

    from ..softmask import softmask

    harmonic = median_filter(spec, size=(1, kernel_size[0]), mode="reflect")
    percussive = median_filter(spec, size=(kernel_size[1], 1), mode="reflect")
    mask_harmonic = softmask(harmonic, percussive, power=2.0, split_zeros=True)
    mask_percussive = softmask(percussive, harmonic, power=2.0, split_zeros=True)
    return spec * mask_harmonic, spec * mask_percussive


def spectral_cues(x: np.ndarray, rate: int = FEATURE_RATE) -> dict[str, float]:
    """HPSS energy shares, brightness and rhythmic regularity (librosa)."""
    import librosa

    n_fft, hop = 2048, 1024  # 46 ms hop: HPSS cost is in the median filters, this halves it (x4 vs 512 measured)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    spec = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
    freqs = librosa.fft_frequencies(sr=rate, n_fft=n_fft)
    # HPSS (its median filters are most of this function's cost) runs on the bins below HPSS_MAX_HZ only:
    # 4-5x cheaper, and the drum/bass cues live there; energy shares stay relative to the whole spectrum.
    band = spec[freqs < HPSS_MAX_HZ]
    harmonic, percussive = hpss(band, kernel_size=(17, 31))  # 0.8 s in time, 31 bins (335 Hz)
    power = np.abs(spec) ** 2
    total = float(power.sum()) or 1e-20

    def share(matrix: np.ndarray, lo: float, hi: float) -> float:
        rows = (freqs[: len(matrix)] >= lo) & (freqs[: len(matrix)] < hi)
        return float((np.abs(matrix[rows]) ** 2).sum()) / total

    mag = spec
    frame_energy = power.sum(axis=0)
    loud = frame_energy > 1e-6 * (frame_energy.max() or 1.0)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=rate)[0]
    perc_mag = np.abs(percussive)
    flatness = librosa.feature.spectral_flatness(S=perc_mag + 1e-10)[0]
    onset = librosa.onset.onset_strength(S=librosa.amplitude_to_db(mag, ref=np.max), sr=rate, hop_length=hop)
    pulse = 0.0
    onset = onset - onset.mean()
    if len(onset) > 8 and float(np.abs(onset).sum()) > 0:
        ac = librosa.autocorrelate(onset)
        ac = ac / (ac[0] or 1.0)
        lags = np.arange(len(ac))
        window = (lags >= int(60 / 200 * rate / hop)) & (lags <= int(60 / 50 * rate / hop))
        if window.any():
            pulse = float(max(0.0, ac[window].max()))
    rms = np.sqrt(frame_energy)
    low_energy = float(np.mean(rms < 0.5 * rms.mean())) if rms.mean() > 0 else 1.0
    return {
        "low_energy_ratio": low_energy,
        "brightness_hz": float(centroid[loud].mean()) if loud.any() else 0.0,
        "percussive_ratio": share(percussive, 0, rate),
        "percussive_flatness": float(flatness[loud].mean()) if loud.any() else 0.0,
        "kick_ratio": share(percussive, 30, 150),
        "low_harmonic_ratio": share(harmonic, 30, 200),
        "below_1k_ratio": share(spec, 0, 1000),
        "pulse": pulse,
    }


def measure(audio: AudioData, key_profile: str = "shaath", silence_db: float = -60.0,
            tempo_method: str = "essentia") -> Features:
    """Every measurement of this module on one piece of audio (any rate, any channels).

    ``tempo_method="rnn"``: tempo and beats are left empty here (0, 0, []): the caller fills them from the
    beat network (``processing.analyse.beats``), which sees the whole song."""
    if audio.num_frames == 0:
        raise AnalysisError("audio has no samples")
    x44 = to_mono(audio, ESSENTIA_RATE)
    x22 = to_mono(audio, FEATURE_RATE)
    bpm, confidence, ticks = tempo(x44) if tempo_method == "essentia" else (0.0, 0.0, [])
    k, scale, strength = key(x44, key_profile)
    peak = float(np.abs(audio.samples).max())
    return Features(
        duration_s=audio.duration_s,
        bpm=round(bpm, 2),
        bpm_confidence=round(confidence, 3),
        key=k,
        scale=scale,
        key_strength=round(strength, 3),
        loudness_lufs=round(loudness(audio), 2),
        peak=peak,
        peak_db=round(20 * math.log10(peak), 2) if peak > 0 else -200.0,
        danceability=round(danceability(x44), 3),
        silence_ratio=round(silence_ratio(x22, FEATURE_RATE, silence_db), 3),
        **{k2: round(v, 4) for k2, v in spectral_cues(x22).items()},
        tempo_method=tempo_method,
        beats=ticks,
    )
