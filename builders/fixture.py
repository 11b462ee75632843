"""Write a small build folder that follows the pipeline's contract, from real clips.

Used by the tests (and usable for demos) until the pipeline writes real builds:
cuts clips into short chunks, converts them to the training format with
soundfile + soxr, and writes chunks.parquet, report.json and config.json as
the lead's pipeline does, with analysis/description columns and one excluded row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import soxr

from processing.audio_io import file_sha256, write
from processing.config import PipelineConfig
from processing.types import AudioData


@dataclass
class FixtureSong:
    file: str  # clip name in the shared audio folder
    song_id: str
    title: str
    artist: str
    licence: str
    genre: Optional[str] = None
    moods: list[str] = field(default_factory=list)
    instruments: list[str] = field(default_factory=list)
    bpm: Optional[float] = None
    key: Optional[str] = None
    scale: Optional[str] = None
    split_pin: Optional[str] = None
    excluded: Optional[str] = None  # exclude reason for every chunk of this song


DEFAULT_SONGS = (
    FixtureSong("Kevin_MacLeod_-_Vibe_Ace.hq.ogg", "vibe-ace", "Vibe Ace", "Kevin MacLeod", "CC-BY-3.0",
                "jazz", ["relaxed", "smooth"], ["vibraphone", "bass", "drums"], 112.0, "F", "major"),
    FixtureSong("admiralbob77_-_Choice_-_Drum-bass.hq.ogg", "choice-drum-bass", "Choice", "Admiral Bob", "CC-BY-NC-3.0",
                "hip hop", ["groovy"], ["drums", "bass"], 90.0, "A", "minor"),
    FixtureSong("442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg", "pistachio-ragtime",
                "Pistachio Ice Cream Ragtime", "Lena Orsa", "CC-BY-NC-3.0", "ragtime", ["happy"], ["piano"], 100.0, "C", "major"),
    FixtureSong("Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg", "lets-go-fishin", "Let's Go Fishin'", "Karissa Hobbs", "CC-BY-3.0",
                "folk", ["cheerful"], ["guitar"], 120.0, "G", "major"),
    FixtureSong("198-209-0000.hq.ogg", "speech-198", "Sense and Sensibility ch. 18", "Heather Barnett", "CC-BY-4.0",
                excluded="not_music"),
)


def _read_segment(path: Path, start_s: float, dur_s: float) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as fh:
        rate = fh.samplerate
        fh.seek(min(int(start_s * rate), fh.frames))
        data = fh.read(int(dur_s * rate), dtype="float32", always_2d=True)
    return data, rate


def write_fixture_build(
    out_dir: Path,
    audio_dir: Path,
    songs: tuple[FixtureSong, ...] = DEFAULT_SONGS,
    chunk_s: float = 10.0,
    max_chunks: int = 2,
    sample_rate: int = 32000,
    fmt: str = "wav",
    with_analysis: bool = True,
    with_stems: bool = False,
    channels: int = 1,
) -> Path:
    """Write DIR/audio, DIR/chunks.parquet, DIR/report.json, DIR/config.json; return DIR."""
    out_dir = Path(out_dir)
    cfg = PipelineConfig(out_dir=out_dir)
    cfg.chunk.chunk_s = chunk_s
    cfg.chunk.min_tail_s = min(cfg.chunk.min_tail_s, chunk_s / 2)
    cfg.convert.sample_rate = sample_rate
    cfg.convert.format = fmt
    cfg.analyse.enabled = cfg.describe.enabled = with_analysis
    cfg.separate.keep_stems = with_stems
    cfg.convert.channels = channels
    rows: list[dict[str, Any]] = []
    for song in songs:
        src = Path(audio_dir) / song.file
        song_sha = file_sha256(src)
        total_s = sf.info(str(src)).duration
        n = max(1, min(max_chunks, int(total_s // chunk_s)))
        for i in range(n):
            start = i * chunk_s
            data, rate = _read_segment(src, start, chunk_s)
            frames = data.mean(axis=1) if channels == 1 else np.repeat(data, 2, axis=1)[:, :2] if data.shape[1] == 1 else data[:, :2]
            # `mono` holds (samples,) or (samples, 2): the training format
            mono = np.ascontiguousarray(soxr.resample(frames, rate, sample_rate).astype(np.float32))
            peak = float(np.max(np.abs(mono))) or 1.0
            if peak > 0.99:
                mono *= 0.99 / peak
            chunk_id = f"{song.song_id}-{i:03d}"
            rel = f"audio/{song.song_id}/{chunk_id}.{fmt}"
            write(out_dir / rel, AudioData(mono.T, sample_rate), subtype="PCM_16")
            stems: dict[str, str] = {}
            if with_stems:
                for stem, gain in (("drums", 0.5), ("other", 0.25)):
                    srel = f"stems/{song.song_id}/{chunk_id}/{stem}.flac"
                    write(out_dir / srel, AudioData((mono * gain).T, sample_rate), subtype="PCM_16")
                    stems[stem] = srel
            dur = len(mono) / sample_rate
            rms = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2)))
            row: dict[str, Any] = {
                "chunk_id": chunk_id, "song_id": song.song_id, "chunk_index": i,
                "start_s": start, "end_s": start + dur, "duration_s": dur, "padded_s": 0.0,
                "sample_rate": sample_rate, "channels": channels, "audio_path": rel,
                "audio_sha256": file_sha256(out_dir / rel), "song_sha256": song_sha,
                "separation_model": "none", "peak": float(np.max(np.abs(mono))),
                "rms_db": 20 * np.log10(max(rms, 1e-9)), "stem_paths": json.dumps(stems),
                "source_title": song.title, "source_artist": song.artist, "uploader": None, "channel": None,
                "url": None, "licence": song.licence, "source_path": song.file, "extractor": None,
                "tags": [], "categories": [], "source_moods": list(song.moods), "source_keywords": [],
                "source_genre": song.genre, "split_pin": song.split_pin,
            }
            if with_analysis:
                row.update({
                    "bpm": song.bpm, "bpm_confidence": 0.8, "key": song.key, "scale": song.scale, "key_strength": 0.7,
                    "beats": [round(k * 60.0 / song.bpm, 2) for k in range(int(dur * song.bpm / 60.0))] if song.bpm else [],
                    "loudness_lufs": -14.0 - i, "danceability": 1.1, "silence_ratio": 0.0,
                    "stem_drums_db": -6.0, "instrument": list(song.instruments), "flags": [],
                    "brightness_hz": 1500.0 + 100 * i, "source_vocals": song.file.startswith("Karissa"),
                    "instrument_method": "features", "genres": [song.genre] if song.genre else [],
                    "song_bpm": song.bpm, "song_key": song.key,
                    "title": song.title, "artist": song.artist, "genre": song.genre, "moods": list(song.moods),
                    "keywords": list(song.moods), "name": song.song_id,
                    "description": f"{song.genre or 'music'} instrumental, {', '.join(song.instruments) or 'unknown instruments'}",
                })
            row["excluded"] = song.excluded is not None
            row["exclude_reason"] = song.excluded or ""
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), out_dir / "chunks.parquet")
    report = {"counts": {"chunks": len(rows)}, "failures": [
        {"item": "456440__inspectorj__bird-whistling-robin-single-13.hq.ogg", "stage": "ingest",
         "reason": "2.7 s is shorter than the 5 s minimum", "kind": "too_short"}], "timings": {}, "cache_hits": {}}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    return out_dir


if __name__ == "__main__":  # python -m builders.fixture OUT_DIR [AUDIO_DIR]: a demo build from the real clips
    import sys

    from .dataset import build_dataset

    out = Path(sys.argv[1])
    audio = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared" / "audio"
    demo = PipelineConfig()
    demo.build.version = "demo"
    print(build_dataset(write_fixture_build(out, audio), demo).to_dict())
