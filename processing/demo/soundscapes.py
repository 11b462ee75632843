"""Synthetic sounds with a known answer to "is this music?", for the checks of
``processing.analyse.musicness`` beyond the few real clips we have.

Hand-written: no library synthesises these. None imitates a real recording closely; each
stands for a class of sounds by the property that makes it hard: music without a steady beat
(a pad, a rubato melody, free-tempo plucked arpeggios), noisy music (distortion, a wobble bass
over drums), and sounds that are not music but have pitch or rhythm (whale-like moans, a purr,
barks, rain, wind, a crowd of voices).

Every generator takes a seed and a duration and returns mono 44.1 kHz ``AudioData`` peaking at 0.8.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .synth import synth_song
from ..types import AudioData

RATE = 44100


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _norm(x: np.ndarray) -> AudioData:
    x = np.asarray(x, dtype=np.float64)
    return AudioData((0.8 * x / (np.abs(x).max() or 1.0)).astype(np.float32), RATE)


def _noise(n: int, rng: np.random.Generator, colour: float = 0.0) -> np.ndarray:
    """Gaussian noise with a 1/f^colour power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    f[0] = f[1]
    return np.fft.irfft(spec / f ** (colour / 2), n)


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(4, [lo, hi], btype="band", fs=RATE, output="sos"), x)


def _tone(freqs: np.ndarray, harmonics: int = 6, decay: float = 1.0) -> np.ndarray:
    """A harmonic tone following the frequency track `freqs` (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(freqs) / RATE
    return sum(np.sin(k * phase) / k ** decay for k in range(1, harmonics + 1))


# ---------------------------------------------------------------- music without a steady beat


def ambient_pad(duration_s: float, seed: int = 0) -> AudioData:
    """Slowly cross-fading sustained chords (6-10 s each), detuned voices, no attack: an ambient synth pad."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    out = np.zeros(n)
    t0 = 0.0
    roots = [57, 53, 60, 55, 52, 50]
    while t0 < duration_s:
        length = float(rng.uniform(6, 10))
        a, b = int(t0 * RATE), min(n, int((t0 + length + 2) * RATE))
        t = np.arange(b - a) / RATE
        env = np.sin(np.pi * t / (t[-1] + 1e-9)) ** 2
        root = roots[int(rng.integers(len(roots)))]
        for m in (root, root + 4 if rng.random() < 0.5 else root + 3, root + 7, root + 12):
            for detune in (-0.07, 0.07):
                out[a:b] += env * _tone(np.full(b - a, _hz(m + detune)), 4, 1.5) / 8
        t0 += length
    return _norm(out)


def rubato_melody(duration_s: float, seed: int = 0, instrument: str = "flute") -> AudioData:
    """A solo melody in free time (notes of 0.2-1.6 s, random rests, vibrato): flute-like (few harmonics,
    breath noise) or a bowed string (many harmonics)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    out = np.zeros(n)
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14]
    pos, degree = 0.0, 4
    base = 72 if instrument == "flute" else 60
    while pos < duration_s:
        length = float(rng.uniform(0.2, 1.6))
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(scale) - 1))
        a, b = int(pos * RATE), min(n, int((pos + length) * RATE))
        t = np.arange(b - a) / RATE
        f = _hz(base + scale[degree]) * (1 + 0.006 * np.sin(2 * np.pi * 5.2 * t))
        env = np.minimum(1, t / 0.08) * np.minimum(1, (length - t) / 0.1).clip(0)
        harmonics, decay = (3, 2.0) if instrument == "flute" else (12, 1.0)
        note = _tone(f, harmonics, decay) * env
        if instrument == "flute":
            note += 0.03 * rng.standard_normal(len(t)) * env
        out[a:b] += note
        pos += length + (float(rng.uniform(0.1, 0.8)) if rng.random() < 0.3 else 0.0)
    return _norm(out)


def free_plucks(duration_s: float, seed: int = 0) -> AudioData:
    """Karplus-Strong plucked strings in free-tempo arpeggios (gaps of 0.15-0.9 s): rubato folk guitar or harp."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    out = np.zeros(n + RATE * 8)  # a chord may start near the end and ring on
    pos = 0.0
    chords = [[45, 52, 57, 61, 64], [43, 50, 55, 59, 62], [41, 48, 53, 57, 60], [40, 47, 52, 56, 59]]
    while pos < duration_s:
        chord = chords[int(rng.integers(len(chords)))]
        for m in chord[:: 1 if rng.random() < 0.5 else -1]:
            period = int(RATE / _hz(m))
            length = 2 * RATE
            excitation = np.zeros(length)
            excitation[:period] = rng.uniform(-1, 1, period)
            den = np.zeros(period + 2)
            den[0], den[period], den[period + 1] = 1.0, -0.498, -0.498  # Karplus-Strong: averaged, damped delay line
            note = lfilter([1.0], den, excitation)
            a = int(pos * RATE)
            out[a: a + length] += note[: len(out) - a]
            pos += float(rng.uniform(0.15, 0.9))
    return _norm(out[:n])


# ---------------------------------------------------------------- noisy music


def distorted_band(duration_s: float, seed: int = 0, bpm: float = 140.0) -> AudioData:
    """A drums, bass and chords loop through hard clipping (x30 gain) with hiss: distorted rock or metal."""
    song = synth_song(bpm=bpm, duration_s=duration_s, vocals=False, stereo=False, seed=seed)
    x = song.mix.samples.astype(np.float64).reshape(-1)
    x = np.tanh(30 * x)
    return _norm(x + 0.05 * _noise(len(x), np.random.default_rng(seed), 0.0))


def wobble_bass(duration_s: float, seed: int = 0, bpm: float = 140.0) -> AudioData:
    """Dubstep-like: a distorted saw bass whose low-pass opens and closes in eighth-note wobbles, over drums
    at half time, with a noise riser."""
    rng = np.random.default_rng(seed)
    drums = synth_song(bpm=bpm / 2, duration_s=duration_s, vocals=False, bass=False, chords=False, stereo=False,
                       seed=seed).mix.samples.astype(np.float64).reshape(-1)
    n = len(drums)
    t = np.arange(n) / RATE
    f0 = _hz(31 + int(rng.integers(0, 5)))
    saw = 2 * ((f0 * t) % 1.0) - 1
    saw = np.tanh(4 * (saw + 0.5 * (2 * ((1.01 * f0 * t) % 1.0) - 1)))
    wobble = 0.5 + 0.5 * np.sin(2 * np.pi * (bpm / 60.0 * 2) * t)
    from scipy.signal import butter, sosfilt

    bass = np.zeros(n)
    step = RATE // 100
    for a in range(0, n, step):  # a moving low-pass, 100 updates a second
        cutoff = 150 + 2500 * wobble[a]
        bass[a: a + step] = sosfilt(butter(2, cutoff, fs=RATE, output="sos"), saw[max(0, a - 2048): a + step])[-len(saw[a: a + step]):]
    riser = _bandpass(_noise(n, rng), 2000, 12000) * np.linspace(0, 0.3, n)
    return _norm(0.6 * bass / (np.abs(bass).max() or 1) + drums / (np.abs(drums).max() or 1) + riser)


# ---------------------------------------------------------------- not music


def whale_song(duration_s: float, seed: int = 0) -> AudioData:
    """Humpback-like: long moans (1-4 s) gliding between 80 and 800 Hz with few harmonics, grunts and
    pauses, over a bed of ocean noise (brown noise with slow swells)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    out = np.zeros(n)
    pos = float(rng.uniform(0, 1))
    while pos < duration_s:
        length = float(rng.uniform(1.0, 4.0))
        a, b = int(pos * RATE), min(n, int((pos + length) * RATE))
        t = np.arange(b - a) / RATE
        f_start, f_end = np.exp(rng.uniform(np.log(80), np.log(800), 2))
        freqs = f_start * (f_end / f_start) ** (t / length) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
        env = np.sin(np.pi * t / length) ** 0.7
        out[a:b] += _tone(freqs, 4, 1.2) * env
        pos += length + float(rng.uniform(0.5, 3.0))
    swell = 1 + 0.5 * np.sin(2 * np.pi * 0.1 * np.arange(n) / RATE)
    ocean = _noise(n, rng, 2.0) * swell
    return _norm(out / (np.abs(out).max() or 1) + 0.5 * ocean / (np.abs(ocean).max() or 1))


def purr(duration_s: float, seed: int = 0) -> AudioData:
    """A cat's purr: low-passed noise pulsed 25 times a second, in breaths of ~2 s (in and out)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    t = np.arange(n) / RATE
    pulses = np.clip(np.sin(2 * np.pi * 25 * t), 0, None) ** 3
    breath = 0.6 + 0.4 * np.sign(np.sin(2 * np.pi * t / rng.uniform(1.6, 2.4)))
    return _norm(_bandpass(_noise(n, rng, 1.0), 20, 600) * pulses * breath)


def barks(duration_s: float, seed: int = 0) -> AudioData:
    """Dog-like barks: 0.1-0.25 s bursts of voiced noise (a 300-600 Hz buzz through a formant), at irregular
    gaps of 0.2-2 s, over room noise."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    out = 0.02 * _noise(n, rng, 1.0)
    pos = float(rng.uniform(0, 0.5))
    while pos < duration_s:
        length = float(rng.uniform(0.1, 0.25))
        a, b = int(pos * RATE), min(n, int((pos + length) * RATE))
        t = np.arange(b - a) / RATE
        f = rng.uniform(300, 600) * (1 - 0.3 * t / length)
        buzz = np.sign(np.sin(2 * np.pi * np.cumsum(f) / RATE)) + 0.5 * rng.standard_normal(len(t))
        out[a:b] += _bandpass(buzz, 400, 2500) * np.exp(-t * 12)
        pos += length + float(rng.uniform(0.2, 2.0))
    return _norm(out)


def rain(duration_s: float, seed: int = 0) -> AudioData:
    """Rain on a roof: pink noise and a dense crackle of random drops (clicks of random pitch)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    drops = np.zeros(n)
    idx = rng.integers(0, n, int(duration_s * 300))
    drops[idx] = rng.uniform(-1, 1, len(idx))
    return _norm(_bandpass(drops, 1000, 12000) + 0.6 * _noise(n, rng, 1.0) / 50)


def wind(duration_s: float, seed: int = 0) -> AudioData:
    """Wind: noise through a resonant band-pass whose centre drifts slowly (gusts)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    base = _noise(n, rng, 1.0)
    out = np.zeros(n)
    step = RATE // 100  # the band moves 100 times a second along a smoothed random walk (no periodic seams)
    walk = np.exp(np.cumsum(rng.normal(0, 0.03, n // step + 1)))
    centres = np.clip(400.0 * np.convolve(walk, np.hanning(50) / np.hanning(50).sum(), "same"), 150, 1500)
    for i, a in enumerate(range(0, n, step)):
        seg = base[max(0, a - 4096): a + step]
        out[a: a + step] = _bandpass(seg, centres[i] * 0.8, centres[i] * 1.25)[-len(base[a: a + step]):]
    return _norm(out * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 0.07 * np.arange(n) / RATE))))


def crowd(speech: AudioData, voices: int = 6, seed: int = 0) -> AudioData:
    """Babble: `voices` copies of a speech recording, each shifted in time and pitch (resampled), summed."""
    import soxr

    rng = np.random.default_rng(seed)
    x = speech.samples.astype(np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    x = soxr.resample(x, speech.sample_rate, RATE)
    out = np.zeros(len(x))
    for _ in range(voices):
        ratio = float(rng.uniform(0.85, 1.2))
        y = soxr.resample(np.roll(x, int(rng.integers(len(x)))), RATE, int(RATE * ratio))
        y = np.resize(y, len(x))
        out += y
    return _norm(out)


MUSIC: dict[str, Callable[[float, int], AudioData]] = {
    "ambient pad": ambient_pad, "rubato flute": lambda d, s: rubato_melody(d, s, "flute"),
    "rubato strings": lambda d, s: rubato_melody(d, s, "strings"), "free plucks": free_plucks,
    "distorted band": distorted_band, "wobble bass": wobble_bass,
}
NOT_MUSIC: dict[str, Callable[[float, int], AudioData]] = {
    "whale song": whale_song, "purr": purr, "barks": barks, "rain": rain, "wind": wind,
    "white noise": lambda d, s: _norm(_noise(int(d * RATE), np.random.default_rng(s), 0.0)),
    "pink noise": lambda d, s: _norm(_noise(int(d * RATE), np.random.default_rng(s), 1.0)),
    "brown noise": lambda d, s: _norm(_noise(int(d * RATE), np.random.default_rng(s), 2.0)),
}
