"""From a tagger's scores to facts in our vocabulary: genres, moods, instruments, a vocal score
and how much music the model hears.

Scores are label -> 0..1. musicnn's labels carry their model as a prefix (``mtt:piano``,
``msd:jazz``: see ``processing.analyse.musicnn``) and are mapped by the tables below; labels of
other taggers are looked up in ``processing.vocabulary`` (genre and mood words only) with
``analyse.tagger_threshold``.

Thresholds (set on the scores musicnn gives the clips of ``../shared/audio`` and synthetic
signals, listed in the README; musicnn's sigmoid outputs are low for rare tags, so rare tags
get lower thresholds):

- genre: a song's genres are the genre words whose best tag score, averaged over the song's
  chunks, is >= ``GENRE_MIN`` (0.2) and >= ``GENRE_RELATIVE`` (0.5) x the best genre's score,
  best first, at most ``MAX_GENRES`` (3);
- mood: a song's moods are the mood words whose tag's song score is >= that tag's threshold
  in ``MOOD_TAGS`` (0.1 for MSD's mood tags and MTT's soft/quiet, 0.15 for the pace and
  loudness tags slow/fast/loud, which MagnaTagATune uses far more often);
- instrument: per chunk, an instrument word whose tag's chunk score is >= its threshold in
  ``INSTRUMENT_TAGS`` (0.3; drums 0.15, whose evidence is split over drums/beat/beats);
- vocal score: per chunk, the highest score of the voice tags in ``VOCAL_TAGS``; a chunk
  whose vocal score is >= ``analyse.vocal_threshold`` (0.15) holds singing or speech;
- instrument score: per chunk, the highest score of the instrument tags (no threshold): how
  sure the model is that it hears an instrument, one of the cues of ``musicness``;
- drum score: per chunk, the highest of drums, beat and beats; >= 0.1 is one way to confirm the
  drums cue of the spectral features (``instruments.merge_instruments``);
- genre score: per chunk, the highest score of the genre tags (``GENRE_TAGS``), one of the cues of
  ``musicness`` (only on a tonal spectrum: musicnn gives rain and a purr genre scores of 0.7).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import vocabulary

GENRE_MIN = 0.2
GENRE_RELATIVE = 0.5
MAX_GENRES = 3

# tag -> genre word (the tag's own word where the vocabulary knows it; None: not a genre fact)
GENRE_TAGS: dict[str, str] = {
    "mtt:classical": "classical", "mtt:classic": "classical", "mtt:opera": "classical", "mtt:choral": "classical",
    "mtt:techno": "techno", "mtt:electronic": "electronic", "mtt:rock": "rock", "mtt:ambient": "ambient",
    "mtt:new age": "ambient", "mtt:pop": "pop", "mtt:country": "country", "mtt:metal": "metal", "mtt:indian": "world",
    "msd:rock": "rock", "msd:pop": "pop", "msd:alternative": "rock", "msd:electronic": "electronic",
    "msd:alternative rock": "rock", "msd:jazz": "jazz", "msd:metal": "metal", "msd:chillout": "ambient",
    "msd:classic rock": "rock", "msd:soul": "rnb", "msd:indie rock": "rock", "msd:electronica": "electronic",
    "msd:folk": "folk", "msd:punk": "punk", "msd:blues": "blues", "msd:hard rock": "rock", "msd:ambient": "ambient",
    "msd:Hip-Hop": "hip hop", "msd:country": "country", "msd:funk": "funk", "msd:electro": "electronic",
    "msd:heavy metal": "metal", "msd:Progressive rock": "rock", "msd:rnb": "rnb", "msd:indie pop": "pop",
    "msd:House": "house",
}
# tag -> (mood word, threshold)
MOOD_TAGS: dict[str, tuple[str, float]] = {
    "mtt:slow": ("calm", 0.15), "mtt:fast": ("energetic", 0.15), "mtt:loud": ("energetic", 0.15),
    "mtt:soft": ("mellow", 0.1), "mtt:quiet": ("calm", 0.1),
    "msd:Mellow": ("mellow", 0.1), "msd:chill": ("relaxed", 0.1), "msd:easy listening": ("relaxed", 0.1),
    "msd:happy": ("happy", 0.1), "msd:sad": ("sad", 0.1), "msd:party": ("energetic", 0.1), "msd:sexy": ("romantic", 0.1),
}
# tag -> (instrument word, threshold)
INSTRUMENT_TAGS: dict[str, tuple[str, float]] = {
    "mtt:guitar": ("guitar", 0.3), "msd:guitar": ("guitar", 0.3), "mtt:piano": ("piano", 0.3),
    "mtt:drums": ("drums", 0.15), "mtt:strings": ("strings", 0.3), "mtt:violin": ("strings", 0.3),
    "mtt:cello": ("strings", 0.3), "mtt:synth": ("synth", 0.2), "mtt:harpsichord": ("harpsichord", 0.3),
    "mtt:flute": ("flute", 0.3), "mtt:harp": ("harp", 0.3), "mtt:sitar": ("sitar", 0.3),
}
# tags that say a voice (sung or spoken) is there
VOCAL_TAGS = (
    "mtt:vocal", "mtt:vocals", "mtt:singing", "mtt:female", "mtt:male", "mtt:woman", "mtt:man", "mtt:male vocal",
    "mtt:female vocal", "mtt:voice", "mtt:male voice", "mtt:female voice", "mtt:choir", "mtt:choral", "mtt:opera",
    "msd:female vocalists", "msd:male vocalists", "msd:female vocalist",
)
# evidence of an instrument being played (for musicness): the instrument tags and MTT's beat tags
MUSIC_TAGS = (*INSTRUMENT_TAGS, "mtt:beat", "mtt:beats")
DRUM_TAGS = ("mtt:drums", "mtt:beat", "mtt:beats")
_VOICE_WORDS = ("vocal", "voice", "singing", "singer", "speech", "choir")


@dataclass
class ChunkTagFacts:
    """What the model hears in one chunk."""

    instruments: dict[str, float] = field(default_factory=dict)  # word -> its best tag score, above thresholds
    vocal_score: float | None = None  # None: the tagger has no voice tags
    instrument_score: float | None = None  # None: the tagger has no instrument tags
    drum_score: float | None = None  # highest of the drums and beat tags (confirms the drums cue of the features)
    genre_score: float | None = None  # highest score of the genre tags (GENRE_TAGS): how sure the model is of a genre


def _is_musicnn(scores: dict[str, float]) -> bool:
    return any(label.startswith(("mtt:", "msd:")) for label in scores)


def chunk_facts(scores: dict[str, float]) -> ChunkTagFacts:
    """Instruments above their thresholds, the vocal score and the instrument score of one chunk."""
    if not scores:
        return ChunkTagFacts()
    if _is_musicnn(scores):
        instruments: dict[str, float] = {}
        for tag, (word, threshold) in INSTRUMENT_TAGS.items():
            score = scores.get(tag, 0.0)
            if score >= threshold and score > instruments.get(word, 0.0):
                instruments[word] = round(score, 4)
        vocal = max(scores.get(t, 0.0) for t in VOCAL_TAGS)
        music = max(scores.get(t, 0.0) for t in MUSIC_TAGS)
        ranked = dict(sorted(instruments.items(), key=lambda kv: -kv[1]))
        drums = max(scores.get(t, 0.0) for t in DRUM_TAGS)
        genre = max(scores.get(t, 0.0) for t in GENRE_TAGS)
        return ChunkTagFacts(ranked, round(vocal, 4), round(music, 4), round(drums, 4), round(genre, 4))
    # another tagger: its instrument words (vocabulary) and voice-like labels, no thresholds known
    voice = [s for label, s in scores.items() if any(w in label.lower() for w in _VOICE_WORDS)]
    return ChunkTagFacts({}, round(max(voice), 4) if voice else None, None)


def song_genres_moods(scores: dict[str, float], threshold: float) -> tuple[list[str], list[str]]:
    """(genres, moods) of a song from its averaged scores, best first (rules in the module docstring).

    `threshold` (``analyse.tagger_threshold``) applies to taggers other than musicnn."""
    if not scores:
        return [], []
    if not _is_musicnn(scores):
        return labels_to_vocabulary(scores, threshold)
    best: dict[str, float] = {}
    for tag, word in GENRE_TAGS.items():
        best[word] = max(best.get(word, 0.0), scores.get(tag, 0.0))
    top = max(best.values(), default=0.0)
    genres = [w for w, s in sorted(best.items(), key=lambda kv: -kv[1]) if s >= GENRE_MIN and s >= GENRE_RELATIVE * top]
    moods: dict[str, float] = {}
    for tag, (word, mood_threshold) in MOOD_TAGS.items():
        score = scores.get(tag, 0.0)
        if score >= mood_threshold:
            moods[word] = max(moods.get(word, 0.0), score / mood_threshold)  # ranked by how far above its threshold
    return genres[:MAX_GENRES], [w for w, _ in sorted(moods.items(), key=lambda kv: -kv[1])]


def labels_to_vocabulary(scores: dict[str, float], threshold: float) -> tuple[list[str], list[str]]:
    """(genres, moods) in the vocabulary whose best label score is >= threshold, best first."""
    best: dict[tuple[str, str], float] = {}
    for label, score in scores.items():
        if score < threshold:
            continue
        for table, lookup in (("genre", vocabulary.genre), ("mood", vocabulary.mood)):
            word = lookup(label)
            if word:
                best[(table, word)] = max(best.get((table, word), 0.0), score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    return [w for (t, w), _ in ranked if t == "genre"], [w for (t, w), _ in ranked if t == "mood"]
