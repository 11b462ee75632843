"""Tempo and beats from beat activations (``processing.analyse.beat_network``, 100 frames per second).

Tempo: madmom's comb-filter tempo histogram (Böck, Krebs & Widmer, ISMIR 2015), as
``TempoEstimationProcessor(method="comb", min_bpm=40, max_bpm=250, fps=100)``: the activations
smoothed by a 14-frame Hamming window, a bank of feed-backward comb filters (alpha 0.79) for beat
intervals of 24-150 frames; per frame the filter that resonates most adds its output to its
interval's bin; the histogram smoothed by a 9-bin Hamming window; its peaks are the tempo
candidates, with strengths that sum to 1. Ported with ``scipy.signal.lfilter`` (madmom's comb
filters are Cython); ``tests/test_beat_network.py`` checks the candidates against madmom's.

The histogram is computed in blocks with each filter's state carried over (``histogram``), so an
hour-long song needs no hour-long matrix.

Octave rule (``choose_tempo``): the best candidate wins unless a candidate at double or half its
tempo (within 4 %) is close in strength (>= ``OCTAVE_CLOSE`` x the best's). Then the network
itself decides: beats are tracked at the slower tempo, and the activation half-way between
consecutive beats is compared with the activation on them. Where the in-between positions carry
at least ``OFFBEAT_IS_BEAT`` of the on-beat activation, they are beats too and the faster tempo
wins; else the slower. A network trained to mark beats marks off-beat eighth notes far weaker than
beats, so this asks the model which pulse it hears as beats. Measured on the synthetic and real
signals of ``benchmarks/bench_analyse.py --part tempo`` (see the README for its figures).

Beats (``track_beats``): madmom's ``detect_beats`` (the BeatTrackingProcessor's search, with one
global interval): the start phase whose beat grid collects the most activation, each beat moved to
the activation maximum within +-20 % of an interval, Hamming-weighted towards the expected place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

FPS = 100
MIN_BPM, MAX_BPM = 40.0, 250.0
ALPHA = 0.79
ACT_SMOOTH = 14  # frames: round(100 fps x 0.14 s)
HIST_SMOOTH = 9
MIN_INTERVAL = int(np.floor(60.0 * FPS / MAX_BPM))  # 24 frames
MAX_INTERVAL = int(np.ceil(60.0 * FPS / MIN_BPM))  # 150 frames
LOOK_ASIDE = 0.2
MIN_FRAMES = FPS  # under a second of audio: no tempo (as essentia's RhythmExtractor2013 here)
OCTAVE_TOLERANCE = 0.04
OCTAVE_CLOSE = 0.75
OFFBEAT_IS_BEAT = 0.45
# Beat confidence with the network: the mean activation on the tracked beats (0-1). Measured by
# benchmarks/bench_musicness.py (ranges in musicness.py): music with a beat 0.13-0.60 (clicks and drum loops
# 0.3-0.6), noisy synthetic music 0.24-0.37, anything without a beat (speech, birds, pads, rubato, noise,
# animal sounds) 0.02-0.15. A tempo is stated, and counts for music or not, from BEAT_FOUND; the moods' tempo
# rules ask for a steady beat, STEADY_BEAT (the level of most windows of the real music clips).
BEAT_FOUND = 0.2
STEADY_BEAT = 0.3


@dataclass
class TempoEstimate:
    bpm: float  # 0.0: no tempo
    candidates: list[tuple[float, float]]  # (bpm, strength) best first, strengths sum to 1
    rule: str  # how the tempo was chosen: "best", "octave-faster", "octave-slower", "none"
    beats: list[float]  # beat times, seconds from the start of the activations given
    beat_activation: float  # mean activation on the tracked beats (0..1): how clearly the network hears beats


def smooth(signal: np.ndarray, size: int) -> np.ndarray:
    """madmom's smooth_signal with a Hamming window of `size` (np.convolve, 'same')."""
    if size < 2 or len(signal) == 0:
        return np.asarray(signal, dtype=np.float64)
    return np.convolve(np.asarray(signal, dtype=np.float64), np.hamming(size), "same")


def histogram(activations: np.ndarray, block: int = 6000) -> np.ndarray:
    """Comb-filter interval histogram of (unsmoothed) activations: bins for intervals MIN..MAX_INTERVAL.

    Computed over blocks of `block` frames with each filter's state carried across (the same sums as one
    pass; memory stays small on an hour-long song)."""
    from scipy.signal import lfilter

    act = smooth(activations, ACT_SMOOTH)
    taus = np.arange(MIN_INTERVAL, MAX_INTERVAL + 1)
    hist = np.zeros(len(taus))
    dens = []
    for tau in taus:
        den = np.zeros(tau + 1)
        den[0], den[tau] = 1.0, -ALPHA  # y[n] = x[n] + alpha * y[n - tau]
        dens.append(den)
    states = [np.zeros(tau) for tau in taus]
    for start in range(0, len(act), block):
        x = act[start: start + block]
        out = np.empty((len(x), len(taus)))
        for i, den in enumerate(dens):
            out[:, i], states[i] = lfilter([1.0], den, x, zi=states[i])
        best = out == out.max(axis=1, keepdims=True)
        hist += (out * best).sum(axis=0)
    return hist


def candidates(hist: np.ndarray) -> list[tuple[float, float]]:
    """Tempo candidates (bpm, strength) of a histogram, strongest first (madmom's detect_tempo)."""
    from scipy.signal import argrelmax

    bins = smooth(hist, HIST_SMOOTH)
    tempi = 60.0 * FPS / np.arange(MIN_INTERVAL, MAX_INTERVAL + 1)
    peaks = argrelmax(bins, mode="wrap")[0]
    if len(peaks) == 0 or bins[peaks].sum() <= 0:
        return []
    if len(peaks) == 1:
        return [(float(tempi[peaks[0]]), 1.0)]
    order = peaks[np.argsort(bins[peaks])[::-1]]
    strengths = bins[order] / bins[order].sum()
    return [(float(tempi[p]), float(s)) for p, s in zip(order, strengths)]


def track_beats(activations: np.ndarray, bpm: float) -> np.ndarray:
    """Beat frames at a fixed tempo (madmom's detect_beats on the smoothed activations; iterative)."""
    act = smooth(activations, ACT_SMOOTH)
    if bpm <= 0 or len(act) == 0:
        return np.zeros(0, np.int64)
    interval = int(round(60.0 * FPS / bpm))
    aside = max(1, int(interval * LOOK_ASIDE))
    win = np.hamming(2 * aside)
    padded = np.pad(act, (aside, aside + interval))

    def grid(start: int) -> list[int]:
        positions, pos = [], start
        while True:
            seg = padded[pos: pos + 2 * aside] * win  # frames pos - aside .. pos + aside - 1
            peak = int(np.argmax(seg))
            if peak > 0:
                pos = pos + peak - aside
            positions.append(pos)
            if pos + interval >= len(act):
                return positions
            pos += interval

    sums = [act[[p for p in grid(i) if 0 <= p < len(act)]].sum() for i in range(min(interval, len(act)))]
    return np.array([p for p in grid(int(np.argmax(sums))) if 0 <= p < len(act)], dtype=np.int64)


def _offbeat_ratio(activations: np.ndarray, slow_bpm: float) -> float:
    """Activation half-way between the beats tracked at `slow_bpm`, relative to the activation on them."""
    act = smooth(activations, ACT_SMOOTH)
    beats = track_beats(activations, slow_bpm)
    if len(beats) < 2:
        return 0.0
    mids = ((beats[:-1] + beats[1:]) // 2).astype(np.int64)
    reach = max(1, int(60.0 * FPS / slow_bpm * 0.1))  # look +-10 % of the slow interval around the midpoint

    def local_max(frames: np.ndarray) -> float:
        return float(np.mean([act[max(0, f - reach): f + reach + 1].max() for f in frames]))

    on = local_max(beats)
    return local_max(mids) / on if on > 0 else 0.0


def choose_tempo(cands: list[tuple[float, float]], activations: np.ndarray) -> tuple[float, str]:
    """The tempo among `cands` by the octave rule (module docstring) and the rule that decided."""
    if not cands:
        return 0.0, "none"
    best, strength = cands[0]
    for other, other_strength in cands[1:]:
        if other_strength < OCTAVE_CLOSE * strength:
            continue
        ratio = other / best
        if abs(ratio - 2.0) <= 2.0 * OCTAVE_TOLERANCE or abs(ratio - 0.5) <= 0.5 * OCTAVE_TOLERANCE:
            slow, fast = min(best, other), max(best, other)
            faster = _offbeat_ratio(activations, slow) >= OFFBEAT_IS_BEAT
            return (fast, "octave-faster") if faster else (slow, "octave-slower")
    return best, "best"


def estimate(activations: np.ndarray, hist: Optional[np.ndarray] = None) -> TempoEstimate:
    """Tempo, candidates and beats of one stretch of activations (`hist`: its histogram when already known)."""
    if len(activations) < MIN_FRAMES:
        return TempoEstimate(0.0, [], "none", [], 0.0)
    hist = histogram(activations) if hist is None else hist
    cands = candidates(hist)
    bpm, rule = choose_tempo(cands, activations)
    frames = track_beats(activations, bpm)
    act = np.asarray(activations, dtype=np.float64)
    # the raw activation peak may sit a frame or two beside the smoothed one the tracker picked
    on_beats = float(np.mean([act[max(0, f - 2): f + 3].max() for f in frames])) if len(frames) else 0.0
    return TempoEstimate(round(bpm, 2), [(round(b, 2), round(s, 4)) for b, s in cands[:4]], rule,
                         [round(float(f) / FPS, 2) for f in frames], round(on_beats, 4))
