"""Figures for "is this music?": every cue and the verdict of ``processing.analyse.musicness`` on a wide
set of sounds with a known answer, beyond the clips the tests were written on.

    .venv/bin/python benchmarks/bench_musicness.py [--seconds 10 20] [--seeds 2] [--json out.json]

The set: the real clips of ../shared/audio cut into excerpts of each length at several offsets; copies of
them resampled by 0.85 and 1.15 (pitch and tempo move together), pitch-shifted by -3 and +3 semitones and
time-stretched by 0.8 and 1.25 (librosa); mixed with pink noise at 10 and 0 dB SNR and with whale-like
moans; and the synthetic classes of ``processing.demo.soundscapes`` (music without a steady beat, noisy
music, animal sounds, weather, noise), each with several seeds. Prints one line per sound (its cues,
whether it was judged music and whether that is right) and, per class, how many were right and the
margins of each threshold. Nothing is asserted (tests/test_musicness.py checks the rule).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing import audio_io  # noqa: E402
from processing.analyse import beats, musicness  # noqa: E402
from processing.analyse.analyse import analyse_audio  # noqa: E402
from processing.analyse.tag_facts import GENRE_TAGS  # noqa: E402
from processing.config import AnalyseConfig  # noqa: E402
from processing.demo import soundscapes  # noqa: E402
from processing.types import AudioData  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
# real clips: file -> (is music, class)
REAL = {
    "Kevin_MacLeod_-_Vibe_Ace.hq.ogg": (True, "real music"),
    "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg": (True, "real music"),
    "admiralbob77_-_Choice_-_Drum-bass.hq.ogg": (True, "real music"),
    "198-209-0000.hq.ogg": (False, "real speech"),
    "456440__inspectorj__bird-whistling-robin-single-13.hq.ogg": (False, "real bird"),
}


@dataclass
class Case:
    name: str
    group: str
    music: bool
    audio: AudioData


def _mono(audio: AudioData, rate: int = 44100) -> np.ndarray:
    import soxr

    x = audio.samples.astype(np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    return soxr.resample(x, audio.sample_rate, rate) if audio.sample_rate != rate else x


def _audio(x: np.ndarray, rate: int = 44100) -> AudioData:
    return AudioData((0.8 * x / (np.abs(x).max() or 1.0)).astype(np.float32), rate)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return np.resize(x, n) if len(x) < n else x[:n]


def cases(lengths: list[float], seeds: int) -> Iterator[Case]:
    import librosa
    import soxr

    rng = np.random.default_rng(0)
    whale = _mono(soundscapes.whale_song(max(lengths), 7))
    for name, (music, group) in REAL.items():
        if not (SHARED / name).is_file():
            continue
        x = _mono(audio_io.decode(SHARED / name))
        short = name.split("_-_")[-1][:18] if "_-_" in name else name.split("__")[-1][:18]
        for seconds in lengths:
            offsets = [0.0] if len(x) <= seconds * 44100 else list(np.linspace(0, len(x) / 44100 - seconds, 3))
            for off in offsets:
                yield Case(f"{short} {seconds:.0f}s @{off:.0f}", group, music, _audio(x[int(off * 44100):][: int(seconds * 44100)]))
        seconds = lengths[-1]
        base = x[: int(seconds * 44100)]
        for ratio in (0.85, 1.15):
            yield Case(f"{short} resampled x{ratio}", group + " (transformed)", music, _audio(soxr.resample(base, 44100, int(44100 / ratio))))
        for steps in (-3, 3):
            yield Case(f"{short} pitch {steps:+d}", group + " (transformed)", music, _audio(librosa.effects.pitch_shift(base.astype(np.float32), sr=44100, n_steps=steps)))
        for rate in (0.8, 1.25):
            yield Case(f"{short} stretch x{rate}", group + " (transformed)", music, _audio(librosa.effects.time_stretch(base.astype(np.float32), rate=rate)))
        noise = soundscapes._noise(len(base), rng, 1.0)
        for snr in (20, 10):
            gain = np.sqrt(np.mean(base ** 2) / np.mean(noise ** 2) / 10 ** (snr / 10))
            yield Case(f"{short} + pink noise {snr} dB", group + " (mixed)", music, _audio(base + gain * noise))
        mix = base / (np.abs(base).max() or 1) + 0.5 * _fit(whale, len(base)) / (np.abs(whale).max() or 1)
        yield Case(f"{short} + whale moans", group + " (mixed)", music, _audio(mix))
    for table, music in ((soundscapes.MUSIC, True), (soundscapes.NOT_MUSIC, False)):
        for name, make in table.items():
            for seconds in lengths:
                for seed in range(seeds):
                    yield Case(f"{name} {seconds:.0f}s #{seed}", "synthetic music" if music else "synthetic not music",
                               music, make(seconds, seed))
    speech = SHARED / "198-209-0000.hq.ogg"
    if speech.is_file():
        for seed in range(seeds):
            yield Case(f"crowd babble #{seed}", "synthetic not music", False, soundscapes.crowd(audio_io.decode(speech), 6, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cfg = AnalyseConfig()
    rows = []
    print(f"{'sound':34s} {'class':28s} {'music':>5s} {'beat':>5s} {'bpm':>6s} {'instr':>5s} {'voice':>5s} "
          f"{'genre':>5s} {'flat':>5s} {'pulse':>5s} {'<1k':>5s} {'pause':>5s}  verdict")
    t0 = time.perf_counter()
    for case in cases(args.seconds, args.seeds):
        r = analyse_audio(case.audio, cfg, case.name)
        f = r.features
        genre = max((v for k, v in r.tag_scores.items() if k in GENRE_TAGS), default=0.0)
        flags = [x for x in r.flags if x != "vocals_heard"]
        judged_music = not ({"non_music", "silence"} & set(flags))
        right = judged_music == case.music
        row = {"sound": case.name, "class": case.group, "music": case.music, "judged_music": judged_music,
               "right": right, "flags": r.flags, "beat": f.bpm_confidence, "bpm": f.bpm,
               "instrument": r.instrument_score, "voice": r.vocal_score, "genre": round(genre, 4),
               "flatness": r.noise_flatness, "pulse": f.pulse, "below_1k": f.below_1k_ratio, "pauses": f.low_energy_ratio}
        rows.append(row)
        print(f"{case.name[:34]:34s} {case.group[:28]:28s} {str(case.music)[0]:>5s} {f.bpm_confidence:5.2f} {f.bpm:6.1f} "
              f"{r.instrument_score or 0:5.2f} {r.vocal_score or 0:5.2f} {genre:5.2f} {r.noise_flatness or 0:5.2f} "
              f"{f.pulse:5.2f} {f.below_1k_ratio:5.2f} {f.low_energy_ratio:5.2f}  "
              f"{'music' if judged_music else 'NOT'} {'ok' if right else 'WRONG'} {','.join(flags)}", flush=True)
    print(f"\n{len(rows)} sounds in {time.perf_counter() - t0:.0f} s")
    for group in dict.fromkeys(r["class"] for r in rows):
        members = [r for r in rows if r["class"] == group]
        print(f"  {group:32s} right {sum(r['right'] for r in members):3d}/{len(members)}")
    total = sum(r["right"] for r in rows)
    print(f"  {'all':32s} right {total:3d}/{len(rows)}")
    print("\nranges of each cue (min-max) per class, to read the margins of musicness.py's thresholds:")
    cues = ("beat", "instrument", "voice", "genre", "flatness", "pulse", "below_1k", "pauses")
    print(f"  {'class':32s} " + " ".join(f"{c:>11s}" for c in cues))
    for group in dict.fromkeys(r["class"] for r in rows):
        members = [r for r in rows if r["class"] == group]
        spans = [f"{min(r[c] or 0 for r in members):.2f}-{max(r[c] or 0 for r in members):.2f}" for c in cues]
        print(f"  {group[:32]:32s} " + " ".join(f"{x:>11s}" for x in spans))
    print(f"  thresholds: beat (rnn) {beats.BEAT_FOUND}; instrument {musicness.MODEL_SURE_NO_INSTRUMENT} / "
          f"{musicness.MODEL_NO_INSTRUMENT} / {musicness.MODEL_HEARS_MUSIC}; voice {musicness.VOICE_ONLY_MIN}; "
          f"genre {musicness.GENRE_SURE}; flatness {musicness.NOISY_FLATNESS} / {musicness.MIN_NOISE_FLATNESS}; "
          f"pulse {musicness.MIN_PULSE}; below 1 kHz {musicness.MIN_BELOW_1K}; pauses {musicness.MIN_SPEECH_PAUSES}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
