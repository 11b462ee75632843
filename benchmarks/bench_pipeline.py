#!/usr/bin/env python3
"""End-to-end build benchmark: a whole `scripts/build.py` run, measured from outside.

    python benchmarks/bench_pipeline.py [--songs 16] [--seconds 240] [--model none|offline|htdemucs]
        [--device cpu|cuda] [--workers 1 2 ...] [--baseline] [--clips] [--warm] [--work DIR]
    python benchmarks/bench_pipeline.py --long 240 1200 [--workers 2 1] [--work DIR]   # one long song each

Songs are synthetic (processing.demo.synth: stereo 44.1 kHz with a sung melody, each song its own seed),
written once to the work folder; `--clips` uses the real clips of ../shared/audio instead. With
`--model htdemucs` the model has RANDOM weights of the released htdemucs shape (41,984,456 parameters;
nothing can be downloaded here): speed and memory are the real model's, its output is meaningless.

For each `--workers` value it runs one cold build (start-up included: a fresh `scripts/build.py`
process, as a user runs it) and prints: wall seconds and x real time (seconds of input audio per wall
second), the report's busy seconds per stage (summed over workers), the peak memory of the whole
process tree (sum of RSS, and of PSS, which counts pages shared between processes once), and on CUDA
the GPU's busy share (nvidia-smi, sampled every 250 ms). `--baseline` adds the serial reference: the
first 8 songs with `--workers 1` and one song per model batch. `--warm` also times a rebuild from the
cache. `--long S1 S2 ...` runs the one-long-song case instead of the many-songs case: for each length one
synthetic song of that many seconds, a cold build for each `--workers` value, and the same figures per song
(a song's length must not set the build's memory: issue 20). Songs over 20 minutes are synthesised and written
20 minutes at a time (a 3-hour song is never held whole here either). Figures only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from proc_tree import process_tree  # noqa: E402  (tests/)

SHARED = REPO.parent / "shared" / "audio"
RELEASED_HTDEMUCS = dict(channels=48, depth=4, nfft=4096, bottom_channels=512, dconv_mode=3, t_layers=5,
                         t_dropout=0.02, segment=Fraction(39, 5))


# ----------------------------------------------------------------------------- inputs


PIECE_S = 1200.0  # longer songs are synthesised and written this many seconds at a time


def _write_song(path: Path, i: int, seconds: float) -> None:
    import soundfile as sf

    from processing.demo.synth import synth_song

    tmp = path.with_suffix(".partial.flac")
    pieces = [min(PIECE_S, seconds - k * PIECE_S) for k in range(int(-(-seconds // PIECE_S)))]
    with sf.SoundFile(str(tmp), "w", samplerate=44100, channels=2, format="FLAC", subtype="PCM_16") as fh:
        for k, piece_s in enumerate(pieces):  # one piece: the song as before; more: each its own seed
            song = synth_song(bpm=90 + (i * 7) % 80, key=["C", "D", "E", "F", "G", "A", "B"][i % 7],
                              scale="minor" if i % 2 else "major", duration_s=piece_s, vocals=True, seed=i + 1000 * k,
                              through_composed=True)
            assert song.mix.sample_rate == 44100
            fh.write(song.mix.samples.T)
            del song
    tmp.replace(path)


def synthetic_songs(folder: Path, count: int, seconds: float) -> list[Path]:
    """`count` different songs of `seconds` each, written once (FLAC, on every core) and reused by later runs."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song-{i:03d}-{int(seconds)}s.flac" for i in range(count)]
    missing = [(p, i) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        with ProcessPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 1)) as pool:
            list(pool.map(_write_song, *zip(*missing), [seconds] * len(missing)))
    return paths


def released_shape_weights(folder: Path) -> Path:
    """A demucs repo folder holding random weights of the released htdemucs shape (made once)."""
    if not (folder / "htdemucs.yaml").exists():
        import torch
        from demucs.htdemucs import HTDemucs

        import tiny_demucs

        torch.manual_seed(0)
        model = HTDemucs(sources=list(tiny_demucs.SOURCES), **RELEASED_HTDEMUCS).eval()
        tiny_demucs.save_repo(folder, models=[model])
    return folder


# ----------------------------------------------------------------------------- measuring from outside


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB of one process; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Peak summed RSS and PSS of a process tree, and GPU utilisation samples, every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.25, gpu: bool = False):
        super().__init__(daemon=True)
        self.pid, self.interval, self.gpu = pid, interval, gpu
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.gpu_samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            rss = pss = 0
            for pid in process_tree(self.pid):
                r, p = _memory_kb(pid)
                rss, pss = rss + r, pss + p
            self.peak_rss_kb, self.peak_pss_kb = max(self.peak_rss_kb, rss), max(self.peak_pss_kb, pss)
            if self.gpu:
                self.gpu_samples.append(_gpu_busy())
            self.stop.wait(self.interval)


def _gpu_busy() -> float:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
        return float(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return float("nan")


# ----------------------------------------------------------------------------- one build


def run_build(paths: list[Path], work: Path, label: str, args, workers: int, extra: list[str], warm: bool = False,
              out_of: str = "") -> dict:
    """One build.py run, measured; ``warm``: into the build folder of the run labelled ``out_of`` (its cache)."""
    sources = work / f"sources-{label}.txt"
    sources.write_text("".join(f"{p}\n" for p in paths))
    out = work / f"out-{out_of or label}"
    if not warm:
        shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(REPO / "scripts" / "build.py"), str(sources), "--out", str(out), "--no-progress",
           "--model", args.model, "--workers", str(workers), "--set", "ingest.min_duration_s=1", *extra]
    if args.model not in ("none", "offline"):
        cmd += ["--weights", str(released_shape_weights(work / "weights")), "--device", args.device]
    audio_s = 0.0
    import soundfile as sf

    for p in paths:
        audio_s += sf.info(str(p)).duration
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid, gpu=args.device.startswith("cuda"))
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        print(output)
        raise SystemExit(f"build {label} failed with exit code {proc.returncode}")
    report = json.loads((out / "report.json").read_text())
    gpu = [g for g in sampler.gpu_samples if g == g]
    result = {
        "label": label, "songs": len(paths), "workers": workers, "audio_s": audio_s, "wall_s": wall,
        "x_real_time": audio_s / wall, "busy_s": report.get("timings_s", {}),
        "peak_rss_mb": sampler.peak_rss_kb / 1024, "peak_pss_mb": sampler.peak_pss_kb / 1024,
        "gpu_busy_pct": sum(gpu) / len(gpu) if gpu else None, "chunks": report["counts"].get("chunks_included", 0),
        "failures": len(report.get("failures", [])),
    }
    busy = ", ".join(f"{k} {v:.1f}" for k, v in result["busy_s"].items())
    gpu_text = f", GPU busy {result['gpu_busy_pct']:.0f} %" if result["gpu_busy_pct"] is not None else ""
    print(f"{label:<28} {len(paths):3d} songs x {audio_s / len(paths):5.0f} s, workers {workers:2d}: "
          f"{wall:7.1f} s wall = {result['x_real_time']:7.1f}x real time; peak RSS {result['peak_rss_mb']:6.0f} MB "
          f"(PSS {result['peak_pss_mb']:6.0f} MB){gpu_text}; {result['chunks']} chunks, {result['failures']} failures",
          flush=True)
    print(f"{'':<28} busy s: {busy}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--songs", type=int, default=16)
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--model", default="none", help="none, offline or htdemucs (random released-shape weights)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the model's device)")
    p.add_argument("--workers", type=int, nargs="+", default=[os.cpu_count() or 1])
    p.add_argument("--baseline", action="store_true", help="also the serial reference: 8 songs, 1 worker, 1 song per batch")
    p.add_argument("--clips", action="store_true", help="the real clips of ../shared/audio instead of synthetic songs")
    p.add_argument("--warm", action="store_true", help="also rebuild from the cache")
    p.add_argument("--no-analyse", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="passed on to scripts/build.py")
    p.add_argument("--work", type=Path, help="keeps the synthetic songs and weights between runs")
    p.add_argument("--json", type=Path, help="also write every build's figures to this JSON file")
    p.add_argument("--long", type=float, nargs="+", metavar="SECONDS",
                   help="the one-long-song case: one synthetic song of each length (s), a cold build per --workers")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra = [a for o in args.overrides for a in ("--set", o)] + (["--no-analyse"] if args.no_analyse else [])
    if args.long:
        results = []
        for seconds in args.long:
            [path] = synthetic_songs(work / "songs", 1, seconds)
            print(f"long song ready at {time.perf_counter() - t0:.1f} s: {seconds:.0f} s; model {args.model}; "
                  f"{os.cpu_count()} CPU cores", flush=True)
            limit = ["--set", f"ingest.max_duration_s={max(3600.0, seconds + 1):g}"]  # the default refuses > 1 h
            for workers in args.workers:
                results.append(run_build([path], work, f"long-{seconds:.0f}s-w{workers}", args, workers, extra + limit))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        return
    paths = sorted(SHARED.glob("*.hq.ogg")) if args.clips else synthetic_songs(work / "songs", args.songs, args.seconds)
    print(f"inputs ready in {time.perf_counter() - t0:.1f} s: {len(paths)} songs; model {args.model} on {args.device}; "
          f"{os.cpu_count()} CPU cores", flush=True)
    results = []
    for workers in args.workers:
        results.append(run_build(paths, work, f"cold-w{workers}", args, workers, extra))
        if args.warm:
            results.append(run_build(paths, work, f"cached-w{workers}", args, workers, extra, warm=True,
                                     out_of=f"cold-w{workers}"))
    if args.baseline:
        results.append(run_build(paths[:8], work, "baseline-serial", args, 1,
                                 extra + ["--set", "separate.songs_per_group=1"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
