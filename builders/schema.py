"""The published table's schema: one versioned list of columns and their types.

Every Parquet shard, the Hugging Face export and the loading script use the
columns declared here, in this order. Optional input columns (the analyse and
describe stages may be disabled) are always present in the output, null when
the stage did not run, so every build of one SCHEMA_VERSION has the same schema.
Input columns not declared here (e.g. ``song_*`` summaries) travel as JSON in
``extra``.

Versioning: bump the minor number when a column is added, the major number
when a column is removed, renamed or changes type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1.3"  # 1.1: instrument_sources, genre_source, mood_source, vocal_score, tag_scores; 1.2: weight; 1.3: beats

SPLITS = ("train", "validation", "test")

# The demucs stems we know of (htdemucs: 4 stems, htdemucs_6s adds guitar and piano).
STEM_NAMES = ("drums", "bass", "other", "vocals", "guitar", "piano")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string", "int", "float", "bool", "strings" (list<str>), "floats" (list<float>), "scores" (list<{tag, score}>), "audio"
    doc: str
    required: bool = False  # must be present in the build's chunks.parquet


_ARROW = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "strings": pa.list_(pa.string()),
    "floats": pa.list_(pa.float64()),
    "scores": pa.list_(pa.struct([("tag", pa.string()), ("score", pa.float64())])),
    "audio": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
}

COLUMNS: tuple[Column, ...] = (
    Column("audio", "audio", "the chunk's audio: WAV/FLAC bytes (embedded) or a path relative to the build folder"),
    Column("chunk_id", "string", "`<song_id>-<index:03d>`", True),
    Column("song_id", "string", "stable id of the song the chunk comes from", True),
    Column("chunk_index", "int", "position of the chunk in its song", True),
    Column("split", "string", "train, validation or test (assigned per song)"),
    Column("weight", "float", "sampling weight (curate.weighting; mean 1.0 per split): draw chunks in proportion to it to balance the dataset"),
    Column("start_s", "float", "start of the chunk in the song (s)", True),
    Column("end_s", "float", "end of the chunk in the song (s)", True),
    Column("duration_s", "float", "duration of the audio, padding included (s)", True),
    Column("padded_s", "float", "silence appended at the end (s)"),
    Column("sample_rate", "int", "sample rate of the audio (Hz)", True),
    Column("channels", "int", "channels of the audio", True),
    Column("audio_sha256", "string", "sha256 of the chunk's audio file"),
    Column("song_sha256", "string", "sha256 of the source song file"),
    Column("separation_model", "string", "model that removed the vocals (htdemucs, offline-repet, none)"),
    Column("peak", "float", "peak absolute sample value"),
    Column("rms_db", "float", "RMS level (dBFS)"),
    Column("stem_paths", "string", "JSON map stem -> path relative to the build folder ({} when no stems)"),
    # source metadata
    Column("source_title", "string", "title given by the user or the source"),
    Column("source_artist", "string", "artist given by the user or the source"),
    Column("uploader", "string", "uploader (downloads)"),
    Column("channel", "string", "channel (downloads)"),
    Column("url", "string", "where the song came from"),
    Column("licence", "string", "the song's licence"),
    Column("source_path", "string", "local source file name"),
    Column("extractor", "string", "yt-dlp extractor"),
    Column("tags", "strings", "source tags"),
    Column("categories", "strings", "source categories"),
    Column("source_moods", "strings", "moods given by the user"),
    Column("source_keywords", "strings", "keywords given by the user"),
    Column("source_genre", "string", "genre given by the user"),
    Column("split_pin", "string", "split pinned by the user, if any"),
    # analyse (per chunk)
    Column("bpm_confidence", "float", "beat confidence: rnn (default) the beat network's mean activation on the beats (0-1), essentia its RhythmExtractor2013 confidence (0-5.3)"),
    Column("beats", "floats", "beat times in the chunk, seconds from its start (analyse.tempo)"),
    Column("scale", "string", "major or minor"),
    Column("key_strength", "float", "key detection strength"),
    Column("loudness_lufs", "float", "integrated loudness (LUFS)"),
    Column("danceability", "float", "essentia danceability"),
    Column("silence_ratio", "float", "fraction of silent frames"),
    Column("instruments", "strings", "instruments heard in the chunk (stems, tagger) or named by the user or site (list)"),
    Column("instrument_sources", "strings", "where each of `instruments` came from: stems, model, features, user or site"),
    Column("vocal_score", "float", "the tagger's voice score for the chunk (0-1; >= analyse.vocal_threshold is flagged vocals_heard)"),
    Column("tag_scores", "scores", "every tag the tagger scored, averaged over the chunk (musicnn: mtt:* and msd:*, 100 tags)"),
    Column("flags", "strings", "quality flags raised by analysis"),
    Column("brightness_hz", "float", "spectral centroid (Hz)"),
    Column("percussive_ratio", "float", "share of percussive energy"),
    Column("residual_vocal_db", "float", "vocal stem level left in the instrumental (dB; null without a vocal stem)"),
    Column("source_vocals", "bool", "the source song had vocals (null: unknown)"),
    *(Column(f"stem_{s}_db", "float", f"level of the {s} stem relative to the mix (dB)") for s in STEM_NAMES),
    # describe (audiocraft MusicInfo fields)
    Column("title", "string", "MusicInfo title"),
    Column("artist", "string", "MusicInfo artist"),
    Column("artists", "strings", "every credited artist"),
    Column("key", "string", "musical key, e.g. 'C major'"),
    Column("bpm", "float", "tempo (beats per minute)"),
    Column("genre", "string", "MusicInfo genre"),
    Column("genres", "strings", "every genre found, best first"),
    Column("genre_source", "string", "where the genre came from: user (sources file), model, site (tags, title)"),
    Column("moods", "strings", "MusicInfo moods"),
    Column("mood_source", "string", "where the moods came from: user, model, site, or rules (derived from features)"),
    Column("keywords", "strings", "MusicInfo keywords"),
    Column("description", "string", "text description MusicGen is conditioned on"),
    Column("name", "string", "MusicInfo name"),
    Column("instrument", "string", "MusicInfo instrument (comma-separated)"),
    Column("extra", "string", "JSON object of the build's other columns (song_* summaries, ...)"),
)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED_INPUT = tuple(c.name for c in COLUMNS if c.required) + ("audio_path",)
# input columns consumed without being copied under their own name
CONSUMED_INPUT = ("audio_path", "excluded", "exclude_reason")


def arrow_schema(sample_rate: int, channels: int = 1) -> pa.Schema:
    """The Arrow schema of every shard, with the `datasets` features in its metadata."""
    import json

    fields = [pa.field(c.name, _ARROW[c.kind]) for c in COLUMNS]
    meta = {
        "huggingface": json.dumps({"info": {"features": features_dict(sample_rate, channels=channels)}}),
        "music_mixer_schema_version": SCHEMA_VERSION,
    }
    return pa.schema(fields, metadata=meta)


def features_dict(sample_rate: int, audio_as_struct: bool = False, channels: int = 1) -> dict[str, Any]:
    """`datasets.Features.to_dict()` form of the schema, without importing `datasets`.

    audio_as_struct: declare audio as a plain {bytes, path} struct, for
    datasets >= 4 without torchcodec (cast to Audio afterwards).
    channels > 1: decode without down-mixing (`mono: false` for datasets 3.x,
    `num_channels` for 4+; each version ignores the other's key).
    """
    out: dict[str, Any] = {}
    for c in COLUMNS:
        if c.kind == "audio":
            out[c.name] = (
                {"bytes": {"dtype": "binary", "_type": "Value"}, "path": {"dtype": "string", "_type": "Value"}}
                if audio_as_struct
                else {"sampling_rate": int(sample_rate), "_type": "Audio"}
            )
            if channels > 1 and not audio_as_struct:
                out[c.name].update(mono=False, num_channels=int(channels))
        elif c.kind == "strings":
            out[c.name] = {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"}
        elif c.kind == "floats":
            out[c.name] = {"feature": {"dtype": "float64", "_type": "Value"}, "_type": "Sequence"}
        elif c.kind == "scores":
            out[c.name] = [{"tag": {"dtype": "string", "_type": "Value"}, "score": {"dtype": "float64", "_type": "Value"}}]
        else:
            dtype = {"string": "string", "int": "int64", "float": "float64", "bool": "bool"}[c.kind]
            out[c.name] = {"dtype": dtype, "_type": "Value"}
    return out


def features(sample_rate: int, audio_as_struct: bool = False, channels: int = 1):
    """The schema as `datasets.Features` (Audio with the sample rate, strings, numbers, lists)."""
    import datasets

    return datasets.Features.from_dict(features_dict(sample_rate, audio_as_struct, channels))
