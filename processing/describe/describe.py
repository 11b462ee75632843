"""Describe: clean metadata and a MusicGen-style text description per chunk.

Each chunk gets audiocraft's ``MusicInfo`` fields (title, artist, key, bpm,
genre, moods, keywords, description, name, instrument) plus ``artists``,
``featured_artists``, ``genres`` and ``derived_moods``.

The description only states facts that are in the same row: the genre (only
when the user, the tagger above its thresholds or the site gave one), mood words
(``derived_moods`` says when they come from feature rules), the instruments that
were heard (a stem measure or the tagger: ``instrument_source`` says which) or
that the user or site named, the key and the tempo (only when a beat was found:
``features.has_beat``). It never names vocals, and it calls the chunk "instrumental" only when
no vocal residue was flagged and the tagger hears no voice in it (``vocals_heard``). Wording varies between chunks (several templates, clause orders and
verbs) but is deterministic: ``random.Random(f"{cfg.seed}:{chunk_id}")``.

A chunk judged not music (``non_music`` or ``silence`` on the chunk or its song; such chunks are
excluded by default) is never called an instrumental of any genre: its description says what was
measured ("Not music: ...", the cues that fired) and its genre fields are empty.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Optional

from ..analyse.analyse import NOT_MUSIC_FLAGS, ChunkAnalysis, SongAnalysis
from ..analyse.features import has_beat
from ..config import DescribeConfig
from .titles import Credits, clean_credits, is_noise
from ..types import Chunk, Song

DISPLAY = {"rnb": "R&B", "hip hop": "hip-hop", "drum and bass": "drum and bass"}


def display(word: str) -> str:
    """How a vocabulary word is written in a description."""
    return DISPLAY.get(word, word)


def song_credits(song: Song) -> Credits:
    """Clean title/artists; with no title, the source file's name ("Artist_-_Title.hq.ogg") stands in."""
    md = song.metadata
    title = md.title
    if not title:
        stem = Path(md.source_path or song.audio_path).name
        stem = re.sub(r"(\.[A-Za-z0-9-]{1,16})+$", "", stem)  # every extension: ".hq.ogg"
        title = re.sub(r"[_]+", " ", stem).strip() or None
    return clean_credits(title, md.artist, md.uploader, md.channel)


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


# keywords that would describe what the chunk no longer has (vocals) or nothing musical at all
_VOCAL_WORDS = re.compile(r"vocal|voice|singer|singing|sung|lyric|acapella|a cappella|karaoke|rapper|choir", re.I)
_EMPTY_WORDS = {"music", "audio", "video", "song", "songs", "track", "new", "official", "youtube", "mp3", "download"}


def _keywords(*groups: list[str], limit: int) -> list[str]:
    """Lower-case, '#'-less, deduplicated keywords; no vocal words, no upload noise ("official video")."""
    out: list[str] = []
    for group in groups:
        for word in group:
            clean = re.sub(r"\s+", " ", str(word).strip().lstrip("#").lower())
            if not clean or clean in out or clean in _EMPTY_WORDS or _VOCAL_WORDS.search(clean) or is_noise(clean):
                continue
            out.append(clean)
    return out[:limit]


VOCAL_FLAGS = {"residual_vocals", "vocals_heard"}


def _chunk_facts(analysis: SongAnalysis, chunk: Optional[ChunkAnalysis], named: list[tuple[str, str]]) -> dict[str, Any]:
    f = chunk.features if chunk else analysis.features
    if not f.key or (chunk and chunk.features.key_strength < 0.3):
        f_key = analysis.features
    else:
        f_key = f
    key = f"{f_key.key} {f_key.scale}".strip() if f_key.key else None
    tempo_src = f if has_beat(f) else analysis.features
    bpm = float(round(tempo_src.bpm)) if has_beat(tempo_src) else None
    if analysis.mood_source in ("user", "model", "site"):
        moods, derived = list(analysis.moods), False
    else:
        moods = list(chunk.feature_moods) if chunk and chunk.feature_moods else list(analysis.moods)
        derived = bool(moods)
    if chunk:
        heard = list(zip(chunk.heard_instruments, chunk.instrument_sources))
    else:
        heard = [(i, s) for i, s in zip(analysis.instruments, analysis.instrument_sources) if s not in ("user", "site")]
    pairs = [(i, s) for i, s in heard if i != "other"]
    pairs += [(i, s) for i, s in named if i not in {p[0] for p in pairs}]
    flags = set(chunk.flags if chunk else []) | set(analysis.flags)
    return {
        "key": key,
        "bpm": bpm,
        "moods": moods,
        "derived_moods": derived,
        "instrument": [i for i, _ in pairs],
        "instrument_source": [s for _, s in pairs],
        "other_instruments": any(i == "other" for i, _ in heard),
        "instrumental": not (flags & VOCAL_FLAGS),
        "not_music": sorted(flags & NOT_MUSIC_FLAGS),
        "cues": [c for c in (chunk.flags if chunk else analysis.flags) if c not in NOT_MUSIC_FLAGS | VOCAL_FLAGS],
    }


CUE_WORDS = {"speech_like": "speech-like pauses", "no_low_range": "no low range", "noise_like": "a noise-like spectrum",
             "noisy": "a noisy spectrum", "no_beat": "no beat", "no_instrument_heard": "no instrument heard",
             "voice_only": "a voice and no instrument"}


def not_music_description(facts: dict[str, Any]) -> str:
    """What a chunk judged not music is, by the measures that said so (never a genre, never 'instrumental')."""
    if "silence" in facts["not_music"]:
        return "Not music: silence."
    cues = [CUE_WORDS.get(c, c.replace("_", " ")) for c in facts["cues"]]
    return f"Not music: {_join(cues)}." if cues else "Not music."


def write_description(facts: dict[str, Any], genre: Optional[str], rng: random.Random) -> str:
    """One sentence or two from the facts; every fact used is one of the arguments."""
    moods = [m for m in facts["moods"]]
    noun = rng.choice(["instrumental", "instrumental track", "instrumental piece"]) if facts["instrumental"] else rng.choice(["track", "piece"])
    lead_mood = moods[0] if moods and rng.random() < 0.7 else None
    tail_moods = [m for m in moods if m != lead_mood]
    if not (lead_mood or genre) and noun == "instrumental":
        noun = "instrumental track"  # "An instrumental." reads badly
    opening_words = [w for w in (lead_mood, display(genre) if genre else None, noun) if w]
    opening = f"{_article(opening_words[0])} {' '.join(opening_words)}"
    clauses = []
    if facts["key"]:
        clauses.append(f"in {facts['key']}")
    if facts["bpm"]:
        clauses.append(rng.choice([f"at {facts['bpm']:.0f} BPM", f"at a tempo of {facts['bpm']:.0f} BPM", f"at {facts['bpm']:.0f} beats per minute"]))
    rng.shuffle(clauses)
    instruments = [display(i) for i in facts["instrument"]]
    if facts["other_instruments"] and instruments:
        instruments = instruments + ["other instruments"]
    instr = ""
    if instruments:
        instr = f"{rng.choice(['with', 'featuring', 'built on', 'driven by'])} {_join(instruments)}"
    style = rng.randrange(3)
    if style == 0 or not tail_moods:
        body = " ".join([opening, *clauses, instr]).strip()
        text = body + (f"; {', '.join(tail_moods)}." if tail_moods else ".")
    elif style == 1:
        body = " ".join([opening, instr]).strip()
        if clauses:
            body += ", " + " ".join(clauses)
        text = f"{body}. {rng.choice(['Mood', 'Feel', 'Vibe'])}: {', '.join(tail_moods)}."
    else:
        body = " ".join([opening, *clauses]).strip()
        text = f"{body}. {rng.choice(['Feels', 'Sounds'])} {_join(tail_moods)}"
        text += f", {instr}." if instr else "."
    return re.sub(r"\s+", " ", text).replace(" ,", ",")


def describe_chunks(song: Song, analysis: SongAnalysis, chunks: list[Chunk], cfg: DescribeConfig) -> list[dict]:
    """One dict of MusicInfo fields (and a few more) per chunk, aligned with `chunks`."""
    credits = song_credits(song)
    md = song.metadata
    by_id = {c.chunk_id: c for c in analysis.chunks}
    named = [(i, s) for i, s in zip(analysis.instruments, analysis.instrument_sources) if s in ("user", "site")]
    genre = analysis.genres[0] if analysis.genres else None
    out = []
    for chunk in chunks:
        facts = _chunk_facts(analysis, by_id.get(chunk.chunk_id), named)
        rng = random.Random(f"{cfg.seed}:{chunk.chunk_id}")
        music = not facts["not_music"]
        description = write_description(facts, genre, rng) if music else not_music_description(facts)
        keywords = _keywords(
            [display(g) for g in analysis.genres], facts["moods"], facts["instrument"], md.keywords, md.tags, limit=cfg.max_keywords
        )
        out.append(
            {
                "title": credits.title,
                "artist": credits.artist,
                "artists": credits.all_artists,
                "featured_artists": list(credits.featured),
                "key": facts["key"],
                "bpm": facts["bpm"],
                "genre": genre if music else None,
                "genres": list(analysis.genres) if music else [],
                "genre_source": (analysis.genre_source or None) if music else None,
                "moods": facts["moods"],
                "mood_source": ("rules" if facts["derived_moods"] else analysis.mood_source) if facts["moods"] else None,
                "derived_moods": facts["derived_moods"],
                "keywords": keywords,
                "description": description,
                "name": chunk.chunk_id,
                "instrument": facts["instrument"],
                "instrument_source": facts["instrument_source"],
            }
        )
    return out
