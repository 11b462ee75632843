"""Synthetic songs with known ground truth (tempo, key, stems, duration).

Used by the offline demo (no network, nothing downloaded) and by tests that
need audio whose true BPM, key and instrumentation are known. Hand-written:
no library synthesises multi-stem test songs with exact tempo and key.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import AudioData

NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_MAJOR = [0, 2, 4, 5, 7, 9, 11]
_MINOR = [0, 2, 3, 5, 7, 8, 10]


@dataclass
class SynthSong:
    mix: AudioData
    stems: dict[str, AudioData]  # drums, bass, other, vocals (when sung)
    bpm: float
    key: str
    scale: str


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _add(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    end = min(len(buf), start + len(sig))
    if start < end:
        buf[start:end] += sig[: end - start]


def synth_song(
    bpm: float = 120.0,
    key: str = "A",
    scale: str = "minor",
    duration_s: float = 40.0,
    sample_rate: int = 44100,
    vocals: bool = True,
    drums: bool = True,
    bass: bool = True,
    chords: bool = True,
    stereo: bool = True,
    seed: int = 0,
    through_composed: bool = False,
) -> SynthSong:
    """A four-bar loop (i-VI-III-VII in minor, I-V-vi-IV in major) at an exact tempo.

    ``through_composed``: the sung melody never repeats (notes drawn from the chord per beat),
    as in a real song, where the accompaniment loops and the voice does not.
    """
    rng = np.random.default_rng(seed)
    sr = sample_rate
    n = int(round(duration_s * sr))
    beat = 60.0 / bpm
    tonic = 48 + NOTE_NAMES.index(key)  # C3..B3
    steps = _MINOR if scale == "minor" else _MAJOR
    degrees = [0, 5, 2, 6] if scale == "minor" else [0, 4, 5, 3]
    out = {name: np.zeros(n, np.float32) for name in ("drums", "bass", "other", "vocals")}

    n_beats = int(duration_s / beat) + 1
    kick_len, snare_len, hat_len = int(0.25 * sr), int(0.2 * sr), int(0.05 * sr)
    tk = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-tk * 30)) * tk) * np.exp(-tk * 12)
    snare = rng.standard_normal(snare_len) * _env(snare_len, sr, 0.001, 0.05) * 0.5
    hat = np.diff(rng.standard_normal(hat_len + 1)) * _env(hat_len, sr, 0.0005, 0.012) * 0.25
    for b in range(n_beats):
        pos = int(round(b * beat * sr))
        if drums:
            _add(out["drums"], pos, kick * 0.9)
            if b % 2 == 1:
                _add(out["drums"], pos, snare)
            _add(out["drums"], pos, hat)
            _add(out["drums"], pos + int(round(beat * sr / 2)), hat)
    for bar in range(n_beats // 4 + 1):
        degree = degrees[bar % 4]
        root = tonic + steps[degree]
        triad = [root + steps[(degree + k) % 7] - steps[degree] + (12 if (degree + k) >= 7 else 0) for k in (0, 2, 4)]
        start = int(round(bar * 4 * beat * sr))
        bar_len = int(round(4 * beat * sr))
        t = np.arange(bar_len) / sr
        if chords:
            pad = sum(np.sin(2 * np.pi * _midi_hz(m + 12) * t) + 0.3 * np.sin(4 * np.pi * _midi_hz(m + 12) * t) for m in triad)
            _add(out["other"], start, (pad * _env(bar_len, sr, 0.05, 3.0) * 0.12).astype(np.float32))
        if bass:
            for b in range(4):
                bl = int(round(beat * sr))
                tb = np.arange(bl) / sr
                f = _midi_hz(root - 12)
                note = (np.sin(2 * np.pi * f * tb) + 0.4 * np.sin(4 * np.pi * f * tb)) * _env(bl, sr, 0.005, 0.4) * 0.35
                _add(out["bass"], start + b * bl, note.astype(np.float32))
        if vocals:
            for b in range(4):
                bl = int(round(beat * sr))
                tb = np.arange(bl) / sr
                offset = int(rng.integers(0, 7)) if through_composed else [0, 2, 4, 2][b]
                m = tonic + 12 + steps[(degree + offset) % 7]
                f = _midi_hz(m) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * tb))  # vibrato
                phase = 2 * np.pi * np.cumsum(f) / sr
                voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * _env(bl, sr, 0.03, 0.6) * 0.18
                _add(out["vocals"], start + b * bl, voice.astype(np.float32))

    channels = 2 if stereo else 1
    pans = {"drums": (1.0, 1.0), "bass": (1.0, 1.0), "other": (0.8, 1.0), "vocals": (1.0, 1.0)}
    stems = {}
    for name, mono in out.items():
        if name == "vocals" and not vocals:
            continue
        data = np.stack([mono * pans[name][c] for c in range(channels)]).astype(np.float32)
        stems[name] = AudioData(data, sr)
    mix = sum(s.samples for s in stems.values())
    peak = float(np.abs(mix).max()) or 1.0
    scale_to = 0.8 / peak
    for s in stems.values():
        s.samples *= scale_to
    return SynthSong(AudioData(mix * scale_to, sr), stems, bpm, key, scale)
