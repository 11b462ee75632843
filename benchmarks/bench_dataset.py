"""Benchmark the build step: time and peak memory of build_dataset, shard sizes, load speed.

    python benchmarks/bench_dataset.py [--chunks 120] [--chunk-s 30] [--shard-mb 100] [--out /tmp/mm-bench]

Writes a contract-following build folder of synthetic 32 kHz mono chunks (noise
with a tone per song; the build step never looks at the content), then runs
build_dataset with referenced and with embedded audio, each in a fresh child
process so that its peak RSS is its own. Prints the figures.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builders import build_dataset  # noqa: E402
from processing.config import PipelineConfig  # noqa: E402


def write_synthetic_build(out: Path, chunks: int, chunk_s: float, per_song: int = 6) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(chunks):
        song = f"song-{i // per_song:04d}"
        cid = f"{song}-{i % per_song:03d}"
        rel = f"audio/{song}/{cid}.wav"
        t = np.arange(int(chunk_s * 32000)) / 32000
        audio = 0.3 * np.sin(2 * np.pi * (110 + i) * t) + 0.05 * rng.standard_normal(t.size)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, audio.astype(np.float32), 32000, subtype="PCM_16")
        rows.append({
            "chunk_id": cid, "song_id": song, "chunk_index": i % per_song, "start_s": (i % per_song) * chunk_s,
            "end_s": (i % per_song + 1) * chunk_s, "duration_s": chunk_s, "padded_s": 0.0, "sample_rate": 32000,
            "channels": 1, "audio_path": rel, "audio_sha256": "", "song_sha256": "", "separation_model": "htdemucs",
            "peak": 0.45, "rms_db": -13.0, "stem_paths": "{}", "licence": "CC-BY-4.0", "source_title": song,
            "source_artist": "bench", "bpm": 90.0 + i % 40, "key": "C", "scale": "major", "instrument": ["piano"],
            "genre": "test", "moods": ["calm"], "description": "synthetic tone", "excluded": False, "exclude_reason": "",
        })
    pq.write_table(pa.Table.from_pylist(rows), out / "chunks.parquet")
    (out / "config.json").write_text(json.dumps(PipelineConfig().to_dict()))
    (out / "report.json").write_text("{}")


def _run(build: str, embed: bool, shard_mb: int, queue) -> None:
    cfg = PipelineConfig()
    cfg.build.embed_audio = embed
    cfg.build.shard_max_mb = shard_mb
    t0 = time.perf_counter()
    art = build_dataset(Path(build), cfg)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shards = [p for ps in art.data_files.values() for p in ps]
    queue.put({
        "embed_audio": embed, "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb, 1),
        "chunks": art.total_chunks, "hours": round(art.total_hours, 3),
        "data_shards": len(shards), "largest_shard_mb": round(max(p.stat().st_size for p in shards) / 2**20, 1),
        "hf_mb": round(sum(p.stat().st_size for p in (art.hf_dir / "data").glob("*.parquet")) / 2**20, 1),
        "audio_hours_per_s": round(art.total_hours / seconds, 3),
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=120)
    ap.add_argument("--chunk-s", type=float, default=30.0)
    ap.add_argument("--shard-mb", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mm-bench-dataset"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    t0 = time.perf_counter()
    write_synthetic_build(args.out, args.chunks, args.chunk_s)
    audio_mb = sum(p.stat().st_size for p in (args.out / "audio").rglob("*.wav")) / 2**20
    print(f"synthetic build: {args.chunks} chunks x {args.chunk_s:.0f} s, {audio_mb:.0f} MB of WAV, written in {time.perf_counter() - t0:.1f} s")
    ctx = mp.get_context("spawn")
    for embed in (False, True):
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(str(args.out), embed, args.shard_mb, queue))
        proc.start()
        result = queue.get()
        proc.join()
        print(json.dumps(result))
    # read speed of the HF folder with datasets (decoding every row)
    import datasets

    t0 = time.perf_counter()
    ds = datasets.load_dataset(str(args.out / "hf"), split="train", cache_dir=str(args.out / ".hf-cache"))
    prepared = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = min(len(ds), 50)
    for i in range(n):
        assert ds[i]["audio"]["array"].shape[0] == int(args.chunk_s * 32000)
    print(json.dumps({"hf_load_prepare_s": round(prepared, 2), "decode_rows_per_s": round(n / (time.perf_counter() - t0), 1)}))


if __name__ == "__main__":
    main()
