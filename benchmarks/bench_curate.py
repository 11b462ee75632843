"""Benchmark scripts/curate.py: how long a re-curation takes on the tests' build and on 10,000 rows.

    python benchmarks/bench_curate.py [--rows 10000] [--audio-s 0.25] [--out /tmp/mm-bench-curate] [--skip-fixture]

1. The tests' build (tests/test_curate.py's parent: 11 chunks of real clips, 16 s each but one) is
   written with builders.fixture, then curated with ``--min-seconds 15``: in-process (builders.curate)
   and through the command line (Python start-up and imports included).
2. A synthetic build of ``--rows`` rows (songs of 10 chunks; 12 genres drawn with Zipf-like frequencies,
   moods, instruments, tempi, keys; 10 % of the rows shorter than 15 s) is written, its exports built
   once (the parent), and curated with ``--min-seconds 15``. Every row's file holds ``--audio-s``
   seconds of audio (0.25 s: 16 KB), so the figures measure the per-row work: linking, the Parquet,
   manifests, sidecars, card and plots. The hf/ export embeds the audio bytes, so with 30 s chunks
   (1.9 MB each) that copy adds the time to read and write them (about 19 GB for 10,000 chunks).

Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from builders import build_dataset  # noqa: E402
from builders.curate import CurationSettings, curate  # noqa: E402
from processing.config import PipelineConfig  # noqa: E402

GENRES = ("jazz", "rock", "ambient", "hip hop", "folk", "classical", "electronic", "funk", "latin", "metal", "reggae", "blues")
MOODS = ("calm", "happy", "dark", "energetic", "mellow", "epic")
INSTRUMENTS = ("piano", "guitar", "drums", "bass", "strings", "synth", "brass")


def write_synthetic_build(out: Path, rows: int, audio_s: float, per_song: int = 10) -> None:
    rng = np.random.default_rng(0)
    freq = 1.0 / np.arange(1, len(GENRES) + 1) ** 1.2
    song_genre = rng.choice(len(GENRES), size=rows // per_song + 1, p=freq / freq.sum())
    audio = (0.1 * rng.standard_normal(int(audio_s * 32000))).astype(np.float32)
    table = []
    for i in range(rows):
        s = i // per_song
        song, cid = f"song-{s:05d}", f"song-{s:05d}-{i % per_song:03d}"
        rel = f"audio/{song}/{cid}.wav"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, audio, 32000, subtype="PCM_16")
        duration = 30.0 if rng.random() > 0.1 else float(rng.uniform(5, 15))
        table.append({
            "chunk_id": cid, "song_id": song, "chunk_index": i % per_song, "start_s": 30.0 * (i % per_song),
            "end_s": 30.0 * (i % per_song) + duration, "duration_s": duration, "padded_s": 0.0, "sample_rate": 32000,
            "channels": 1, "audio_path": rel, "audio_sha256": f"{i:064x}", "song_sha256": f"{s:064x}",
            "separation_model": "htdemucs", "peak": 0.4, "rms_db": -20.0, "stem_paths": "{}", "licence": "CC-BY-4.0",
            "source_title": song, "source_artist": "bench", "genre": GENRES[song_genre[s]],
            "moods": list(rng.choice(MOODS, size=2, replace=False)), "instrument": list(rng.choice(INSTRUMENTS, size=3, replace=False)),
            "bpm": float(rng.uniform(60, 170)), "key": "CDEFGAB"[s % 7], "scale": "major" if s % 3 else "minor",
            "description": f"a {GENRES[song_genre[s]]} instrumental", "excluded": bool(rng.random() < 0.02),
            "exclude_reason": "", "flags": [],
        })
        if table[-1]["excluded"]:
            table[-1].update(exclude_reason="residual_vocals", flags=["residual_vocals"])
    pq.write_table(pa.Table.from_pylist(table), out / "chunks.parquet")
    (out / "config.json").write_text(json.dumps(PipelineConfig().to_dict()))
    (out / "report.json").write_text("{}")


def timed_curate(parent: Path, out: Path, profile: bool = False) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    result = curate(parent, out, CurationSettings(min_seconds=15.0))
    if prof:
        prof.disable()
    figures = {"curate_s": round(time.perf_counter() - t0, 2), "kept": result.kept, "removed": result.removed,
               "linked": result.linked, "copied": result.copied}
    if prof:
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(18)
        figures["profile_top"] = [line.strip() for line in text.getvalue().splitlines() if "{" not in line and line.strip()][6:24]
    return figures


def cli_curate(parent: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts" / "curate.py"), str(parent), "--out", str(out), "--min-seconds", "15"],
                   check=True, capture_output=True)
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--audio-s", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mm-bench-curate"))
    ap.add_argument("--skip-fixture", action="store_true", help="only the synthetic build")
    ap.add_argument("--profile", action="store_true", help="print the functions the synthetic curation spends most in")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)

    if not args.skip_fixture:
        from builders.fixture import write_fixture_build
        from conftest import SHARED_AUDIO
        from test_curate import SONGS

        parent = write_fixture_build(args.out / "tests-build", SHARED_AUDIO, songs=SONGS, chunk_s=16.0, max_chunks=3)
        cfg = PipelineConfig()
        cfg.build.version = "v1"
        t0 = time.perf_counter()
        build_dataset(parent, cfg)
        build_s = time.perf_counter() - t0
        figures = timed_curate(parent, args.out / "tests-curated")
        print(json.dumps({"build": "the tests' build (11 chunks)", "parent_build_step_s": round(build_s, 2), **figures,
                          "cli_wall_s": cli_curate(parent, args.out / "tests-curated-cli")}))

    parent = args.out / "synthetic"
    t0 = time.perf_counter()
    write_synthetic_build(parent, args.rows, args.audio_s)
    written = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = PipelineConfig()
    cfg.build.version = "bench"
    build_dataset(parent, cfg)
    build_s = time.perf_counter() - t0
    figures = timed_curate(parent, args.out / "synthetic-curated", profile=args.profile)
    print(json.dumps({"build": f"synthetic, {args.rows} rows of {args.audio_s} s audio", "write_s": round(written, 1),
                      "parent_build_step_s": round(build_s, 2), **figures,
                      "cli_wall_s": cli_curate(parent, args.out / "synthetic-curated-cli")}))


if __name__ == "__main__":
    main()
