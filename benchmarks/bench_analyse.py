"""Figures for the analyse stage: speed per 30 s chunk (the tagger's share beside the rest of
analysis), tempo error and key accuracy per KeyExtractor profile on synthetic audio with exact
ground truth.

    .venv/bin/python benchmarks/bench_analyse.py [--part speed|tagger|tempo|keys|all] [--seconds 12]

Prints figures only; nothing is asserted (unit tests check correctness).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing import audio_io  # noqa: E402
from processing.analyse.analyse import analyse_song  # noqa: E402
from processing.config import AnalyseConfig  # noqa: E402
from processing.analyse.features import ESSENTIA_RATE, KEY_PROFILES, key, measure, to_mono  # noqa: E402
from processing.demo.synth import NOTE_NAMES, synth_song  # noqa: E402
from processing.demo.testsignals import chord_progression, click_track  # noqa: E402
from processing.types import AudioData, Chunk, SeparatedSong, Song, SongMetadata  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
ESSENTIA_NAMES = {"A#": "Bb", "D#": "Eb", "G#": "Ab", "C#": "C#", "F#": "F#"}


def _song(tmp: Path, mix: AudioData, stems: dict[str, AudioData], chunk_s: float = 30.0):
    src = audio_io.write(tmp / "src.flac", mix)
    song = Song("bench", src, SongMetadata(), "0" * 64, mix.duration_s, mix.sample_rate, mix.channels)
    stem_paths = {n: audio_io.write(tmp / f"{n}.flac", s) for n, s in stems.items()}
    inst = mix if not stems else AudioData(sum(s.samples for n, s in stems.items() if n != "vocals"), mix.sample_rate)
    inst_path = audio_io.write(tmp / "inst.flac", inst)
    mono = to_mono(inst, 32000)
    chunks = []
    for i in range(int(mix.duration_s // chunk_s)):
        seg = mono[int(i * chunk_s * 32000) : int((i + 1) * chunk_s * 32000)]
        p = audio_io.write(tmp / f"c{i}.wav", AudioData(seg, 32000), "PCM_16")
        chunks.append(Chunk(f"bench-{i:03d}", "bench", i, i * chunk_s, (i + 1) * chunk_s, chunk_s, 32000, 1, p, "", 1.0, -20.0))
    return SeparatedSong(song, inst_path, stem_paths, mix.sample_rate, "htdemucs" if stems else "none"), chunks


def tagger_cost(repeats: int = 3) -> None:
    """The tagger alone on one 30 s chunk (32 kHz mono, as analysis gets it), one torch thread as in a worker;
    on a GPU machine also on the GPU (analyse.tagger_device), with the largest score difference to the CPU."""
    import torch

    from processing.analyse.analyse import _tagger

    name = "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"
    audio = audio_io.decode(SHARED / name) if (SHARED / name).is_file() else synth_song(bpm=120, duration_s=30.0).mix
    chunk = AudioData(to_mono(audio, 32000)[: 30 * 32000], 32000)
    scores = {}
    for device in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
        t = time.perf_counter()
        tagger = _tagger(AnalyseConfig(tagger_device=device))
        load = time.perf_counter() - t
        tagger.tag(chunk)  # warm-up
        t = time.perf_counter()
        for _ in range(repeats):
            tagger.tag(chunk)
        per_chunk = (time.perf_counter() - t) / repeats
        scores[device] = tagger.patch_scores(chunk)
        diff = f"; max |score - CPU score| {np.abs(scores[device] - scores['cpu']).max():.1e}" if device != "cpu" else ""
        print(f"tagger {tagger.name} on {device}: load {load:.2f} s once per process; {per_chunk:.3f} s per 30 s chunk "
              f"({tagger.threads} torch thread; MTT_musicnn + MSD_musicnn, 10 patches each){diff}")


def speed() -> None:
    measure(click_track(120, 3.0))  # import and JIT warm-up, not counted
    cases = []
    for name in ("Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"):
        if (SHARED / name).is_file():
            cases.append((name + " (no stems)", audio_io.decode(SHARED / name), {}))
    s = synth_song(bpm=124, duration_s=120.0, vocals=True)
    cases.append(("synth_song 120 s (4 stems)", s.mix, s.stems))
    for label, mix, stems in cases:
        for tagger in ("musicnn", "none"):
            cfg = AnalyseConfig(tagger=tagger)
            with tempfile.TemporaryDirectory() as tmp:
                sep, chunks = _song(Path(tmp), mix, stems)
                analyse_song(sep, chunks[:1], cfg)  # loads the tagger once (as each worker process does)
                t = time.perf_counter()
                analyse_song(sep, chunks, cfg)
                dt = time.perf_counter() - t
            audio_s = len(chunks) * 30.0
            print(f"speed  {label:40s} tagger={tagger:7s} {len(chunks)} chunks  {dt:6.2f} s  "
                  f"{dt / max(1, len(chunks)):5.2f} s/chunk  {audio_s / dt:5.1f}x real time")
    print(f"speed  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def tempo(seconds: float) -> None:
    errors = []
    for bpm in (70, 90, 100, 120, 128, 140, 160, 174):
        for label, audio in (("click", click_track(bpm, seconds)), ("synth", synth_song(bpm=bpm, duration_s=seconds, vocals=False, stereo=False).mix)):
            f = measure(audio)
            err = 100 * (f.bpm - bpm) / bpm
            errors.append(abs(err))
            print(f"tempo  {label:5s} {bpm:3d} BPM -> {f.bpm:7.2f} (conf {f.bpm_confidence:4.2f}, error {err:+5.2f} %)")
    print(f"tempo  within 2 %: {sum(e <= 2 for e in errors)}/{len(errors)}; median |error| {np.median(errors):.2f} %")


def keys(seconds: float) -> None:
    score = {p: 0 for p in KEY_PROFILES}
    n = 0
    for i, k in enumerate(NOTE_NAMES):
        truth = ESSENTIA_NAMES.get(k, k)
        for scale in ("major", "minor"):
            signals = [
                chord_progression(k, scale, bpm=90 + 3 * i, duration_s=seconds),
                synth_song(bpm=90 + 3 * i, key=k, scale=scale, duration_s=seconds, vocals=False, stereo=False, seed=i).mix,
            ]
            for audio in signals:
                x = to_mono(audio, ESSENTIA_RATE)
                n += 1
                for p in KEY_PROFILES:
                    got = key(x, p)
                    score[p] += (got[0], got[1]) == (truth, scale)
    for p, s in sorted(score.items(), key=lambda kv: -kv[1]):
        print(f"keys   {p:14s} {s:3d}/{n} right ({100 * s / n:5.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="all", choices=["speed", "tagger", "tempo", "keys", "all"])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each synthetic signal")
    args = parser.parse_args()
    if args.part in ("tagger", "speed", "all"):
        tagger_cost()
    if args.part in ("speed", "all"):
        speed()
    if args.part in ("tempo", "all"):
        tempo(args.seconds)
    if args.part in ("keys", "all"):
        keys(args.seconds)


if __name__ == "__main__":
    main()
