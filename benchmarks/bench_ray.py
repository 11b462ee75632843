#!/usr/bin/env python3
"""The Ray executor against itself and the local executor: the same build on local Ray clusters of 1, 2
and all CPUs, and with the local executor on as many worker processes.

    python benchmarks/bench_ray.py [--songs 6] [--seconds 60] [--model none|offline] [--cpus 1 2 8]
        [--no-local] [--work DIR]

Songs are synthetic (processing.demo.synth, as benchmarks/bench_pipeline.py), written once to the work
folder. Every build is cold (fresh build folder and stage cache) and runs in this process: for Ray, a
local cluster of N CPUs started with ``ray.init(num_cpus=N)`` (its start-up is printed apart, not counted)
and shut down after; for the local executor, N worker processes. Printed per N: wall seconds, x real time,
the speed-up over one CPU, and the overhead of Ray against the local executor on the same N
(Ray wall / local wall - 1; it includes Ray starting its worker processes, which import the pipeline cold,
and moving songs through its object store). Every build's dataset is checked to be the same (chunk ids
and audio sha256). Figures only; nothing else is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "benchmarks", REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench_pipeline import synthetic_songs  # noqa: E402


def one_build(paths: list[Path], out: Path, model: str, executor, cpus: int) -> tuple[float, list[tuple[str, str]]]:
    from processing.config import load_config
    from processing.pipeline import run_build
    from processing.types import SourceSpec

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(None, [f"out_dir={out}", f"separate.model={model}", "progress=false", f"workers={cpus}",
                             "ingest.min_duration_s=1", "build.exports=[parquet]"])
    start = time.perf_counter()
    result = run_build(cfg, [SourceSpec(str(p)) for p in paths], executor)
    wall = time.perf_counter() - start
    if result.report.failures:
        raise SystemExit(f"{out}: {result.report.failures}")
    return wall, [(r["chunk_id"], r["audio_sha256"]) for r in result.rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--songs", type=int, default=6)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--model", default="none", choices=["none", "offline"])
    p.add_argument("--cpus", type=int, nargs="+", help="cluster sizes (default: 1, 2 and all CPUs)")
    p.add_argument("--no-local", action="store_true", help="skip the local executor's builds (no overhead figure)")
    p.add_argument("--work", type=Path, help="keeps the synthetic songs between runs")
    args = p.parse_args()

    import ray

    from processing.executors.local import LocalExecutor
    from processing.executors.ray import RayExecutor

    work = args.work or Path(tempfile.mkdtemp(prefix="mm-bench-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = synthetic_songs(work / "songs", args.songs, args.seconds)
    audio_s = args.songs * args.seconds
    all_cpus = os.cpu_count() or 1
    sizes = sorted(set(args.cpus or [1, 2, all_cpus]))
    print(f"{args.songs} songs x {args.seconds:g} s ({audio_s / 60:.1f} min of audio), model {args.model}, "
          f"{all_cpus} CPU cores on this machine, ray {ray.__version__}", flush=True)

    datasets: dict[str, list] = {}
    ray_wall: dict[int, float] = {}
    local_wall: dict[int, float] = {}
    for n in sizes:
        t0 = time.perf_counter()
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - t0
        try:
            ray_wall[n], datasets[f"ray-{n}"] = one_build(paths, work / f"ray-{n}", args.model, RayExecutor(), n)
        finally:
            ray.shutdown()
        print(f"ray   {n:2d} CPUs: {ray_wall[n]:7.1f} s wall = {audio_s / ray_wall[n]:6.1f}x real time "
              f"(cluster start-up {started:.1f} s, not counted)", flush=True)
        if not args.no_local:
            local_wall[n], datasets[f"local-{n}"] = one_build(paths, work / f"local-{n}", args.model, LocalExecutor(n), n)
            print(f"local {n:2d} CPUs: {local_wall[n]:7.1f} s wall = {audio_s / local_wall[n]:6.1f}x real time", flush=True)

    same = len({tuple(d) for d in datasets.values()}) == 1
    print(f"\nsame dataset (chunk ids and audio sha256) from every build: {'yes' if same else 'NO'}")
    base = ray_wall[sizes[0]]
    title = f"speed-up over {sizes[0]} CPU{'s' if sizes[0] > 1 else ''}"
    print(f"{'CPUs':>4}  {'ray wall s':>10}  {title:>19}  {'local wall s':>12}  {'ray overhead':>12}")
    for n in sizes:
        local = f"{local_wall[n]:12.1f}" if n in local_wall else f"{'-':>12}"
        overhead = f"{(ray_wall[n] / local_wall[n] - 1) * 100:+11.0f}%" if n in local_wall else f"{'-':>12}"
        print(f"{n:4d}  {ray_wall[n]:10.1f}  {base / ray_wall[n]:18.2f}x  {local}  {overhead}")


if __name__ == "__main__":
    main()
