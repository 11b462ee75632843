"""A weight-free vocal separator: REPET-SIM soft masking (``separate.model=offline``).

LOWER QUALITY THAN DEMUCS. Meant for demos, tests and machines without
Demucs weights, never for a dataset you care about: it keeps audible vocal
residue, smears transients into the vocal stem and only has two stems.

Method (Rafii & Pardo's REPET-SIM, as in librosa's "vocal separation"
example): the accompaniment of a song repeats, the voice varies. For every
STFT frame, take the median of the magnitude spectra of its most similar
frames elsewhere in the song (as ``librosa.decompose.nn_filter`` does, see
``neighbour_median``); that median is
an estimate of the repeating accompaniment. Soft masks built from it split
each channel's STFT into "vocals" (what does not repeat) and "other" (the
accompaniment), which are inverted with the mix's phase.

The nearest frames are found with a cosine-similarity matrix product within a
sliding window (hand-written: librosa's ``recurrence_matrix`` goes through
scikit-learn and is O(frames^2); this is 10-30x faster and linear in the song's
length). Frames are matched once on the channel average so both channels of
a stereo song use the same neighbours; the median and masks are per channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import librosa
import numpy as np

from ..config import SeparateConfig
from ..softmask import softmask
from ..types import AudioData


def _n_fft(sample_rate: int, window_s: float) -> int:
    return int(2 ** max(8, round(np.log2(window_s * sample_rate))))


def nearest_frames(features: np.ndarray, k: int, width: int, window: int, block: int = 256) -> np.ndarray:
    """(frames, k) indices: row i holds the ``k`` frames most cosine-similar to frame i,
    at least ``width`` frames away from it, searched among ``window`` frames around it.

    ``features`` is (dims, frames).
    """
    n = features.shape[1]
    unit = features / (np.linalg.norm(features, axis=0, keepdims=True) + 1e-10)
    window = min(window, n)
    width = max(1, min(width, (window - 1) // 4))  # short songs: keep candidates on both sides
    k = max(1, min(k, window - (2 * width - 1)))
    rows = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        lo = int(np.clip((start + stop) // 2 - window // 2, 0, n - window))
        sim = unit[:, start:stop].T @ unit[:, lo:lo + window]
        here = np.arange(start, stop)[:, None]
        cand = np.arange(lo, lo + window)[None, :]
        sim[np.abs(here - cand) < width] = -np.inf
        rows.append(np.argpartition(-sim, k - 1, axis=1)[:, :k] + lo)
    return np.concatenate(rows)


def neighbour_median(rows: np.ndarray, neighbours: np.ndarray, block: int = 64) -> np.ndarray:
    """Row i of the result: the median of ``rows[neighbours[i]]``, element by element; the same numbers as
    ``librosa.decompose.nn_filter(rows, rec=R, aggregate=np.median, axis=0)`` where row i of the sparse R marks
    ``neighbours[i]``.

    Hand-written because nn_filter takes one median per frame over a (k, bins) slice, partitioning down
    strided columns (9 s of a 75 s stereo song's 17 s of separation). Here the neighbours of ``block`` frames
    are gathered with the k values of each bin side by side and sorted along that contiguous axis, which
    numpy does with SIMD; the median is then np.median's: the middle value, or the mean of the middle two
    (3x faster, equal bit for bit: tests/test_separate.py)."""
    k = neighbours.shape[1]
    out = np.empty_like(rows)
    for start in range(0, len(rows), block):
        gathered = rows[neighbours[start:start + block]]  # (block, k, bins)
        ordered = np.sort(np.ascontiguousarray(gathered.transpose(0, 2, 1)), axis=-1)  # (block, bins, k)
        if k % 2:
            out[start:start + block] = ordered[..., k // 2]
        else:  # np.mean of the two middle values, as np.median: their sum, then halved, in the rows' precision
            out[start:start + block] = (ordered[..., k // 2 - 1] + ordered[..., k // 2]) / 2
    return out


@dataclass
class OfflineSeparator:
    """REPET-SIM soft masking; stems "vocals" and "other" (the accompaniment). See the module docstring.

    Lower quality than Demucs, needs no weights and no torch model; about 2.5 s per 30 s of stereo
    44.1 kHz audio on one CPU core (a 75 s synthetic song: 5.7-6.3 s; 7.0-7.1 s with librosa's softmask).
    """

    cfg: Optional[SeparateConfig] = None
    window_s: float = 0.093  # STFT window (4096 samples at 44.1 kHz)
    neighbours: int = 40  # similar frames whose median is the accompaniment estimate
    min_distance_s: float = 2.0  # a frame's neighbours lie at least this far from it
    search_s: float = 40.0  # neighbours are searched within this span around each frame
    margin_accompaniment: float = 2.0  # librosa example's margin_i
    margin_vocals: float = 10.0  # librosa example's margin_v
    power: float = 2.0

    name: str = "offline-repet"
    runs_in_model_worker: bool = False  # numpy work, song by song: any CPU worker runs it

    def __post_init__(self) -> None:
        self.stems = ["vocals", "other"]

    def cache_params(self) -> dict:
        return {"name": self.name, "window_s": self.window_s, "neighbours": self.neighbours,
                "min_distance_s": self.min_distance_s, "search_s": self.search_s,
                "margins": [self.margin_accompaniment, self.margin_vocals], "power": self.power, "impl": "1"}

    def separate_many(self, mixes: list[AudioData]) -> list[dict[str, AudioData]]:
        return [self.separate(mix) for mix in mixes]

    def separate(self, mix: AudioData) -> dict[str, AudioData]:
        sr = mix.sample_rate
        n_fft = _n_fft(sr, self.window_s)
        hop = n_fft // 4
        frames = mix.num_frames
        if frames < n_fft:  # too short to analyse: everything is accompaniment
            return {"vocals": AudioData(np.zeros_like(mix.samples), sr), "other": AudioData(mix.samples.copy(), sr)}
        spectra = librosa.stft(mix.samples, n_fft=n_fft, hop_length=hop)  # (channels, bins, frames)
        mags = np.abs(spectra)
        neighbours = nearest_frames(
            mags.mean(axis=0),
            k=self.neighbours,
            width=max(1, int(librosa.time_to_frames(self.min_distance_s, sr=sr, hop_length=hop))),
            window=max(3, int(librosa.time_to_frames(self.search_s, sr=sr, hop_length=hop))),
        )
        vocals = np.empty_like(mix.samples)
        other = np.empty_like(mix.samples)
        for c in range(mix.channels):
            mag = mags[c]
            filtered = neighbour_median(np.ascontiguousarray(mag.T), neighbours)  # frames as rows
            repeating = np.minimum(mag, filtered.T)
            varying = mag - repeating
            mask_other = softmask(repeating, self.margin_accompaniment * varying, power=self.power)
            mask_vocals = softmask(varying, self.margin_vocals * repeating, power=self.power)
            other[c] = librosa.istft(mask_other * spectra[c], hop_length=hop, n_fft=n_fft, length=frames)
            vocals[c] = librosa.istft(mask_vocals * spectra[c], hop_length=hop, n_fft=n_fft, length=frames)
        return {"vocals": AudioData(vocals, sr), "other": AudioData(other, sr)}
