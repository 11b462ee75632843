"""Clean artist and title from what uploaders write on YouTube and elsewhere.

"Daft Punk - Get Lucky (Official Video) ft. Pharrell Williams [HD]" ->
title "Get Lucky", artists ["Daft Punk"], featured ["Pharrell Williams"].

Hand-written rules (no maintained library does this for arbitrary uploads):
- noise in brackets or at the end is removed: official video/audio/music video,
  lyrics/lyric video, visualizer, HD/HQ/4K/1080p, explicit, M/V, "free
  download", "no copyright", "NCS release", audio-only remaster notes;
  meaningful parts ("Live at ...", "Remix", "Acoustic") are kept;
- featured artists ("feat.", "feat", "ft.", "ft", "featuring", "(with X)") are
  moved to ``featured``;
- "Artist - Title" (also en/em dashes) splits artist from title; a quoted title
  ('Artist "Title"') too;
- artist lists are split on ",", "&", " x ", " vs. ", " + ", " and " is NOT a
  separator (band names: "Simon and Garfunkel");
- file-name titles: Freesound's "<id>__<user>__<name>" gives artist <user>;
  an all-lowercase hyphenated slug becomes words ("happy-music" -> "Happy Music");
- channel names lose " - Topic", "VEVO", "Official", "Official Channel",
  "Music Channel" suffixes (used as the artist when nothing better is known).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

_NOISE_WORDS = [
    r"official\s+(?:music\s+)?video", r"official\s+(?:hd\s+)?video", r"official\s+audio", r"official\s+visuali[sz]er",
    r"official\s+lyric\s+video", r"official\s+lyrics?", r"official\s+mv", r"official", r"music\s+video", r"video\s+clip",
    r"lyric\s+video", r"lyrics?\s+video", r"with\s+lyrics", r"lyrics?", r"color\s+coded\s+lyrics", r"visuali[sz]er",
    r"audio(?:\s+only)?", r"hd", r"hq", r"4k", r"8k", r"1080p", r"720p", r"full\s+hd", r"high\s+quality", r"explicit",
    r"clean", r"m/?v", r"clip\s+officiel", r"free\s+download", r"no\s+copyright(?:\s+music)?", r"copyright\s+free",
    r"royalty\s+free", r"ncs\s+release", r"remastered\s+\d{4}", r"\d{4}\s+remaster(?:ed)?", r"remaster(?:ed)?",
    r"video", r"premiere", r"out\s+now",
]
_NOISE = re.compile(r"^\s*(?:" + "|".join(_NOISE_WORDS) + r")(?:\s*[/&+,|-]\s*(?:" + "|".join(_NOISE_WORDS) + r"))*\s*$", re.I)
_BRACKETS = re.compile(r"\s*[\(\[\{【]([^\)\]\}】]*)[\)\]\}】]")
_FEAT = r"(?:feat\.?|ft\.?|featuring)"
_FEAT_IN_BRACKETS = re.compile(r"^\s*(?:" + _FEAT + r"|with)\s+(.+)$", re.I)
_FEAT_INLINE = re.compile(r"\s+" + _FEAT + r"\s+(.+?)\s*$", re.I)
_DASH = re.compile(r"\s+[-–—]\s+|\s*[–—]\s*")
_QUOTED = re.compile(r'^(.+?)\s+["“‘\'](.+)["”’\']\s*$')
_ARTIST_SPLIT = re.compile(r"\s*(?:,|&|\s\+\s|\sx\s|\sX\s|\svs\.?\s|\s/\s)\s*")
_CHANNEL_SUFFIX = re.compile(r"(?:\s*-\s*topic|\s*vevo|\s+official(?:\s+(?:channel|page|youtube))?|\s+music\s+channel|\s+official)\s*$", re.I)
_TRAILING_NOISE = re.compile(r"(?:\s*[-|:]\s*|\s+)(" + "|".join(_NOISE_WORDS[:4] + [r"lyrics?", r"hd", r"hq", r"4k"]) + r")\s*$", re.I)


@dataclass
class Credits:
    title: Optional[str]
    artists: list[str] = field(default_factory=list)  # main artists, in order
    featured: list[str] = field(default_factory=list)

    @property
    def artist(self) -> Optional[str]:
        """Main artists joined for display: "A", "A & B", "A, B & C"."""
        if not self.artists:
            return None
        if len(self.artists) == 1:
            return self.artists[0]
        return ", ".join(self.artists[:-1]) + " & " + self.artists[-1]

    @property
    def all_artists(self) -> list[str]:
        return _dedupe(self.artists + self.featured)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" \t-–—|:~*_")


def _dedupe(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name and name.lower() not in {n.lower() for n in out}:
            out.append(name)
    return out


def is_noise(text: str) -> bool:
    """True for upload noise such as "Official Video", "Lyrics", "HD", "No Copyright Music"."""
    return bool(_NOISE.match(text))


def split_artists(text: Optional[str]) -> list[str]:
    """'A, B & C' / 'A x B' / 'A vs. B' -> ['A', 'B', 'C'] (never splits on 'and')."""
    if not text:
        return []
    return _dedupe([_squash(p) for p in _ARTIST_SPLIT.split(text) if _squash(p)])


def clean_channel(name: Optional[str]) -> Optional[str]:
    """'Adele - Topic' -> 'Adele'; 'AdeleVEVO' -> 'Adele'; 'Adele Official' -> 'Adele'."""
    if not name:
        return None
    previous = None
    cleaned = name.strip()
    while previous != cleaned:
        previous = cleaned
        cleaned = _CHANNEL_SUFFIX.sub("", cleaned).strip()
    return cleaned or None


_FREESOUND = re.compile(r"^\s*\d{3,}(?:\s{2,}|__)(.+?)(?:\s{2,}|__)(.+)$")  # "<id>__<user>__<name>" file names
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+){2,}$")  # "happy-music-ice-cream"


def _unslug(text: str) -> str:
    """'happy-music-ice-cream' -> 'Happy Music Ice Cream' (only all-lowercase, 3+ hyphenated words)."""
    text = text.strip()
    return " ".join(w.capitalize() for w in text.split("-")) if _SLUG.match(text) else text


def _strip_noise(text: str) -> tuple[str, list[str]]:
    """Remove noise brackets and trailing noise; return (text, featured artists)."""
    featured: list[str] = []

    def bracket(match: re.Match) -> str:
        inner = match.group(1).strip()
        feat = _FEAT_IN_BRACKETS.match(inner)
        if feat:
            featured.extend(split_artists(feat.group(1)))
            return ""
        if not inner or _NOISE.match(inner):
            return ""
        return match.group(0)

    text = _BRACKETS.sub(bracket, text)
    previous = None
    while previous != text:
        previous = text
        text = _TRAILING_NOISE.sub("", text)
    return _squash(text), featured


def _take_feat(text: str) -> tuple[str, list[str]]:
    match = _FEAT_INLINE.search(text)
    if not match:
        return text, []
    return _squash(text[: match.start()]), split_artists(match.group(1))


def clean_credits(
    title: Optional[str],
    artist: Optional[str] = None,
    uploader: Optional[str] = None,
    channel: Optional[str] = None,
) -> Credits:
    """Clean title, main artists and featured artists.

    `artist` (given by the user or by the downloader's `artist` field) wins over
    the "Artist - Title" pattern, which wins over the channel/uploader name.
    """
    featured: list[str] = []
    artists: list[str] = []
    if artist:
        artist_text, feat = _take_feat(_strip_noise(artist)[0])
        artists, featured = split_artists(artist_text), feat
    clean_title: Optional[str] = None
    if title:
        freesound = _FREESOUND.match(title)
        if freesound:  # Freesound's download names: the user is the artist
            if not artists:
                artists = [freesound.group(1).strip()]
            title = freesound.group(2)
        title = _unslug(title)
        text, feat = _strip_noise(title)
        featured += feat
        parts = _DASH.split(text, maxsplit=1)
        quoted = _QUOTED.match(text) if len(parts) == 1 else None
        if len(parts) == 2 and parts[0] and parts[1]:
            left, right = parts
            left, feat_left = _take_feat(left)
            featured += feat_left
            if not artists:
                artists = split_artists(left)
                clean_title = right
            elif {a.lower() for a in split_artists(left)} & {a.lower() for a in artists}:
                clean_title = right
            else:
                clean_title = text if not feat_left else f"{left} - {right}"
        elif quoted and not artists:
            left, feat_left = _take_feat(quoted.group(1))
            artists, clean_title = split_artists(left), quoted.group(2)
            featured += feat_left
        else:
            clean_title = text
        clean_title, feat = _take_feat(_strip_noise(clean_title)[0])
        featured += feat
        clean_title = clean_title.strip(" \"'“”‘’") or None
    if not artists:
        artists = split_artists(clean_channel(channel) or clean_channel(uploader))
    artists = _dedupe(artists)
    featured = [f for f in _dedupe(featured) if f.lower() not in {a.lower() for a in artists}]
    return Credits(clean_title, artists, featured)
