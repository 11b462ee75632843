"""The documented vocabulary for genre, mood and instrument words, with synonyms.

Every genre/mood/instrument that reaches the dataset is one of the canonical
words below; free text from users and from yt-dlp (tags, categories, titles) is
mapped through the synonym tables, and anything unknown is dropped from these
fields (it may still be kept as a keyword). Matching is case-insensitive and
ignores punctuation, "-", "_" and spaces inside words ("hip-hop" = "Hip Hop" =
"hiphop").
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

# canonical genre -> synonyms (the canonical word matches itself)
GENRES: dict[str, list[str]] = {
    "ambient": ["ambient music", "chillout", "chill out", "downtempo", "new age"],
    "blues": ["delta blues", "rhythm and blues blues"],
    "classical": ["classic", "orchestral", "baroque", "romantic era", "symphony", "chamber music", "opera"],
    "country": ["americana", "bluegrass", "country music"],
    "disco": ["nu disco", "nu-disco"],
    "drum and bass": ["dnb", "d&b", "drum n bass", "drum'n'bass", "drumandbass", "jungle", "liquid dnb"],
    "dubstep": ["brostep", "riddim"],
    "electronic": ["electronica", "edm", "electro", "synthwave", "synth pop", "synthpop", "idm", "electronic music"],
    "folk": ["acoustic folk", "indie folk", "folk music", "singer-songwriter"],
    "funk": ["funky", "p-funk"],
    "hip hop": ["hip-hop", "hiphop", "rap", "boom bap", "trap", "lofi hip hop", "lo-fi hip hop"],
    "house": ["deep house", "tech house", "progressive house", "house music"],
    "jazz": ["swing", "bebop", "smooth jazz", "jazz fusion", "big band", "acid jazz", "nu jazz"],
    "latin": ["salsa", "bossa nova", "samba", "reggaeton", "tango", "latin music"],
    "lo-fi": ["lofi", "lo fi", "chillhop"],
    "metal": ["heavy metal", "death metal", "black metal", "metalcore", "thrash metal"],
    "pop": ["pop music", "k-pop", "kpop", "j-pop", "dance pop", "indie pop"],
    "punk": ["punk rock", "pop punk", "hardcore punk"],
    "ragtime": ["rag", "stride", "stride piano"],
    "reggae": ["dub", "ska", "dancehall"],
    "rnb": ["r&b", "r and b", "rhythm and blues", "soul", "neo soul", "neo-soul"],
    "rock": ["rock music", "indie rock", "alternative rock", "alt rock", "hard rock", "classic rock", "grunge", "alternative"],
    "soundtrack": ["film score", "score", "ost", "cinematic", "movie soundtrack", "game music", "video game music"],
    "techno": ["minimal techno", "detroit techno"],
    "trance": ["psytrance", "progressive trance", "uplifting trance"],
    "world": ["world music", "afrobeat", "afrobeats", "celtic", "flamenco"],
}

MOODS: dict[str, list[str]] = {
    "aggressive": ["angry", "fierce", "intense", "furious"],
    "calm": ["calming", "peaceful", "serene", "tranquil", "soothing", "meditative", "chill", "chilled"],
    "dark": ["ominous", "sinister", "gloomy", "brooding", "eerie", "spooky"],
    "dreamy": ["ethereal", "atmospheric", "floaty", "hazy"],
    "energetic": ["high energy", "powerful", "driving", "pumping", "hype"],
    "epic": ["heroic", "grand", "majestic", "triumphant"],
    "happy": ["cheerful", "joyful", "fun", "playful", "bright", "sunny", "feel good", "feel-good"],
    "melancholic": ["melancholy", "wistful", "bittersweet", "nostalgic", "longing"],
    "mellow": ["laid back", "laid-back", "smooth", "easygoing", "soft"],
    "relaxed": ["relaxing", "relax", "lounge", "easy listening", "study", "sleep"],
    "romantic": ["love", "sensual", "tender"],
    "sad": ["sorrowful", "mournful", "depressing", "heartbreak", "tragic"],
    "tense": ["suspense", "suspenseful", "anxious", "nervous", "thriller"],
    "upbeat": ["uplifting", "positive", "lively", "bouncy", "groovy"],
    "warm": ["cozy", "cosy", "warmth"],
}

INSTRUMENTS: dict[str, list[str]] = {
    "drums": ["drum", "drum kit", "drumkit", "percussion", "beat", "beats", "drum machine", "808"],
    "bass": ["bass guitar", "electric bass", "double bass", "upright bass", "sub bass", "bassline", "synth bass"],
    "guitar": ["guitars", "electric guitar", "acoustic guitar", "classical guitar"],
    "piano": ["pianos", "grand piano", "keys", "keyboard", "electric piano", "rhodes"],
    "synth": ["synths", "synthesizer", "synthesiser", "pad", "pads", "lead synth", "arpeggio"],
    "strings": ["string section", "orchestra strings", "violins", "cello", "viola", "violin"],
    "brass": ["trumpet", "trombone", "horns", "horn section", "tuba"],
    "saxophone": ["sax", "alto sax", "tenor sax"],
    "organ": ["hammond", "hammond organ", "church organ"],
    "flute": ["flutes", "recorder", "pan flute"],
    "harp": [],
    "harpsichord": ["cembalo"],
    "sitar": [],
    "ukulele": ["uke"],
    "banjo": [],
    "accordion": [],
    "vibraphone": ["vibes", "marimba", "xylophone"],
    "other": [],  # the Demucs "other" stem: melodic instruments it could not name
}


def _key(text: str) -> str:
    return re.sub(r"[\s\-_'’.]+", "", text.strip().lower())


def _index(table: dict[str, list[str]]) -> dict[str, str]:
    out = {}
    for canonical, synonyms in table.items():
        for word in [canonical, *synonyms]:
            out[_key(word)] = canonical
    return out


_GENRE_INDEX = _index(GENRES)
_MOOD_INDEX = _index(MOODS)
_INSTRUMENT_INDEX = _index(INSTRUMENTS)


def genre(word: Optional[str]) -> Optional[str]:
    """The canonical genre for a word or phrase, or None when it is not a genre."""
    return _GENRE_INDEX.get(_key(word)) if word else None


def mood(word: Optional[str]) -> Optional[str]:
    return _MOOD_INDEX.get(_key(word)) if word else None


def instrument(word: Optional[str]) -> Optional[str]:
    return _INSTRUMENT_INDEX.get(_key(word)) if word else None


def _split(words: Iterable[str]) -> list[str]:
    """Split free text on commas, slashes, semicolons, '#' and '|' (tags like 'jazz/funk')."""
    out = []
    for word in words:
        if not word:
            continue
        out.extend(p.strip() for p in re.split(r"[,;/|#]+", str(word)) if p.strip())
    return out


def _normalise(words: Iterable[str], lookup) -> list[str]:
    seen: list[str] = []
    for word in _split(words):
        canonical = lookup(word)
        if canonical and canonical not in seen:
            seen.append(canonical)
    return seen


def genres(words: Iterable[str]) -> list[str]:
    """Canonical genres found in free-text words, first-seen order, no duplicates."""
    return _normalise(words, genre)


def moods(words: Iterable[str]) -> list[str]:
    return _normalise(words, mood)


def instruments(words: Iterable[str]) -> list[str]:
    return _normalise(words, instrument)


# Words too ambiguous to read as genre/mood/instrument inside running text such
# as a title ("Love Story", "Beat It", "Sleep Now"); they still count as whole tags.
AMBIGUOUS_IN_TEXT = {
    "rag", "score", "classic", "dub", "trap", "alternative", "beat", "beats", "keys", "keyboard", "love", "fun",
    "bright", "soft", "study", "sleep", "grand", "pad", "pads", "vibes", "relax", "chill", "smooth", "rap", "soul",
    "swing", "stride", "ost", "clean", "drum", "love", "tender", "powerful", "driving", "hype", "intense", "positive",
    "recorder", "horns", "808", "uke", "rock", "metal", "house", "country", "world", "latin", "punk", "pop",
}


def find_in_text(text: Optional[str], table: str) -> list[str]:
    """Canonical words of `table` ("genre", "mood" or "instrument") that occur as
    whole words or phrases in free text such as a title ("Smooth Jazz Piano").
    Single words in ``AMBIGUOUS_IN_TEXT`` are ignored ("Rock Me" is no genre)."""
    if not text:
        return []
    index = {"genre": _GENRE_INDEX, "mood": _MOOD_INDEX, "instrument": _INSTRUMENT_INDEX}[table]
    tokens = re.findall(r"[a-z0-9&']+", text.lower())
    found: list[str] = []
    for size in (4, 3, 2, 1):  # longest phrases first
        for i in range(len(tokens) - size + 1):
            if size == 1 and tokens[i] in AMBIGUOUS_IN_TEXT:
                continue
            canonical = index.get(_key("".join(tokens[i : i + size])))
            if canonical and canonical not in found:
                found.append(canonical)
    return found
