""""Is this music?": flags from measured features, with documented thresholds.

Flags (a chunk with any flag is excluded when ``analyse.exclude_flagged``):
- ``silence``: >= 90 % of 50 ms frames below the silence threshold, or
  integrated loudness <= -60 LUFS.
- ``non_music``: any of the three cues below fired.
- ``speech_like``: rhythmic regularity (``Features.pulse``, the peak of the
  onset-envelope autocorrelation at 50-200 BPM lags) below 0.2 AND at least
  25 % of frames quieter than half the mean level (``low_energy_ratio``:
  speech pauses between words). Read speech (LibriSpeech clip): pulse 0.09,
  low-energy 0.37; every 10 s window of the real music clips: pulse >= 0.24;
  click tracks and synthetic songs: pulse >= 0.7; sustained chord
  progressions: pulse ~0 but low-energy ~0.01 (music without onsets is kept).
- ``no_low_range``: under 10 % of the energy below 1 kHz (bird song, whistles,
  hiss). Bird clip: 0.00; the music clips: well above 0.5.
- ``no_beat``: essentia's beat confidence below 1.0 ("very low" in its docs;
  bird clip 0.0, music clips 2.2-4.2).
- ``residual_vocals``: the instrumental still holds vocal energy above
  ``residual_vocal_db`` (see ``instruments.residual_vocal_db``).
Known weak: free-tempo ambient or rubato music without onsets may be flagged
``no_beat``/``speech_like``; a trained speech/music model would do better.
"""
from __future__ import annotations

from .features import Features

SILENT_FRAMES = 0.9
SILENT_LUFS = -60.0
MIN_PULSE = 0.2
MIN_SPEECH_PAUSES = 0.25
MIN_BELOW_1K = 0.1
MIN_BEAT_CONFIDENCE = 1.0


def music_flags(features: Features) -> list[str]:
    """Flags for one piece of audio (empty: looks like music)."""
    if features.silence_ratio >= SILENT_FRAMES or features.loudness_lufs <= SILENT_LUFS:
        return ["silence"]
    reasons = []
    if features.pulse < MIN_PULSE and features.low_energy_ratio >= MIN_SPEECH_PAUSES:
        reasons.append("speech_like")
    if features.below_1k_ratio < MIN_BELOW_1K:
        reasons.append("no_low_range")
    if features.bpm_confidence < MIN_BEAT_CONFIDENCE:
        reasons.append("no_beat")
    return ["non_music", *reasons] if reasons else []
