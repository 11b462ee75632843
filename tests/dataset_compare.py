"""Two builds give the same dataset: every chunk row, the chunk files, Parquet shards, manifests and card
(timings, and paths of the build folder, aside)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from processing import audio_io
from processing.types import AudioData, SourceSpec


def _files(build: Path, sub: str) -> dict[str, str]:
    return {p.relative_to(build).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((build / sub).rglob("*")) if p.is_file()}


def _text(path: Path, build: Path) -> str:
    return path.read_text().replace(str(build), "<build>")  # audiocraft manifests hold absolute paths


def assert_same_dataset(a: Path, b: Path) -> None:
    """Chunk ids, audio sha256, descriptions, every column, splits, Parquet shards, manifests, card."""
    rows_a, rows_b = (pq.read_table(x / "chunks.parquet").to_pylist() for x in (a, b))
    assert rows_a and rows_a == rows_b
    assert len({r["chunk_id"] for r in rows_a}) == len(rows_a)
    assert _files(a, "audio") == _files(b, "audio")  # chunk files and audiocraft sidecars
    shards = sorted(p.name for p in (a / "data").glob("*.parquet"))
    assert shards and shards == sorted(p.name for p in (b / "data").glob("*.parquet"))
    for name in shards:
        assert pq.read_table(a / "data" / name).equals(pq.read_table(b / "data" / name)), name
    for rel in ["dataset_card.md", "build_info.json", *sorted(p.relative_to(a).as_posix() for p in (a / "egs").rglob("*")
                                                               if p.is_file())]:
        assert _text(a / rel, a) == _text(b / rel, b), rel
    if (a / "hf").exists() or (b / "hf").exists():  # the self-contained Hugging Face folder
        hf = sorted(p.name for p in (a / "hf" / "data").glob("*.parquet"))
        assert hf and hf == sorted(p.name for p in (b / "hf" / "data").glob("*.parquet"))
        for name in hf:
            assert pq.read_table(a / "hf" / "data" / name).equals(pq.read_table(b / "hf" / "data" / name)), name
        assert _text(a / "hf" / "README.md", a) == _text(b / "hf" / "README.md", b)
    ra, rb = (json.loads((x / "report.json").read_text()) for x in (a, b))
    assert ra["settings"]["version"] == rb["settings"]["version"]
    counts = [{k: v for k, v in r["counts"].items() if k != "stale_files_removed"} for r in (ra, rb)]  # reruns differ
    assert ra["failures"] == rb["failures"] and counts[0] == counts[1]


def excerpt(src: Path, dst: Path, start_s: float, length_s: float) -> SourceSpec:
    audio = audio_io.decode(src)
    a = int(start_s * audio.sample_rate)
    audio_io.write(dst, AudioData(audio.samples[:, a:a + int(length_s * audio.sample_rate)], audio.sample_rate),
                   subtype="PCM_16")
    return SourceSpec(str(dst))


def three_songs(shared_audio: Path, folder: Path, seconds: float) -> list[SourceSpec]:
    """Three real songs, ``seconds`` long each (the drum-bass clip is 25 s whole): solo piano from its start, drums
    and bass, jazz from 10 s in; the excerpts are written into ``folder``."""
    from conftest import DRUM_BASS, PIANO, VIBE_ACE

    return [excerpt(shared_audio / PIANO, folder / "piano.wav", 0, seconds), SourceSpec(str(shared_audio / DRUM_BASS)),
            excerpt(shared_audio / VIBE_ACE, folder / "vibe-ace.wav", 10, seconds)]
