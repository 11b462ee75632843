"""Level measures that several stages share: RMS in dBFS and EBU R128 integrated loudness (pyloudnorm)."""
from __future__ import annotations

import math

import numpy as np

from .types import AudioData

MIN_LOUDNESS_LUFS = -70.0  # EBU R128 absolute gate: quieter is reported as this


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS of any array (-inf-safe: silent -> -200)."""
    energy = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(energy) if energy > 1e-20 else -200.0


MAX_LOUDNESS_CHANNELS = 5  # pyloudnorm (BS.1770's 5.0 layout: L, R, C, Ls, Rs) measures at most this many


def loudness(audio: AudioData) -> float:
    """EBU R128 integrated loudness (LUFS) with pyloudnorm, over all channels.

    More than five channels (6-, 8-channel files: layouts pyloudnorm has no weights for) are
    measured on their mono downmix, the channel average that the dataset's chunks are made of.
    """
    import pyloudnorm

    data = audio.samples.T.astype(np.float64)
    if data.shape[1] > MAX_LOUDNESS_CHANNELS:
        data = data.mean(axis=1, keepdims=True)
    block = 0.4
    if audio.duration_s < block:  # pyloudnorm needs one 400 ms block: measure on a zero-padded copy
        data = np.pad(data, ((0, int(block * audio.sample_rate) + 1 - len(data)), (0, 0)))
    value = pyloudnorm.Meter(audio.sample_rate, block_size=block).integrated_loudness(data)
    return float(max(MIN_LOUDNESS_LUFS, value)) if np.isfinite(value) else MIN_LOUDNESS_LUFS


class LoudnessMeter:
    """``loudness`` of a signal fed block by block, so that a long song need not be held whole: the K-weighting
    filters (pyloudnorm's coefficients, ``scipy.signal.lfilter``) carry their state across blocks; the 400 ms
    gating blocks (75 % overlap, pyloudnorm's sample bounds) are summed as soon as their samples have arrived,
    then gated (absolute -70 LUFS, relative -10 LU) as BS.1770-4 and pyloudnorm do. Audio shorter than one
    block (kept whole, it is short) and more than five channels are measured exactly as ``loudness`` does."""

    BLOCK_S = 0.4
    OVERLAP = 0.75
    CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770: L, R, C, Ls, Rs

    def __init__(self, sample_rate: int, channels: int):
        import pyloudnorm

        self.rate, self.channels = int(sample_rate), int(channels)
        self.downmix = channels > MAX_LOUDNESS_CHANNELS
        width = 1 if self.downmix else channels
        meter = pyloudnorm.Meter(self.rate, block_size=self.BLOCK_S, overlap=self.OVERLAP)
        self._stages = [(np.asarray(f.b, np.float64), np.asarray(f.a, np.float64), float(f.passband_gain))
                        for f in meter._filters.values()]
        self._state = [np.zeros((max(len(a), len(b)) - 1, width)) for b, a, _ in self._stages]
        self._step = 1.0 - self.OVERLAP
        self._buffer = np.zeros((0, width))  # weighted samples from frame self._buffer_start on
        self._buffer_start = 0
        self._seen = 0
        self._energy: list[np.ndarray] = []  # mean square per channel of each finished gating block
        self._head: list[np.ndarray] = []  # the raw samples while there are less than one block's worth
        self._head_limit = int(self.BLOCK_S * self.rate) + 2
        self._blocks = 1 << 62  # how many gating blocks there are: known at the end

    def _bounds(self, j: int) -> tuple[int, int]:
        t_g, step, rate = self.BLOCK_S, self._step, self.rate  # the expressions pyloudnorm evaluates, in its order
        return int(t_g * (j * step) * rate), int(t_g * (j * step + 1) * rate)

    def _close_blocks(self, final: bool = False) -> None:
        """Sum every gating block whose samples have all arrived (at the end: every block left, as pyloudnorm
        sums the last ones over the samples there are), then drop the samples no later block needs."""
        norm = 1.0 / (self.BLOCK_S * self.rate)
        while len(self._energy) < self._blocks:
            lo, hi = self._bounds(len(self._energy))
            if hi > self._seen and not final:
                break
            seg = self._buffer[lo - self._buffer_start: min(hi, self._seen) - self._buffer_start]
            self._energy.append(np.array([norm * np.sum(np.square(seg[:, i])) for i in range(seg.shape[1])]))
        drop = min(self._bounds(len(self._energy))[0], self._seen) - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop

    def add(self, block: np.ndarray) -> None:
        """The next samples, shape (frames, channels)."""
        from scipy.signal import lfilter

        if self._seen < self._head_limit:
            self._head.append(np.array(block[: self._head_limit - self._seen], np.float32))
        data = np.asarray(block, np.float64)
        if self.downmix:
            data = data.mean(axis=1, keepdims=True)
        for i, (b, a, gain) in enumerate(self._stages):
            data, self._state[i] = lfilter(b, a, data, axis=0, zi=self._state[i])
            if gain != 1.0:
                data = gain * data
        self._buffer = np.concatenate([self._buffer, data]) if len(self._buffer) else data
        self._seen += len(data)
        self._close_blocks()

    def integrated(self) -> float:
        """Integrated loudness (LUFS, at least MIN_LOUDNESS_LUFS) of everything added."""
        if self._seen / self.rate < self.BLOCK_S:  # shorter than one block: as ``loudness`` pads it
            head = np.concatenate(self._head) if self._head else np.zeros((0, self.channels), np.float32)
            return loudness(AudioData(np.ascontiguousarray(head.T), self.rate))
        total_s = self._seen / self.rate
        self._blocks = int(np.round((total_s - self.BLOCK_S) / (self.BLOCK_S * self._step))) + 1
        self._close_blocks(final=True)
        z = np.array(self._energy[: self._blocks]).T  # (channels, blocks)
        weights = np.array(self.CHANNEL_GAINS[: z.shape[0]])[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            block_lufs = -0.691 + 10.0 * np.log10(np.sum(weights * z, axis=0))
            above_abs = block_lufs >= -70.0
            mean_abs = z[:, above_abs].mean(axis=1) if above_abs.any() else np.full(z.shape[0], np.nan)
            relative = -0.691 + 10.0 * np.log10(np.sum(weights[:, 0] * mean_abs)) - 10.0
            gated = (block_lufs > relative) & (block_lufs > -70.0)
            mean_gated = np.nan_to_num(z[:, gated].mean(axis=1)) if gated.any() else np.zeros(z.shape[0])
            value = -0.691 + 10.0 * np.log10(np.sum(weights[:, 0] * mean_gated))
        return float(max(MIN_LOUDNESS_LUFS, value)) if np.isfinite(value) else MIN_LOUDNESS_LUFS
