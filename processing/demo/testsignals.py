"""Test signals with exact ground truth for the analyse stage: click tracks and
cadential chord progressions in a known key.

Hand-written (no library makes these): ``processing.demo.synth.synth_song``'s minor loop
(i-VI-III-VII) shares every chord with its relative major, so any key detector may
fairly call it the relative major; the progressions here use the harmonic-minor
dominant (V with the leading tone) so that major and minor are unambiguous.
"""
from __future__ import annotations

import numpy as np

from .synth import NOTE_NAMES
from ..types import AudioData

FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
_MAJOR = [0, 2, 4, 5, 7, 9, 11]
_HARMONIC_MINOR = [0, 2, 3, 5, 7, 8, 11]


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def click_track(bpm: float, duration_s: float = 20.0, sample_rate: int = 44100, accent: bool = True) -> AudioData:
    """Decaying 1 kHz clicks (120 ms) on every beat (the first of each bar louder)."""
    n = int(round(duration_s * sample_rate))
    out = np.zeros(n, np.float32)
    click_len = int(0.12 * sample_rate)
    t = np.arange(click_len) / sample_rate
    click = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 40)).astype(np.float32)
    beat = 60.0 / bpm
    b = 0
    while True:
        pos = int(round(b * beat * sample_rate))
        if pos >= n:
            break
        gain = 0.9 if (accent and b % 4 == 0) else 0.5
        end = min(n, pos + click_len)
        out[pos:end] += gain * click[: end - pos]
        b += 1
    return AudioData(out, sample_rate)


def chord_progression(
    key: str = "A",
    scale: str = "minor",
    bpm: float = 100.0,
    duration_s: float = 20.0,
    sample_rate: int = 44100,
    with_bass: bool = True,
) -> AudioData:
    """A cadential loop i-iv-V-i (minor, harmonic-minor V) or I-IV-V-I (major) of
    sustained organ-like triads (a few harmonics), one chord per bar of 4 beats,
    with the chord root in the bass."""
    key = FLATS.get(key, key)
    if key not in NOTE_NAMES:
        raise ValueError(f"key {key!r}: expected one of {', '.join(NOTE_NAMES)}")
    if scale not in ("major", "minor"):
        raise ValueError(f"scale {scale!r}: expected major or minor")
    sr = sample_rate
    steps = _HARMONIC_MINOR if scale == "minor" else _MAJOR
    tonic = 48 + NOTE_NAMES.index(key)
    degrees = [0, 3, 4, 0]
    n = int(round(duration_s * sr))
    out = np.zeros(n, np.float64)
    bar_len = int(round(4 * 60.0 / bpm * sr))
    t = np.arange(bar_len) / sr
    env = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (bar_len / sr - t) / 0.05)
    bar = 0
    while bar * bar_len < n:
        degree = degrees[bar % 4]
        notes = [tonic + steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        sig = np.zeros(bar_len)
        for m in notes:
            f = _hz(m + 12)
            sig += sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))
        if with_bass:
            f = _hz(notes[0] - 12)
            sig += 1.2 * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t))
        start = bar * bar_len
        end = min(n, start + bar_len)
        out[start:end] += (sig * env)[: end - start]
        bar += 1
    out *= 0.8 / (np.abs(out).max() or 1.0)
    return AudioData(out.astype(np.float32), sr)
