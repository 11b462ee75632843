#!/usr/bin/env python3
"""End-to-end build benchmark on the real clips in ../shared/audio.

Prints per-stage seconds, audio seconds processed per wall second, and peak memory,
for a cold build and for a warm rebuild (everything from the cache).

    python benchmarks/bench_pipeline.py [--model offline|none|htdemucs] [--weights PATH] [--repeat-songs N]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from processing.config import load_config  # noqa: E402
from processing.pipeline import run_build  # noqa: E402
from processing.types import SourceSpec  # noqa: E402

SHARED = REPO.parent / "shared" / "audio"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="offline")
    p.add_argument("--weights")
    p.add_argument("--no-analyse", action="store_true")
    args = p.parse_args()
    clips = sorted(SHARED.glob("*.hq.ogg"))
    sources = [SourceSpec(str(c)) for c in clips]
    work = Path(tempfile.mkdtemp(prefix="mm-bench-"))
    overrides = [f"out_dir={work / 'out'}", f"cache_dir={work / 'cache'}", f"separate.model={args.model}",
                 "progress=false"]
    if args.weights:
        overrides.append(f"separate.weights={args.weights}")
    if args.no_analyse:
        overrides += ["analyse.enabled=false", "build.exports=[]"]
    try:
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            result = run_build(load_config(None, overrides), sources)
            wall = time.perf_counter() - t0
            audio_s = sum(s for s in [r["duration_s"] for r in result.rows])
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.report.timings_s.items())
            print(f"{label}: {len(sources)} songs, {len(result.rows)} chunks ({audio_s:.0f} s of output audio) "
                  f"in {wall:.2f} s wall = {audio_s / wall:.1f}x real time; {stages}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak_mb:.0f} MB (model {args.model})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
