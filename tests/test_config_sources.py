"""The typed config and the sources file reader: good input parses, bad input names the problem."""
from __future__ import annotations

from pathlib import Path

import pytest

from processing.config import ConfigError, PipelineConfig, load_config
from processing.ingest.sources import SourcesError, read_sources


def test_yaml_and_overrides_build_a_typed_config(tmp_path):
    cfg_file = tmp_path / "build.yaml"
    cfg_file.write_text("chunk:\n  chunk_s: 20\n  tail_policy: pad\nconvert:\n  sample_rate: 16000\n")
    cfg = load_config(cfg_file, ["convert.channels=2", "separate.keep_stems=true", "build.exports=[parquet]"])
    assert cfg.chunk.chunk_s == 20.0 and cfg.chunk.tail_policy == "pad"
    assert cfg.convert.sample_rate == 16000 and cfg.convert.channels == 2
    assert cfg.separate.keep_stems is True and cfg.build.exports == ["parquet"]
    assert isinstance(cfg, PipelineConfig) and cfg.separate.model == "htdemucs"
    cfg.validate()


@pytest.mark.parametrize("override, message", [
    ("chunk.chunk_seconds=3", "unknown key(s) chunk_seconds"),
    ("convert.sample_rate=fast", "convert.sample_rate: expected a number"),
    ("separate.keep_stems=maybe", "expected true or false"),
    ("nosuch.key=1", "unknown key(s) nosuch"),
])
def test_bad_config_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_validate_rejects_values_that_cannot_work():
    with pytest.raises(ConfigError, match="tail_policy"):
        load_config(None, ["chunk.tail_policy=keep"]).validate()
    with pytest.raises(ConfigError, match="channels"):
        load_config(None, ["convert.channels=6"]).validate()
    with pytest.raises(ConfigError, match="analyse.tagger_device must be auto, cpu, cuda or cuda:N"):
        load_config(None, ["analyse.tagger_device=gpu"]).validate()


def test_yaml_sources_with_metadata_and_relative_paths(tmp_path):
    (tmp_path / "songs").mkdir()
    f = tmp_path / "sources.yaml"
    f.write_text(
        "config:\n  chunk:\n    chunk_s: 10\n"
        "songs:\n"
        "  - songs/a.wav\n"
        "  - url: https://example.com/watch?v=1\n    artist: Someone\n    moods: [calm, warm]\n    license: CC-BY-4.0\n"
        "  - path: /abs/b.flac\n    split: validation\n    instrumental: true\n"
    )
    specs, config = read_sources(f)
    assert config == {"chunk": {"chunk_s": 10}}
    assert specs[0].location == str(tmp_path / "songs" / "a.wav") and not specs[0].is_url
    assert specs[1].is_url and specs[1].artist == "Someone" and specs[1].moods == ["calm", "warm"]
    assert specs[1].licence == "CC-BY-4.0"
    assert specs[2].split == "validation" and specs[2].instrumental is True


def test_csv_sources(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("location,artist,moods,genre\nx.ogg,Band,happy;bright,jazz\nhttps://a.b/c,,,\n")
    specs, _ = read_sources(f)
    assert specs[0].moods == ["happy", "bright"] and specs[0].genre == "jazz"
    assert specs[0].location == str(tmp_path / "x.ogg")
    assert specs[1].artist is None and specs[1].is_url


@pytest.mark.parametrize("text, message", [
    ("songs:\n  - artist: x\n", "entry 1: no location"),
    ("songs:\n  - location: a.wav\n    colour: red\n", "unknown field 'colour'"),
    ("songs:\n  - location: a.wav\n    split: holdout\n", "split must be train, validation or test"),
    ("tracks: []\n", "unknown top-level key"),
])
def test_bad_sources_name_the_entry(tmp_path, text, message):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SourcesError, match=message):
        read_sources(f)


def test_missing_sources_file():
    with pytest.raises(SourcesError, match="does not exist"):
        read_sources(Path("/nonexistent/sources.yaml"))
