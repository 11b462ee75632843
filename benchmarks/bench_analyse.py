"""Figures for the analyse stage: speed per 30 s chunk (the tagger's share beside the rest of
analysis); tempo Acc1/Acc2 of each analyse.tempo method (essentia, rnn) on synthetic audio with exact
tempo and on copies of the real clips played at known speeds, with their cost; key accuracy per
KeyExtractor profile on synthetic audio with exact ground truth.

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
from processing.analyse import beats as beat_tempo  # noqa: E402
from processing.analyse.features import ESSENTIA_RATE, KEY_PROFILES, key, measure, to_mono  # noqa: E402
from processing.analyse.features import tempo as essentia_tempo  # noqa: E402
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


def _tempo_of(method: str, audio: AudioData) -> tuple[float, str]:
    """(bpm, rule) by one tempo method on one piece of audio, as analysis measures a chunk."""
    if method == "essentia":
        bpm, _conf, _ticks = essentia_tempo(to_mono(audio, ESSENTIA_RATE))
        return bpm, "essentia"
    from processing.analyse.analyse import _activations

    est = beat_tempo.estimate(_activations(audio, AnalyseConfig()))
    return est.bpm, est.rule


def _acc(bpm: float, truth: float) -> tuple[bool, bool]:
    """(Acc1, Acc2): within 4 % of the truth; of the truth or its double, half, triple or third."""
    ok = lambda factor: truth > 0 and abs(bpm - truth * factor) <= 0.04 * truth * factor  # noqa: E731
    return ok(1.0), any(ok(f) for f in (1.0, 2.0, 0.5, 3.0, 1 / 3))


def _tally(counts: list[int], bpm: float, truth: float) -> str:
    """Count one reading into [Acc1, Acc2, n] and return its mark: ok (Acc1), x2 (Acc2 only) or --."""
    a1, a2 = _acc(bpm, truth)
    counts[0] += a1
    counts[1] += a2
    counts[2] += 1
    return "ok" if a1 else ("x2" if a2 else "--")


def tempo(seconds: float) -> None:
    """Acc1/Acc2 of each tempo method (analyse.tempo) on synthetic click and drum tracks at 60-200 BPM and on
    copies of the real clips resampled or time-stretched by known factors (truth: the factor times the
    method's own reading of the original, so a method is judged on consistency, not on our guess of the
    clip's tempo); then the cost per 30 s chunk."""
    import librosa
    import soxr

    methods = ("essentia", "rnn")
    synthetic = []
    for bpm in range(60, 201, 10):
        synthetic.append((f"click {bpm}", float(bpm), click_track(bpm, seconds)))
        synthetic.append((f"drums {bpm}", float(bpm), synth_song(bpm=bpm, duration_s=seconds, vocals=False, chords=False,
                                                                 bass=False, stereo=False, seed=bpm).mix))
        synthetic.append((f"band {bpm}", float(bpm), synth_song(bpm=bpm, duration_s=seconds, vocals=False, stereo=False,
                                                                seed=bpm).mix))
    score = {m: [0, 0, 0] for m in methods}
    for label, truth, audio in synthetic:
        line = []
        for m in methods:
            bpm, rule = _tempo_of(m, audio)
            mark = _tally(score[m], bpm, truth)
            line.append(f"{m} {bpm:6.1f} {mark}{' (' + rule + ')' if rule.startswith('octave') else ''}")
        print(f"tempo  {label:10s} " + "   ".join(line))
    for m in methods:
        a1, a2, n = score[m]
        print(f"tempo  synthetic {m:8s} Acc1 {a1}/{n} ({100 * a1 / n:.0f} %)  Acc2 {a2}/{n} ({100 * a2 / n:.0f} %)")

    real = {m: [0, 0, 0] for m in methods}
    for name in ("Kevin_MacLeod_-_Vibe_Ace.hq.ogg", "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg",
                 "admiralbob77_-_Choice_-_Drum-bass.hq.ogg", "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"):
        if not (SHARED / name).is_file():
            continue
        x = to_mono(audio_io.decode(SHARED / name), 44100)[: int(20 * 44100)].astype(np.float64)
        copies = [("original", 1.0, x)]
        copies += [(f"resampled x{r}", 1 / r, soxr.resample(x, 44100, int(44100 * r))) for r in (0.85, 1.15)]
        copies += [(f"stretched x{r}", r, librosa.effects.time_stretch(x.astype(np.float32), rate=r)) for r in (0.8, 1.25)]
        for m in methods:
            base = None
            readings = []
            for label, factor, y in copies:
                bpm, _rule = _tempo_of(m, AudioData(y.astype(np.float32), 44100))
                if base is None:
                    base = bpm
                    readings.append(f"{bpm:.1f}")
                    continue
                readings.append(f"{label} {bpm:.1f} ({_tally(real[m], bpm, base * factor)})")
            print(f"tempo  {name[:28]:28s} {m:8s} " + ", ".join(readings))
    for m in methods:
        a1, a2, n = real[m]
        if n:
            print(f"tempo  transformed real clips {m:8s} Acc1 {a1}/{n}  Acc2 {a2}/{n} (truth: factor x own reading of the original)")

    clip = synth_song(bpm=124, duration_s=30.0, vocals=False).mix
    for m in methods:
        _tempo_of(m, clip)  # loads the network / builds the algorithm once, as a worker does
        t = time.process_time()
        for _ in range(3):
            _tempo_of(m, clip)
        print(f"tempo  cost {m:8s} {(time.process_time() - t) / 3:.2f} core-seconds per 30 s chunk (tempo alone)")
    for m in methods:
        cfg = AnalyseConfig(tempo=m)
        with tempfile.TemporaryDirectory() as tmp:
            sep, chunks = _song(Path(tmp), clip, {})
            analyse_song(sep, chunks, cfg)
            t = time.process_time()
            analyse_song(sep, chunks, cfg)
            print(f"tempo  analysis with tempo={m:8s} {time.process_time() - t:.2f} core-seconds per 30 s chunk "
                  f"(whole analyse_song of a 30 s song, tagger included)")


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
