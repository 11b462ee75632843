"""Title/artist cleaning on a table of real-looking YouTube titles, and the vocabulary."""
from __future__ import annotations

import pytest

from processing import vocabulary
from processing.describe.titles import clean_channel, clean_credits, split_artists

# (title, artist, uploader, channel) -> (title, artists, featured)
TABLE = [
    (("Daft Punk - Get Lucky (Official Video) ft. Pharrell Williams [HD]", None, None, "DaftPunkVEVO"),
     ("Get Lucky", ["Daft Punk"], ["Pharrell Williams"])),
    (("Mark Ronson - Uptown Funk (Official Video) ft. Bruno Mars", None, "Mark Ronson", None),
     ("Uptown Funk", ["Mark Ronson"], ["Bruno Mars"])),
    (("Get Lucky (feat. Pharrell Williams)", None, None, "Daft Punk - Topic"), ("Get Lucky", ["Daft Punk"], ["Pharrell Williams"])),
    (("Calvin Harris, Dua Lipa - One Kiss (Lyrics)", None, None, None), ("One Kiss", ["Calvin Harris", "Dua Lipa"], [])),
    (("Skrillex x Diplo - Where Are Ü Now [Official Audio]", None, None, None), ("Where Are Ü Now", ["Skrillex", "Diplo"], [])),
    (("Vibe Ace", "Kevin MacLeod", None, None), ("Vibe Ace", ["Kevin MacLeod"], [])),
    (("Kevin MacLeod - Vibe Ace", "Kevin MacLeod", None, None), ("Vibe Ace", ["Kevin MacLeod"], [])),
    (("Adele - Hello (Official Music Video)", None, None, "AdeleVEVO"), ("Hello", ["Adele"], [])),
    (('Coldplay "Yellow" (Official Video)', None, None, None), ("Yellow", ["Coldplay"], [])),
    (("Alan Walker - Faded (Live at Ultra) [4K]", None, None, None), ("Faded (Live at Ultra)", ["Alan Walker"], [])),
    (("Simon and Garfunkel - The Sound of Silence (Audio)", None, None, None), ("The Sound of Silence", ["Simon and Garfunkel"], [])),
    (("DJ Snake ft. Lil Jon - Turn Down for What", None, None, None), ("Turn Down for What", ["DJ Snake"], ["Lil Jon"])),
    (("Tobu - Hope [NCS Release]", None, None, "NoCopyrightSounds"), ("Hope", ["Tobu"], [])),
    (("Imagine Dragons - Believer (Lyrics) HD", None, None, None), ("Believer", ["Imagine Dragons"], [])),
    (("Avicii – Levels (Skrillex Remix) [Official Audio]", None, None, None), ("Levels (Skrillex Remix)", ["Avicii"], [])),
    (("Lose Yourself", "Eminem", None, "EminemVEVO"), ("Lose Yourself", ["Eminem"], [])),
    (("Old Town Road (Remix) [feat. Billy Ray Cyrus]", "Lil Nas X", None, None), ("Old Town Road (Remix)", ["Lil Nas X"], ["Billy Ray Cyrus"])),
    (("Calm Piano Music | Official Audio", None, "Relaxing Music Official", None), ("Calm Piano Music", ["Relaxing Music"], [])),
    (("Bad Guy", None, None, "Billie Eilish - Topic"), ("Bad Guy", ["Billie Eilish"], [])),
    (("Shape of You", "Ed Sheeran featuring Stormzy", None, None), ("Shape of You", ["Ed Sheeran"], ["Stormzy"])),
    (("Lady Gaga & Bradley Cooper - Shallow (from A Star Is Born) (Official Music Video)", None, None, None),
     ("Shallow (from A Star Is Born)", ["Lady Gaga", "Bradley Cooper"], [])),
    ((None, None, "Some Uploader", None), (None, ["Some Uploader"], [])),
    # titles that ingest guesses from file names
    (("442789  lena-orsa  happy-music-pistachio-ice-cream-ragtime", None, None, None),
     ("Happy Music Pistachio Ice Cream Ragtime", ["lena-orsa"], [])),
    (("456440__inspectorj__bird-whistling-robin-single-13", None, None, None), ("Bird Whistling Robin Single 13", ["inspectorj"], [])),
    (("Choice - Drum-bass", "admiralbob77", None, None), ("Choice - Drum-bass", ["admiralbob77"], [])),
]


@pytest.mark.parametrize("given,expected", TABLE, ids=[str(g[0]) for g, _ in TABLE])
def test_clean_credits_table(given, expected):
    credits = clean_credits(*given)
    assert (credits.title, credits.artists, credits.featured) == expected


def test_display_artist_and_all_artists():
    credits = clean_credits("A, B & C - Song ft. D")
    assert credits.artist == "A, B & C" and credits.all_artists == ["A", "B", "C", "D"]
    assert clean_credits("Song").artist is None


@pytest.mark.parametrize("raw,clean", [("Adele - Topic", "Adele"), ("AdeleVEVO", "Adele"), ("Taylor Swift Official", "Taylor Swift"),
                                       ("Lofi Girl", "Lofi Girl"), ("  ", None), (None, None)])
def test_clean_channel(raw, clean):
    assert clean_channel(raw) == clean


def test_split_artists_never_splits_on_and():
    assert split_artists("Simon and Garfunkel") == ["Simon and Garfunkel"]
    assert split_artists("A vs. B + C / D") == ["A", "B", "C", "D"]
    assert split_artists("A, a") == ["A"]


def test_vocabulary_synonyms_and_dedup():
    assert vocabulary.genres(["Hip-Hop", "hiphop", "Rap/Trap", "DnB", "R&B", "Music"]) == ["hip hop", "drum and bass", "rnb"]
    assert vocabulary.moods(["Chill", "relaxing", "Feel-Good", "sleepy"]) == ["calm", "relaxed", "happy"]
    assert vocabulary.instruments(["Electric Guitar", "keys", "808", "kazoo"]) == ["guitar", "piano", "drums"]
    assert vocabulary.genre("nonsense") is None


def test_vocabulary_in_text_skips_ambiguous_words():
    assert vocabulary.find_in_text("Smooth Jazz Piano for Study", "genre") == ["jazz"]
    assert vocabulary.find_in_text("Rock Me Baby", "genre") == []
    assert vocabulary.find_in_text("Classic Rock Anthems", "genre") == ["rock"]
    assert vocabulary.find_in_text("Lofi Hip Hop Radio", "genre") == ["hip hop", "lo-fi"]
    assert vocabulary.find_in_text("Love Story", "mood") == []
