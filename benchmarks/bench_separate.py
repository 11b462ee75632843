#!/usr/bin/env python3
"""Separation speed: the offline separator, and Demucs batched vs ``apply_model`` per song.

    python benchmarks/bench_separate.py [--seconds 30] [--songs 2] [--device cpu|cuda|auto]
        [--batch-segments N] [--bf16] [--threads N] [--skip-offline] [--skip-demucs] [--skip-reference]

Demucs runs with RANDOM weights of the released htdemucs shape (41,984,456
parameters; no weights can be downloaded here): speed and memory are those of
the real model, the separated audio is meaningless. The songs are synthetic
(processing.demo.synth), stereo 44.1 kHz. Prints seconds, x-real-time (seconds of
audio per second of compute), peak memory, and the largest difference between
the batched path and ``demucs.apply.apply_model`` run song by song.
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from processing.config import SeparateConfig  # noqa: E402
from processing.separate.demucs_separator import DemucsSeparator  # noqa: E402
from processing.separate.offline_separator import OfflineSeparator  # noqa: E402
from processing.demo.synth import synth_song  # noqa: E402
from processing.types import AudioData  # noqa: E402

RELEASED_HTDEMUCS = dict(channels=48, depth=4, nfft=4096, bottom_channels=512, dconv_mode=3, t_layers=5,
                         t_dropout=0.02, segment=Fraction(39, 5))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _line(label: str, seconds: float, audio_s: float, extra: str = "") -> None:
    print(f"{label:<44} {seconds:8.2f} s  {audio_s / seconds:8.2f}x real time  {extra}", flush=True)


def bench_offline(songs) -> None:
    sep = OfflineSeparator()
    sep.separate(songs[0].mix)  # warm-up: librosa's lazy imports and FFT plans
    audio_s = sum(s.mix.duration_s for s in songs)
    start = time.perf_counter()
    sep.separate_many([s.mix for s in songs])
    _line(f"offline-repet ({len(songs)} songs)", time.perf_counter() - start, audio_s,
          f"peak RSS {_peak_rss_mb():.0f} MB")


def bench_demucs(songs, args) -> None:
    import tiny_demucs
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=list(tiny_demucs.SOURCES), **RELEASED_HTDEMUCS).eval()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory(prefix="bench-demucs-") as tmp:
        tiny_demucs.save_repo(Path(tmp), models=[model])
        batching = {} if args.batch_segments is None else {"batch_segments": args.batch_segments,
                                                             "cpu_batch_segments": args.batch_segments}
        cfg = SeparateConfig(weights=Path(tmp), device=args.device, bf16=args.bf16, shifts=args.shifts, **batching)
        start = time.perf_counter()
        sep = DemucsSeparator(cfg)
        load_s = time.perf_counter() - start
    print(f"htdemucs (random weights, {params:,} params) on {sep.device}, {sep.batch_segments} segments per forward, "
          f"bf16={cfg.bf16}, shifts={cfg.shifts}; load {load_s:.2f} s", flush=True)
    mixes = [s.mix for s in songs]
    audio_s = sum(m.duration_s for m in mixes)
    cuda = sep.device.type == "cuda"
    # warm-up (allocator, kernels, cudnn plans) so the first timed path does not pay for both
    sep.separate_many([AudioData(mixes[0].samples[:, : mixes[0].sample_rate], mixes[0].sample_rate)])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    batched = sep.separate_many(mixes)
    if cuda:
        torch.cuda.synchronize()
    mem = f"peak CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MB" if cuda else f"peak RSS {_peak_rss_mb():.0f} MB"
    _line(f"batched separate_many ({len(mixes)} songs)", time.perf_counter() - start, audio_s, mem)
    if args.skip_reference:
        return
    start = time.perf_counter()
    worst = 0.0
    for mix, stems in zip(mixes, batched):
        wav = torch.from_numpy(mix.samples)
        ref = wav.mean(0)
        mean, std = ref.mean(), ref.std() + 1e-8
        random.seed(cfg.seed)
        out = apply_model(sep.bag, ((wav - mean) / std)[None], shifts=cfg.shifts, overlap=cfg.overlap,
                          device=sep.device)[0]
        out = (out.cpu() * std + mean).numpy()
        got = np.stack([stems[n].samples for n in sep.stems])
        worst = max(worst, float(np.abs(got - out).max()))
    if cuda:
        torch.cuda.synchronize()
    _line("apply_model song by song (demucs's own path)", time.perf_counter() - start, audio_s,
          f"max |batched - apply_model| = {worst:.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each synthetic song")
    p.add_argument("--songs", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--batch-segments", type=int, default=None,
                   help="segments per forward pass (default: the separator's, 64 on CUDA)")
    p.add_argument("--shifts", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (for CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--skip-offline", action="store_true")
    p.add_argument("--skip-demucs", action="store_true")
    p.add_argument("--skip-reference", action="store_true", help="skip apply_model song by song")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.songs} synthetic stereo 44.1 kHz songs x {args.seconds:g} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    songs = [synth_song(duration_s=args.seconds, seed=i, bpm=100 + 7 * i) for i in range(args.songs)]
    if not args.skip_offline:
        bench_offline(songs)
    if not args.skip_demucs:
        bench_demucs(songs, args)


if __name__ == "__main__":
    main()
