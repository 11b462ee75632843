"""Which model or algorithm gave each label of a build, and under which licence: the dataset card, the
README and ``build_info.json`` name them, so the licence travels with the data.

The default tempo comes from madmom's trained beat models, licensed CC BY-NC-SA 4.0 (non-commercial,
share-alike); MusicGen's own pretrained weights are CC-BY-NC 4.0, so people who fine-tune them already
work under non-commercial terms. ``analyse.tempo=essentia`` gives tempo without any model licence.
"""
from __future__ import annotations

from typing import Any

from .beat_network import LICENCE as BEAT_MODEL_LICENCE

TEMPO = {
    "rnn": {"labels": "tempo, beats", "model": "madmom's offline beat network (8 BLSTMs, beats/2015; Böck, Krebs & Widmer, "
            "ISMIR 2015) + comb-filter tempo, run in PyTorch by Music Mixer",
            "licence": f"models {BEAT_MODEL_LICENCE}; madmom's code BSD-2-Clause"},
    "essentia": {"labels": "tempo, beats", "model": "essentia RhythmExtractor2013 (multifeature)",
                 "licence": "essentia AGPL-3.0 (no model weights)"},
}
TAGGERS = {
    "musicnn": {"labels": "genre, mood, instruments, vocal score, music or not",
                "model": "musicnn MTT_musicnn + MSD_musicnn (Pons & Serra), run in PyTorch by Music Mixer",
                "licence": "ISC (code and weights)"},
}
KEY = {"labels": "key, scale, loudness, danceability", "model": "essentia KeyExtractor (shaath), pyloudnorm, essentia",
       "licence": "essentia AGPL-3.0; pyloudnorm MIT"}


def label_models(analyse: dict[str, Any]) -> list[dict[str, str]]:
    """The models behind a build's labels, from its ``analyse`` config (as written in config.json)."""
    if not analyse.get("enabled", True):
        return []
    out = [TEMPO.get(analyse.get("tempo") or "rnn", TEMPO["rnn"]), KEY]
    tagger = analyse.get("tagger")
    if tagger and tagger != "none":
        out.append(TAGGERS.get(tagger, {"labels": "genre, mood, instruments", "model": str(tagger),
                                        "licence": "see the tagger's own licence"}))
    return out
