"""Which instruments a chunk holds: from Demucs stems when there are some, from
audio cues otherwise; and how much vocal energy is left in an instrumental.

With stems: a stem's level is its energy relative to the mix it was separated
from, in dB (``10*log10(E_stem / E_mix)`` over the chunk, from the per-window
energies that separation measured: ``processing.separate.levels``). A stem is
*present* when that level is above ``stem_presence_db`` and its own RMS is above
``silence_db`` dBFS (so a whisper of bleed in a quiet passage does not count).

Without stems (separator ``none`` or ``offline``, whose "other" stem is
everything but vocals), only two instruments can be told from cues, and the
rules are deliberately conservative:
- drums: the percussive part (librosa HPSS below 5.5 kHz) carries >= 15 % of the
  energy AND its spectral flatness (0-5.5 kHz) is >= 0.02 (drums are noisy; piano
  attacks are percussive but tonal: flatness <= 0.012) AND the onsets are regular
  (``pulse`` >= 0.2: speech has noisy consonants but no pulse, 0.09 on the read-speech clip);
- bass: harmonic energy in 30-200 Hz is >= 20 % of all energy.
Measured on the real clips (30 s windows): drum-bass excerpt percussive 0.28 /
flatness 0.059 / low 0.51; Lets Go Fishin' (drums) 0.20-0.27 / 0.034-0.054; solo
ragtime piano 0.13-0.16 / 0.008-0.012 / 0.08; read speech 0.47 / 0.041, pulse 0.09.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..types import StemLevels
from .features import Features

# Stems that are instruments, in the order descriptions name them.
STEM_INSTRUMENTS = {"drums": "drums", "bass": "bass", "guitar": "guitar", "piano": "piano", "other": "other"}
VOCAL_STEM = "vocals"

DRUMS_MIN_PERCUSSIVE = 0.15
DRUMS_MIN_FLATNESS = 0.02
DRUMS_MIN_PULSE = 0.2
BASS_MIN_LOW_HARMONIC = 0.20


@dataclass
class InstrumentReport:
    instruments: list[str]  # present instruments (never "vocals")
    stem_db: dict[str, float] = field(default_factory=dict)  # stem -> dB relative to the mix
    source_vocals: Optional[bool] = None  # the source had vocals in this span (None: no vocal stem to tell)
    method: str = "stems"  # "stems" or "features"


def _db(ratio: float) -> float:
    return round(10 * math.log10(ratio), 2) if ratio > 1e-20 else -200.0


def from_levels(levels: StemLevels, start_s: float, end_s: float, presence_db: float,
                silence_db: float = -60.0) -> InstrumentReport:
    """Instrument presence over one span from the separation's per-window stem energies."""
    windows, samples = levels.windows(start_s, end_s)
    mix_energy = float(levels.mix[windows].sum())
    stem_db: dict[str, float] = {}
    present: list[str] = []
    vocals = False
    for name, energy_per_window in levels.stems.items():
        energy = float(energy_per_window[windows].sum())
        level = _db(energy / mix_energy) if mix_energy > 0 else -200.0
        stem_db[name] = level
        audible = level >= presence_db and _db(energy / max(1, samples)) >= silence_db
        if name == VOCAL_STEM:
            vocals = audible
        elif audible:
            present.append(STEM_INSTRUMENTS.get(name, name))
    order = list(STEM_INSTRUMENTS.values())
    present.sort(key=lambda n: order.index(n) if n in order else len(order))
    return InstrumentReport(present, stem_db, vocals, "stems")


def from_features(features: Features) -> InstrumentReport:
    """Drums and bass from audio cues (see module docstring); nothing else is claimed."""
    present = []
    if (features.percussive_ratio >= DRUMS_MIN_PERCUSSIVE and features.percussive_flatness >= DRUMS_MIN_FLATNESS
            and features.pulse >= DRUMS_MIN_PULSE):
        present.append("drums")
    if features.low_harmonic_ratio >= BASS_MIN_LOW_HARMONIC:
        present.append("bass")
    return InstrumentReport(present, {}, None, "features")


# a feature cue is kept beside a tagger only where the tagger cannot speak for itself
MODEL_INSTRUMENT_MIN = 0.15  # the model hears instruments (musicness.MODEL_NO_INSTRUMENT)
MODEL_DRUMS_CONFIRM = 0.1  # the model's drum score (tag_facts.DRUM_TAGS) that confirms the drums cue


def merge_instruments(
    report: InstrumentReport,
    heard: Optional[dict[str, float]],
    vocal_score: Optional[float] = None,
    instrument_score: Optional[float] = None,
    vocal_threshold: float = 0.15,
    drum_score: Optional[float] = None,
) -> tuple[list[str], list[str]]:
    """(instruments, where each came from: "stems", "model" or "features"), stems' order first.

    `heard`: the tagger's instruments above their thresholds (``tag_facts.chunk_facts``), None
    without a tagger. Rules, so that only what was heard is stated:
    - stems (method "stems") decide the instruments they can name (drums, bass, and guitar and
      piano when the separator has those stems); the model adds the instruments they cannot
      name (piano, guitar, strings, synth, flute, ...) only while the "other" stem, where such
      instruments end up, is present;
    - without stems (method "features"), the model's instruments are kept, and the feature cues
      (drums, bass) only where the model says this is instrumental music: it hears no voice
      (vocal score < `vocal_threshold`: a voice fakes both cues) and either hears an instrument
      (instrument score >= 0.15) or, for drums, its drum score (drums, beat, beats) is >= 0.1;
      bass also not beside a piano or harpsichord (whose left hand fills 30-200 Hz alone);
    - without a tagger, stems alone; feature cues are not facts and name nothing.
    """
    names: list[str] = []
    sources: list[str] = []

    def add(word: str, source: str) -> None:
        if word not in names:
            names.append(word)
            sources.append(source)

    if report.method == "stems":
        for word in report.instruments:
            add(word, "stems")
        stem_words = {STEM_INSTRUMENTS.get(n, n) for n in report.stem_db} - {"other"}
        if heard and "other" in report.instruments:
            for word in heard:
                if word not in stem_words:
                    add(word, "model")
        return names, sources
    if heard is None:
        return names, sources
    for word in heard:
        add(word, "model")
    no_voice = vocal_score is not None and vocal_score < vocal_threshold
    hears_instruments = instrument_score is not None and instrument_score >= MODEL_INSTRUMENT_MIN
    drums_heard = drum_score is not None and drum_score >= MODEL_DRUMS_CONFIRM
    if "drums" in report.instruments and no_voice and (hears_instruments or drums_heard):
        add("drums", "features")
    keyboard = bool({"piano", "harpsichord"} & set(heard))
    if "bass" in report.instruments and no_voice and hears_instruments and not keyboard:
        add("bass", "features")
    return names, sources


def residual_vocal_db(levels: StemLevels, start_s: float, end_s: float) -> Optional[float]:
    """Energy of the instrumental's component along the vocal stem over a span, in dB relative to the
    instrumental (``-200`` when none; None without a vocal stem).

    In each window (``levels.window``, 0.5 s) the instrumental is projected on the separated vocals
    (least-squares gain, clipped at >= 0): a clean instrumental is uncorrelated with the vocals
    (projection ~0), vocal bleed is not. Hand-written because no library measures bleed against a
    reference stem.
    """
    if levels.vocal_dot is None or VOCAL_STEM not in levels.stems:
        return None
    windows, _ = levels.windows(start_s, end_s)
    dot = levels.vocal_dot[windows]
    vocal = levels.stems[VOCAL_STEM][windows]
    usable = (vocal > 1e-12) & (dot > 0)
    projected = float(np.sum(np.square(dot[usable]) / vocal[usable]))
    total = float(levels.instrumental[windows].sum())
    return _db(projected / total) if total > 0 else -200.0
