"""Mood words derived from measured features when no source or tagger gives any.

Documented rules (each yields a word of ``vocabulary.MOODS``; results are marked
``derived`` wherever they are stored, so nobody mistakes them for labels):
1. mode and tempo (only with a steady beat, ``features.steady_beat``, and a key):
   major & >= 110 BPM -> "upbeat"; major & < 110 -> "warm";
   minor & >= 110 -> "tense"; minor & < 110 -> "melancholic";
2. tempo alone: >= 130 BPM -> "energetic"; < 85 BPM -> "calm";
3. loudness: >= -10 LUFS -> "energetic" (unless rule 2 said "calm");
   <= -24 LUFS -> "mellow" (unless "energetic" already: a quiet master of a fast track);
4. brightness (mean spectral centroid): < 900 Hz -> "warm"; > 3000 Hz with a
   major key -> "happy".
At most ``limit`` words, in rule order, without repeats.
"""
from __future__ import annotations

from .features import Features, steady_beat


def derive_moods(f: Features, limit: int = 3) -> list[str]:
    words: list[str] = []
    steady = steady_beat(f)
    if steady and f.scale in ("major", "minor"):
        fast = f.bpm >= 110
        words.append({("major", True): "upbeat", ("major", False): "warm", ("minor", True): "tense", ("minor", False): "melancholic"}[(f.scale, fast)])
    if steady and f.bpm >= 130:
        words.append("energetic")
    elif steady and f.bpm < 85:
        words.append("calm")
    if f.loudness_lufs >= -10 and "calm" not in words:
        words.append("energetic")
    elif f.loudness_lufs <= -24 and "energetic" not in words:
        words.append("mellow")
    if 0 < f.brightness_hz < 900:
        words.append("warm")
    elif f.brightness_hz > 3000 and f.scale == "major":
        words.append("happy")
    out: list[str] = []
    for w in words:
        if w not in out:
            out.append(w)
    return out[:limit]
