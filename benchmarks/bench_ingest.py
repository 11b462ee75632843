"""Ingest throughput and scale figures (prints them; no pass/fail).

    python benchmarks/bench_ingest.py [--urls 60] [--concurrency 4] [--index-songs 5000]

1. URL ingest: N URLs served by a local HTTP server (the real clips under
   distinct paths) -> wall time, items/s, MB/s; then the rerun (no network).
2. Local files: the same N as symlinks in a folder.
3. Duplicate index at scale: add/match time per song with N synthetic
   fingerprints (Chromaprint-sized, 950 items ~ 2 minutes), then a real
   re-encode found among them.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402

from http_fixtures import FixtureServer  # noqa: E402
from processing.config import IngestConfig  # noqa: E402
from processing.ingest.fingerprint import DuplicateIndex, Fingerprint, fingerprint_file  # noqa: E402
from processing.ingest.stream import ingest  # noqa: E402
from processing.types import SourceSpec  # noqa: E402

AUDIO = Path(os.environ.get("MUSIC_MIXER_SHARED_AUDIO", REPO.parent / "shared" / "audio"))
CLIPS = ["Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg",
         "admiralbob77_-_Choice_-_Drum-bass.hq.ogg", "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg",
         "198-209-0000.hq.ogg"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_urls(n: int, concurrency: int, work: Path) -> None:
    server = FixtureServer().start()
    sources, total_bytes = [], 0
    bodies = {name: (AUDIO / name).read_bytes() for name in CLIPS}  # shared: the server's memory stays small
    for i in range(n):
        body = bodies[CLIPS[i % len(CLIPS)]]
        total_bytes += len(body)
        sources.append(SourceSpec(server.add(f"/s/{i:05d}.ogg", body, "audio/ogg")))
    cfg = IngestConfig(concurrency=concurrency, retry_backoff_s=0.1)
    t = time.perf_counter()
    result = ingest(sources, cfg, work / "urls")
    wall = time.perf_counter() - t
    print(f"urls: {n} items, concurrency {concurrency}: {wall:.2f} s = {n / wall:.1f} items/s, "
          f"{total_bytes / wall / 1e6:.1f} MB/s; songs {len(result.songs)}, duplicates {len(result.duplicate_items)}, "
          f"failures {len(result.failures)}; requests {sum(server.hits.values())}")
    hits = sum(server.hits.values())
    t = time.perf_counter()
    again = ingest(sources, cfg, work / "urls")
    wall2 = time.perf_counter() - t
    print(f"urls rerun: {wall2:.2f} s = {n / wall2:.1f} items/s, requests made {sum(server.hits.values()) - hits}, "
          f"songs {len(again.songs)}")
    server.stop()


def bench_local(n: int, concurrency: int, work: Path) -> None:
    folder = work / "local"
    folder.mkdir()
    for i in range(n):
        os.symlink(AUDIO / CLIPS[i % len(CLIPS)], folder / f"{i:05d}.ogg")
    t = time.perf_counter()
    result = ingest([SourceSpec(str(folder))], IngestConfig(concurrency=concurrency), work / "dl-local")
    wall = time.perf_counter() - t
    print(f"local folder: {n} files: {wall:.2f} s = {n / wall:.1f} files/s; songs {len(result.songs)}, "
          f"duplicates {len(result.duplicate_items)}")


def bench_fingerprint() -> None:
    """Cold fingerprint cost per clip: decode + essentia Chromaprinter (the URL/local figures above reuse
    5 contents, so their fingerprints are cached)."""
    total_audio = total_wall = 0.0
    for name in CLIPS:
        t = time.perf_counter()
        fp = fingerprint_file(AUDIO / name)
        total_wall += time.perf_counter() - t
        total_audio += min(fp.duration_s, 120.0)
    print(f"fingerprint (Chromaprinter, first 120 s): {total_wall / len(CLIPS) * 1e3:.0f} ms per clip, "
          f"{total_audio / total_wall:.0f}x real time")


def bench_index(n: int) -> None:
    rng = np.random.default_rng(0)
    index = DuplicateIndex(threshold=0.9)
    t = time.perf_counter()
    for i in range(n):
        fp = Fingerprint(120.0, rng.integers(0, 2**32, 950, dtype=np.uint64).astype(np.uint32))
        assert index.match(fp) is None
        index.add(f"s{i}", fp)
    wall = time.perf_counter() - t
    hq = fingerprint_file(AUDIO / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg")
    lq = fingerprint_file(AUDIO / "Kevin_MacLeod_-_Vibe_Ace.lowq-22k-mono.ogg")
    index.add("vibe", hq)
    t2 = time.perf_counter()
    found = index.match(lq)
    print(f"dedup index: {n} songs added+matched in {wall:.2f} s ({wall / n * 1e3:.2f} ms/song); "
          f"re-encode found among them: {found[0] if found else None} ({found[1] if found else 0:.3f}) "
          f"in {(time.perf_counter() - t2) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--index-songs", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        bench_urls(args.urls, args.concurrency, work)
        bench_local(args.urls, args.concurrency, work)
    bench_fingerprint()
    bench_index(args.index_songs)
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
