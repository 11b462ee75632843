""""Is this music?": flags from measured features and from what the tagger hears, with
documented thresholds. No single weak cue excludes a chunk: music without a steady beat
(rubato piano, a solo instrument, ambient pads, folk) is kept; speech, animal sounds, noise
and silence are rejected.

Flags (a chunk with any flag is excluded when ``analyse.exclude_flagged``):
- ``silence``: >= 90 % of 50 ms frames below the silence threshold, or integrated
  loudness <= -60 LUFS. Enough on its own.
- ``non_music``: the cues below agree that this is not music (rule further down); the
  cues that fired are listed beside it.
- ``vocals_heard`` / ``residual_vocals``: see ``analyse.py`` (not musicness).

Cues:
- ``speech_like`` (features): rhythmic regularity (``Features.pulse``, the peak of the
  onset-envelope autocorrelation at 50-200 BPM lags) below 0.2 AND at least 25 % of frames
  quieter than half the mean level (``low_energy_ratio``: pauses between words). Read speech
  (LibriSpeech clip): pulse 0.09, low-energy 0.37; 10 s windows of the real music clips:
  pulse >= 0.24.
- ``no_low_range`` (features): under 10 % of the energy below 1 kHz (bird song, whistles,
  hiss). Bird clip 0.00; the music clips well above 0.4.
- ``noise_like`` (``noise_flatness``): the spectrum, divided by its own smoothed envelope
  (15 bins of 15.6 Hz), is as flat as noise's in most frames: the median over loud frames of
  that whitened spectrum's flatness (geometric / arithmetic mean, 100 Hz-5 kHz, 16 kHz audio)
  is >= ``MIN_NOISE_FLATNESS`` (0.55). Any Gaussian noise, white or coloured, gives ~0.56-0.60;
  partials and harmonics make music's lower: ragtime piano 0.17, sung folk 0.26, jazz 0.35,
  the drums-and-bass excerpt (noisy drums) 0.50; speech 0.35, bird 0.43.
- ``no_beat`` (features, weak): essentia's beat confidence below 1.0 ("very low"). Free-tempo
  music and every clip under ~5 s have none, so it never counts alone.
- ``no_instrument_heard`` (model, weak): the tagger's instrument score (the highest score of
  its instrument and beat tags, ``tag_facts.MUSIC_TAGS``) is below ``MODEL_NO_INSTRUMENT``
  (0.15). Speech 0.07, bird 0.08, noise <= 0.09; 30 s of the real music clips >= 0.2
  (ragtime piano 0.88, drum-and-bass 0.66, sung folk 0.44, jazz 0.2-0.4), but a 4 s jazz
  excerpt scored 0.149 and synthetic chords 0.11-0.13: the model alone proves nothing.

- ``voice_only`` (model, strong): the model hears a voice (vocal score >= ``VOICE_ONLY_MIN``,
  0.1) and no instrument (``no_instrument_heard``). The last 3.9 s of the speech clip:
  vocal 0.11, instrument 0.09, and no feature cue (too short for pauses to show).

Rule:
- with a tagger: ``non_music`` needs a strong cue (``speech_like``, ``no_low_range``,
  ``noise_like``, ``voice_only``) and a second cue of any kind (``voice_only`` comes with
  ``no_instrument_heard``: two observations of the model); and when the model hears an instrument
  (instrument score >= ``MODEL_HEARS_MUSIC``, 0.2) the feature cues are overruled (a solo
  flute has no low range and no beat; rubato piano has the pauses of speech: both are music);
- without a tagger (``analyse.tagger=none``): one strong feature cue; ``no_beat`` alone never.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .features import Features, has_beat

SILENT_FRAMES = 0.9
SILENT_LUFS = -60.0
MIN_PULSE = 0.2
MIN_SPEECH_PAUSES = 0.25
MIN_BELOW_1K = 0.1
MIN_BEAT_CONFIDENCE = 1.0  # essentia's scale; the beat network's is beats.BEAT_FOUND (features.has_beat)
MIN_NOISE_FLATNESS = 0.55
NOISY_FLATNESS = 0.4
MODEL_NO_INSTRUMENT = 0.15
MODEL_SURE_NO_INSTRUMENT = 0.1
MODEL_HEARS_MUSIC = 0.2
VOICE_ONLY_MIN = 0.1
GENRE_SURE = 0.5
STRONG_CUES = ("speech_like", "no_low_range", "noise_like", "voice_only")
NOISE_RATE = 16000


def noise_flatness(mono16k: np.ndarray) -> float:
    """Median flatness of the whitened spectrum over loud frames (see ``noise_like``); 0 for silence.

    Hand-written: librosa's spectral_flatness measures whiteness (low for pink or brown noise),
    not the absence of partials, which is what tells noise from music."""
    import librosa
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(mono16k, dtype=np.float32)
    if len(x) < 1024:
        x = np.pad(x, (0, 1024 - len(x)))
    power = np.abs(librosa.stft(x, n_fft=1024, hop_length=512)) ** 2
    freqs = librosa.fft_frequencies(sr=NOISE_RATE, n_fft=1024)
    band = (freqs >= 100) & (freqs <= 5000)
    energy = power[band].sum(axis=0)
    loud = energy > 1e-3 * energy.max() if energy.max() > 1e-10 else np.zeros_like(energy, bool)
    if not loud.any():
        return 0.0
    white = power / (uniform_filter1d(power, size=15, axis=0) + 1e-12)
    white = white[band][:, loud] + 1e-12
    flatness = np.exp(np.mean(np.log(white), axis=0)) / np.mean(white, axis=0)
    return float(np.median(flatness))


def feature_cues(features: Features, flatness: Optional[float] = None) -> list[str]:
    """The audio cues that fired (see the module docstring)."""
    cues = []
    if features.pulse < MIN_PULSE and features.low_energy_ratio >= MIN_SPEECH_PAUSES:
        cues.append("speech_like")
    if features.below_1k_ratio < MIN_BELOW_1K:
        cues.append("no_low_range")
    if flatness is not None and flatness >= MIN_NOISE_FLATNESS:
        cues.append("noise_like")
    elif flatness is not None and flatness >= NOISY_FLATNESS:
        cues.append("noisy")
    if not has_beat(features):
        cues.append("no_beat")
    return cues


def is_silent(features: Features) -> bool:
    return features.silence_ratio >= SILENT_FRAMES or features.loudness_lufs <= SILENT_LUFS


def music_flags(features: Features, instrument_score: Optional[float] = None, flatness: Optional[float] = None,
                vocal_score: Optional[float] = None, genre_score: Optional[float] = None) -> list[str]:
    """Flags for one piece of audio (empty: music): the rule of the module docstring, step by step.

    `instrument_score`, `vocal_score`, `genre_score`: the tagger's (None: no tagger); `flatness`:
    ``noise_flatness`` of the audio (None: not measured)."""
    if is_silent(features):
        return ["silence"]
    cues = feature_cues(features, flatness)
    if "no_beat" not in cues:  # 1. a beat the network hears is music, noisy or not (dubstep, distorted rock)
        return []
    not_music = ["non_music", *cues]
    if "noise_like" in cues:  # 2. a noise-like spectrum without a beat: no tagger score overrules it
        return not_music
    if instrument_score is None:  # no tagger: one strong feature cue decides
        return not_music if any(c in STRONG_CUES or c == "noisy" for c in cues) else []
    heard = instrument_score >= MODEL_HEARS_MUSIC
    tonal_genre = (genre_score or 0.0) >= GENRE_SURE and (flatness is None or flatness < NOISY_FLATNESS)
    if instrument_score < MODEL_NO_INSTRUMENT:
        cues.append("no_instrument_heard")
        not_music.append("no_instrument_heard")
        if vocal_score is not None and vocal_score >= VOICE_ONLY_MIN:
            cues.append("voice_only")
            not_music.append("voice_only")
    if "noisy" in cues and not heard:  # 3. noisy, no beat, and the model hears no instrument
        return not_music
    if tonal_genre or heard:  # 4. a tonal sound the model is sure is a genre of music, or an instrument heard
        return []
    if instrument_score < MODEL_SURE_NO_INSTRUMENT:  # 5. the two weak cues agree strongly
        return not_music
    strong = [c for c in cues if c in STRONG_CUES]  # 6. a strong cue and a second cue
    return not_music if strong and len(cues) >= 2 else []
