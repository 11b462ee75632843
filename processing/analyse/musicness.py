""""Is this music?": flags from measured features and from what the tagger hears, weighing all the
evidence rather than one score against one threshold. Music without a steady beat (rubato piano, a
solo instrument, ambient pads, free-tempo folk) and noisy music (distorted rock, dubstep) are kept;
speech, animal sounds (whale song, purring, barking), weather and noise beds and silence are rejected.

Flags (a chunk with any flag is excluded when ``analyse.exclude_flagged``):
- ``silence``: >= 90 % of 50 ms frames below the silence threshold, or integrated
  loudness <= -60 LUFS. Enough on its own.
- ``non_music``: the rule below said so; the cues that fired are listed beside it.
- ``vocals_heard`` / ``residual_vocals``: see ``analyse.py`` (not musicness).

Evidence of music:
- a beat: the beat network hears one (``features.has_beat``: with ``analyse.tempo=rnn`` its mean
  activation on the tracked beats >= ``beats.BEAT_FOUND``, 0.2; with essentia, beat confidence >= 1);
- an instrument heard: the tagger's instrument score (its instrument and beat tags,
  ``tag_facts.MUSIC_TAGS``) >= ``MODEL_HEARS_MUSIC`` (0.2);
- a genre the tagger is sure of, on a tonal spectrum: its best genre score >= ``GENRE_SURE`` (0.5)
  and ``noise_flatness`` < ``NOISY_FLATNESS`` (musicnn gives rain and purring genre scores of 0.7:
  on a noisy spectrum a genre score proves nothing).
Cues against it:
- ``speech_like`` (features, strong): rhythmic regularity (``Features.pulse``) below 0.2 AND at
  least 25 % of frames quieter than half the mean level (pauses between words);
- ``no_low_range`` (features, strong): under 10 % of the energy below 1 kHz (birds, whistles, hiss);
- ``noise_like`` (strong) / ``noisy`` (``noise_flatness``, the median flatness of the spectrum divided
  by its own smoothed envelope): >= ``MIN_NOISE_FLATNESS`` (0.55) is as flat as noise; >=
  ``NOISY_FLATNESS`` (0.4) is noisier than any music without a beat we measured;
- ``voice_only`` (model, strong): vocal score >= ``VOICE_ONLY_MIN`` (0.1) and instrument score
  < ``MODEL_NO_INSTRUMENT`` (0.15);
- ``no_beat`` and ``no_instrument_heard`` (instrument score < 0.15): weak, never enough alone.

Rule, in order:
1. a beat: music (noisy electronic and distorted music have one; a beat overrules every cue);
2. no beat and ``noise_like``: not music, whatever the tagger says (its drums tag fires on purring);
3. (no tagger: one strong cue or ``noisy`` decides; else music;)
4. no beat, ``noisy`` and no instrument heard: not music (real whale song under ocean noise,
   purring, barking);
5. an instrument heard, or a sure genre on a tonal spectrum: music;
6. no beat and an instrument score < ``MODEL_SURE_NO_INSTRUMENT`` (0.1): the two weak cues agree
   strongly: not music (whale song);
7. else a strong cue and a second cue: not music; else music.

What the thresholds were checked on (``benchmarks/bench_musicness.py`` prints every cue of every
sound and these ranges): the real clips of ``../shared/audio`` as 10 and 20 s excerpts at three
offsets; copies resampled by 0.85 and 1.15, pitch-shifted by -3 and +3 semitones, time-stretched by
0.8 and 1.25, mixed with pink noise at 20 and 10 dB SNR and with whale-like moans; and the synthetic
classes of ``processing.demo.soundscapes`` (10 and 20 s, two seeds each). Ranges seen:
- beat (rnn): music with a beat 0.13-0.60 (only a 10 s outro of Vibe Ace under 0.17), noisy synthetic
  music 0.24-0.37; everything without a beat 0.02-0.15 (speech up to 0.15, barks up to 0.15).
  ``BEAT_FOUND`` 0.2 keeps a margin of 0.05 above the highest non-music and 0.04 below the lowest
  noisy music.
- flatness: music without a beat 0.00-0.25 (pads, rubato melodies, plucked arpeggios); non-music
  without a beat 0.45-0.72 (purr, barks, rain, wind, noise; a real whale recording 0.48-0.54); speech
  0.27-0.37 and birds 0.37-0.45 (both caught by their own cues). ``NOISY_FLATNESS`` 0.4 sits 0.15 above
  the beatless music and 0.05 below the beatless noises; music with a beat reaches 0.58 (it never gets
  here). ``MIN_NOISE_FLATNESS`` 0.55: Gaussian noise 0.58-0.60, rain 0.60, wind 0.63-0.72.
- instrument score: speech 0.04-0.09, whale-like moans 0.07-0.10, birds 0.07-0.12, purr 0.11-0.13;
  music without a beat 0.12 (pads) to 1.0 (flute). ``MODEL_SURE_NO_INSTRUMENT`` 0.1 is 0.02 under the
  pads, which is why step 5 comes first: pads score a genre of 0.57-0.69 on a tonal spectrum.
- genre score: speech 0.20-0.46, birds 0.12-0.38, whale-like moans 0.14-0.31; pads 0.57-0.69, rubato
  strings 0.66-0.70. ``GENRE_SURE`` 0.5 keeps 0.04 above speech and 0.07 below the pads.
The one miss in that set: Vibe Ace under pink noise at 10 dB SNR (flatness 0.55, beat 0.17) is
rejected; music that is drowned in noise and whose beat the network barely hears is not kept.
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
