"""Describe stage: clean credits, vocabulary words, and descriptions whose every
fact is in the row they were written for."""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from processing import vocabulary
from processing.analyse.analyse import ChunkAnalysis, SongAnalysis, analyse_song, summarise
from processing.config import AnalyseConfig, DescribeConfig
from processing.describe.describe import describe_chunks, song_credits
from processing.analyse.features import Features
from processing.analyse.instruments import InstrumentReport
from processing.demo.synth import synth_song
from processing.types import Chunk, Song, SongMetadata
from test_analyse import make_song

MUSICINFO = {"title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name", "instrument"}


def feats(bpm=122.0, conf=3.0, key="D", scale="minor", strength=0.8, lufs=-14.0, bright=1500.0) -> Features:
    return Features(30.0, bpm, conf, key, scale, strength, lufs, 0.9, -0.9, 1.2, 0.0, bright, 0.3, 0.04, 0.2, 0.3, 0.9, 0.6, 0.1)


def chunk(i: int, song_id: str = "s1") -> Chunk:
    return Chunk(f"{song_id}-{i:03d}", song_id, i, 30.0 * i, 30.0 * (i + 1), 30.0, 32000, 1, Path(f"/x/{i}.wav"), "0", 0.9, -20.0)


def analysis(n: int, genres=(), moods=(), mood_source="", instruments=("drums", "bass", "piano"), flags=None, **kw) -> SongAnalysis:
    chunks = [
        ChunkAnalysis(f"s1-{i:03d}", feats(**kw), InstrumentReport(list(instruments), {}, False, "stems"), -40.0,
                      list(flags or []), ["tense", "warm"], heard_instruments=list(instruments),
                      instrument_sources=["stems"] * len(instruments))
        for i in range(n)
    ]
    return SongAnalysis("s1", feats(**kw), chunks, list(genres), "user" if genres else "", list(moods), mood_source,
                        list(instruments), ["stems"] * len(instruments), "stems")


def song(**md) -> Song:
    return Song("s1", Path("/src/Some_Artist_-_Some_Song.hq.ogg"), SongMetadata(**md), "0" * 64, 120.0, 44100, 2)


_ALL_WORDS = {
    "genre": {w for c, syn in vocabulary.GENRES.items() for w in [c, *syn]},
    "mood": {w for c, syn in vocabulary.MOODS.items() for w in [c, *syn]},
    "instrument": {w for c, syn in vocabulary.INSTRUMENTS.items() for w in [c, *syn] if c != "other"},
}


def words_in(text: str, table: str) -> set[str]:
    """Canonical vocabulary words the text mentions (ambiguity rules off: strict)."""
    low = text.lower()
    lookup = {"genre": vocabulary.genre, "mood": vocabulary.mood, "instrument": vocabulary.instrument}[table]
    return {lookup(w) for w in _ALL_WORDS[table] if re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", low)}


def assert_facts_in_row(row: dict) -> None:
    text = row["description"]
    assert not re.search(r"vocal|voice|sing|sung|lyric|rap\b", text, re.I), text
    genres = words_in(text, "genre")
    assert genres <= ({row["genre"]} if row["genre"] else set()), (text, row["genre"])
    assert words_in(text, "mood") <= set(row["moods"]), (text, row["moods"])
    assert words_in(text.replace("beats per minute", "BPM"), "instrument") <= set(row["instrument"]), (text, row["instrument"])
    keys = re.findall(r"\b([A-G][#b]?) (major|minor)\b", text)
    assert [f"{k} {s}" for k, s in keys] == ([row["key"]] if row["key"] else []), text
    bpms = [float(b) for b in re.findall(r"(\d+) (?:BPM|beats per minute)", text)]
    assert bpms == ([row["bpm"]] if row["bpm"] else []), text


def test_rows_have_musicinfo_fields_and_only_facts_from_the_row():
    a = analysis(12, genres=["jazz", "funk"], moods=["relaxed", "warm"], mood_source="user")
    md = dict(title="Some Artist - Some Song (Official Video) ft. Guest [HD]",
              tags=["#Jazz", "instrumental", "jazz", "Female Vocals", "official video", "Music", "lyrics"],
              keywords=["Late Night"], uploader="Some ArtistVEVO")
    rows = describe_chunks(song(**md), a, [chunk(i) for i in range(12)], DescribeConfig(seed=7))
    assert len(rows) == 12
    for i, row in enumerate(rows):
        assert MUSICINFO <= set(row)
        assert row["title"] == "Some Song" and row["artist"] == "Some Artist"
        assert row["artists"] == ["Some Artist", "Guest"] and row["featured_artists"] == ["Guest"]
        assert row["name"] == f"s1-{i:03d}" and row["genre"] == "jazz" and row["genres"] == ["jazz", "funk"]
        assert row["key"] == "D minor" and row["bpm"] == 122.0
        assert row["moods"] == ["relaxed", "warm"] and row["derived_moods"] is False
        assert row["instrument"] == ["drums", "bass", "piano"]
        assert len(row["keywords"]) == len(set(row["keywords"]))
        assert {"jazz", "relaxed", "drums", "late night", "instrumental"} <= set(row["keywords"])
        assert not {"female vocals", "official video", "music", "lyrics"} & set(row["keywords"])
        assert_facts_in_row(row)
        assert "jazz" in row["description"]
    assert len({r["description"] for r in rows}) >= 6  # varied wording


def test_descriptions_are_deterministic_per_seed_and_chunk():
    a = analysis(4, genres=["rock"])
    chunks = [chunk(i) for i in range(4)]
    first = [r["description"] for r in describe_chunks(song(), a, chunks, DescribeConfig(seed=1))]
    again = [r["description"] for r in describe_chunks(song(), a, chunks, DescribeConfig(seed=1))]
    other = [r["description"] for r in describe_chunks(song(), a, chunks, DescribeConfig(seed=2))]
    assert first == again and first != other


def test_nothing_is_invented_when_nothing_is_known():
    a = analysis(3, genres=[], moods=[], instruments=(), bpm=0.0, conf=0.0, key="", scale="")
    for c in a.chunks:
        c.feature_moods = []
    rows = describe_chunks(song(), a, [chunk(i) for i in range(3)], DescribeConfig())
    for row in rows:
        assert row["genre"] is None and row["key"] is None and row["bpm"] is None and row["moods"] == []
        assert re.fullmatch(r"An instrumental (track|piece)\.", row["description"])
        assert_facts_in_row(row)


def test_low_confidence_tempo_is_not_stated():
    a = analysis(2, genres=["ambient"], conf=0.5)
    for row in describe_chunks(song(), a, [chunk(i) for i in range(2)], DescribeConfig()):
        assert row["bpm"] is None and "BPM" not in row["description"] and "beats per minute" not in row["description"]
        assert_facts_in_row(row)


def test_derived_moods_are_marked_and_vocal_residue_is_not_called_instrumental():
    a = analysis(6, genres=["pop"], flags=["residual_vocals"])
    rows = describe_chunks(song(), a, [chunk(i) for i in range(6)], DescribeConfig())
    for row in rows:
        assert row["derived_moods"] is True and row["moods"] == ["tense", "warm"]
        assert "instrumental" not in row["description"]
        assert_facts_in_row(row)


def test_title_falls_back_to_the_file_name():
    credits = song_credits(song())
    assert (credits.title, credits.artists) == ("Some Song", ["Some Artist"])


def test_end_to_end_from_a_synthetic_song(tmp_path):
    s = synth_song(bpm=110, key="E", scale="minor", duration_s=8, vocals=False, seed=3)
    md = SongMetadata(title="Night Drive", artist="Neon Feat. Luma", tags=["synthwave", "dark"])
    sep, chunks = make_song(tmp_path, s.mix, {}, s.mix, chunk_s=8, metadata=md, model="none")
    result = analyse_song(sep, chunks, AnalyseConfig(tagger="none"))
    rows = describe_chunks(sep.song, result, chunks, DescribeConfig())
    row = rows[0]
    assert row["artist"] == "Neon" and row["featured_artists"] == ["Luma"] and row["title"] == "Night Drive"
    assert row["genre"] == "electronic" and row["moods"] == ["dark"]
    assert row["genre_source"] == "site" and row["mood_source"] == "site"
    assert row["bpm"] == pytest.approx(110, rel=0.02)
    assert_facts_in_row(row)
    # the pipeline's merged row (analysis, then description columns) is Arrow-friendly and summarisable
    merged = [{**r, **result.song_row(), **d} for r, d in zip(result.chunk_rows(), rows)]
    from processing.pipeline import write_rows, write_table

    rows_file = write_rows(tmp_path, "s1", merged)
    table = pq.read_table(write_table([rows_file], tmp_path, tmp_path / "chunks.parquet"))  # the pipeline's own writer
    assert table.schema.field("stem_drums_db").type == pa.float64()
    assert table.num_rows == 1 and table.schema.field("instrument").type == pa.list_(pa.string())
    summary = summarise(merged)
    assert summary["genres"] == {"electronic": 1} and summary["moods"] == {"dark": 1}
