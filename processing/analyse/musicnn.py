"""musicnn's pretrained taggers (Pons & Serra, MTG-UPF; ISC licence) run in PyTorch.

The network is musicnn's ``build_musicnn`` (``musicnn/models.py`` of musicnn 0.1.0) written
again in PyTorch, layer for layer; its weights are read from the TensorFlow checkpoints that
ship inside the ``musicnn`` wheel (``MTT_musicnn/`` and ``MSD_musicnn/``) by
``processing.analyse.tf_checkpoint``, so tensorflow is never needed at run time.
``tests/test_musicnn_equality.py`` checks the scores against musicnn's own TensorFlow graph.

Input, as musicnn was trained: mono 16 kHz audio, librosa's mel power spectrogram (n_fft 512,
hop 256, 96 bands), ``log10(10000 * mel + 1)`` computed in float32 (musicnn's own extractor
casts to float16 first, which overflows on loud music and makes every clip score alike), cut
into patches of 187 frames (3 s) without overlap. Audio shorter than one patch is repeated to
fill it (the "repeat-pad" musicnn was trained with). Scores are the sigmoid outputs, one row
per patch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .tf_checkpoint import CheckpointError, read_checkpoint

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
MODELS = ("MTT_musicnn", "MSD_musicnn")
INSTALL_HINT = (
    "install musicnn's weights with `pip install --no-deps musicnn==0.1.0` (the wheel ships the "
    "checkpoints; --no-deps because its metadata pins TensorFlow 1 and numpy<1.17, neither needed here), "
    "or turn the tagger off with analyse.tagger=none"
)

# The tag lists of musicnn/configuration.py (MTT_LABELS, MSD_LABELS), in the models' output order.
MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
]
MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica",
    "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
]
LABELS = {"MTT_musicnn": MTT_LABELS, "MSD_musicnn": MSD_LABELS}
PREFIX = {"MTT_musicnn": "mtt", "MSD_musicnn": "msd"}


class MusicnnUnavailable(RuntimeError):
    """musicnn's checkpoints cannot be found or read; the message says how to install them."""


def checkpoint_dir(model: str, weights: Optional[Path] = None) -> Path:
    """The folder holding `model`'s checkpoint: `weights`/<model> when given, else inside the musicnn package."""
    if weights is not None:
        folder = Path(weights) / model
    else:
        import importlib.util

        spec = importlib.util.find_spec("musicnn")
        if spec is None or not spec.submodule_search_locations:
            raise MusicnnUnavailable(f"tagger musicnn: the musicnn package is not installed; {INSTALL_HINT}")
        folder = Path(list(spec.submodule_search_locations)[0]) / model
    if not (folder / ".index").is_file():
        raise MusicnnUnavailable(f"tagger musicnn: no checkpoint {folder}/.index; {INSTALL_HINT}")
    return folder


def log_mel(mono16k: np.ndarray) -> np.ndarray:
    """musicnn's input representation, (frames, 96) float32 (see the module docstring)."""
    import librosa

    x = np.asarray(mono16k, dtype=np.float32)
    if len(x) == 0:
        x = np.zeros(N_FFT, np.float32)
    mel = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    return np.log10(10000.0 * mel.astype(np.float32) + 1.0).astype(np.float32)


def patches(spec: np.ndarray) -> np.ndarray:
    """(patches, 187, 96): non-overlapping 3 s patches; a short input is repeated to fill one."""
    if len(spec) < PATCH_FRAMES:
        spec = np.tile(spec, (int(np.ceil(PATCH_FRAMES / max(1, len(spec)))), 1))[:PATCH_FRAMES]
    n = (len(spec) - PATCH_FRAMES) // PATCH_FRAMES + 1
    return np.ascontiguousarray(spec[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS))


def _relu_bn_maxpool(y, norm):
    """musicnn's relu -> batch norm -> max over frequency, on (B, C, T, F) maps, computed on the pooled values:
    relu and an affine map are monotonic, so the max of BN(relu(y)) is BN(relu(max y)) where BN's gain is
    >= 0 and BN(relu(min y)) where it is < 0 (equal within float rounding). Saves two passes over the
    largest tensors of the network (a quarter of its time)."""
    import torch

    low, high = torch.aminmax(y, dim=3)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    picked = torch.where((scale >= 0)[None, :, None], high, low).clamp_min(0)
    return picked * scale[None, :, None] + shift[None, :, None]


def _build_net():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Musicnn(nn.Module):
        """musicnn's ``build_musicnn`` (frontend '7774timbraltemporal', 64-filter midend, 200-unit backend)."""

        def __init__(self, num_classes: int = 50):
            super().__init__()
            bn = lambda n: nn.BatchNorm1d(n, eps=1e-3)  # noqa: E731  (TensorFlow's default epsilon)
            self.bn_input = nn.BatchNorm2d(1, eps=1e-3)
            # timbral (time x frequency) and temporal (time only) front-end filters
            self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, int(0.4 * N_MELS))), nn.Conv2d(1, 204, (7, int(0.7 * N_MELS)))])
            self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32)])
            self.bn_front = nn.ModuleList([nn.BatchNorm2d(n, eps=1e-3) for n in (204, 204, 51, 51, 51)])
            self.mid = nn.ModuleList([nn.Conv1d(561, 64, 7), nn.Conv1d(64, 64, 7), nn.Conv1d(64, 64, 7)])
            self.bn_mid = nn.ModuleList([bn(64), bn(64), bn(64)])
            self.bn_pool = bn(1506)
            self.dense = nn.Linear(1506, 200)
            self.bn_dense = bn(200)
            self.out = nn.Linear(200, num_classes)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":  # x: (batch, 187, 96) -> sigmoid scores (batch, classes)
            x = self.bn_input(x.unsqueeze(1))  # (B, 1, T, F)
            padded = F.pad(x, (0, 0, 3, 3))
            front = [_relu_bn_maxpool(conv(padded), norm) for conv, norm in zip(self.timbral, self.bn_front[:2])]
            for conv, norm in zip(self.temporal, self.bn_front[2:]):
                k = conv.kernel_size[0]  # TensorFlow's "same" padding: the odd sample goes after
                front.append(_relu_bn_maxpool(conv(F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2))), norm))
            front_cat = torch.cat(front, dim=1)  # (B, 561, T)
            mids = [front_cat]
            h = front_cat
            for i, (conv, norm) in enumerate(zip(self.mid, self.bn_mid)):
                y = norm(F.relu(conv(F.pad(h, (3, 3)))))
                h = y if i == 0 else y + h
                mids.append(h)
            features = torch.cat(mids, dim=1)  # (B, 753, T)
            pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)  # TF order: max, mean per channel
            hidden = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))
            return torch.sigmoid(self.out(hidden))

    return Musicnn


def _bn_name(index: int) -> str:
    return "batch_normalization" + (f"_{index}" if index else "")


def _conv_name(index: int) -> str:
    return f"conv2d{'_' + str(index) if index else ''}"


# the checkpoint variables load_network reads: 11 batch norms, 8 convolutions (5 front-end, 3 mid-end), 2 dense
VARIABLES = tuple([f"{_bn_name(i)}/{v}" for i in range(11) for v in ("gamma", "beta", "moving_mean", "moving_variance")]
                  + [f"{_conv_name(i)}/{v}" for i in range(8) for v in ("kernel", "bias")]
                  + [f"{d}/{v}" for d in ("dense", "dense_1") for v in ("kernel", "bias")])


def _read(model: str, weights: Optional[Path]) -> tuple[Path, dict[str, np.ndarray]]:
    folder = checkpoint_dir(model, weights)
    try:
        ckpt = read_checkpoint(str(folder) + os.sep)
    except CheckpointError as exc:
        raise MusicnnUnavailable(f"tagger musicnn: cannot read {folder}: {exc}; {INSTALL_HINT}") from exc
    missing = [name for name in VARIABLES if name not in ckpt]
    if missing:
        raise MusicnnUnavailable(f"tagger musicnn: {folder} does not hold musicnn's network (no {', '.join(missing[:3])}"
                                 f"{' ...' if len(missing) > 3 else ''}); {INSTALL_HINT}")
    return folder, ckpt


def check_models(models: tuple[str, ...] = MODELS, weights: Optional[Path] = None) -> None:
    """Raise MusicnnUnavailable, naming the folder, unless every model's checkpoint reads whole and holds the
    network's variables; without torch (a build's driver checks the tagger before any work and never runs it)."""
    for model in models:
        _read(model, weights)


def load_network(model: str, weights: Optional[Path] = None):
    """A Musicnn torch module (eval mode) with `model`'s trained weights."""
    import torch

    folder, ckpt = _read(model, weights)
    net = _build_net()(len(LABELS[model]))
    t = lambda name: torch.from_numpy(np.ascontiguousarray(ckpt[name]))  # noqa: E731

    def load_bn(module, index: int) -> None:
        name = _bn_name(index)
        module.weight.data, module.bias.data = t(f"{name}/gamma"), t(f"{name}/beta")
        module.running_mean.data, module.running_var.data = t(f"{name}/moving_mean"), t(f"{name}/moving_variance")

    def conv_kernel(index: int) -> "torch.Tensor":  # TF (kh, kw, in, out) -> torch (out, in, kh, kw)
        return t(f"{_conv_name(index)}/kernel").permute(3, 2, 0, 1).contiguous()

    def conv_bias(index: int) -> "torch.Tensor":
        return t(f"{_conv_name(index)}/bias")

    try:
        # variables in musicnn's creation order: input BN, 5 front-end convs + BNs, 3 mid-end, backend
        load_bn(net.bn_input, 0)
        for i, conv in enumerate([*net.timbral, *net.temporal]):
            conv.weight.data, conv.bias.data = conv_kernel(i), conv_bias(i)
            load_bn(net.bn_front[i], i + 1)
        for i, conv in enumerate(net.mid):
            kernel = conv_kernel(5 + i)  # (64, 1, 7, in): the mid-end convs span all input features
            conv.weight.data, conv.bias.data = kernel[:, 0].permute(0, 2, 1).contiguous(), conv_bias(5 + i)
            load_bn(net.bn_mid[i], 6 + i)
        load_bn(net.bn_pool, 9)
        net.dense.weight.data, net.dense.bias.data = t("dense/kernel").T.contiguous(), t("dense/bias")
        load_bn(net.bn_dense, 10)
        net.out.weight.data, net.out.bias.data = t("dense_1/kernel").T.contiguous(), t("dense_1/bias")
    except (KeyError, RuntimeError) as exc:
        raise MusicnnUnavailable(f"tagger musicnn: {folder} does not hold musicnn's network ({exc}); {INSTALL_HINT}") from exc
    return net.eval()


def tagger_device(name: str) -> str:
    """``analyse.tagger_device`` resolved: "auto" is "cuda" when this process sees a GPU, else "cpu".

    On a GPU machine each analysis worker then runs its chunks' 10 patches x 2 networks on the GPU
    (about 1.4 s of one CPU core per 30 s chunk otherwise: the largest part of the analysis)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MusicnnUnavailable(f"analyse.tagger_device={name}, but this process sees no CUDA GPU; use auto or cpu")
    return name


def check_device(name: str) -> None:
    """Raise MusicnnUnavailable unless ``analyse.tagger_device`` ``name`` can be used here; "auto" (the CPU when there
    is no GPU) and "cpu" always can, and are checked without importing torch."""
    if name not in ("auto", "cpu"):
        tagger_device(name)


class MusicnnModels:
    """MTT_musicnn and MSD_musicnn, loaded once; ``scores(mono16k)`` gives per-patch scores of both."""

    def __init__(self, models: tuple[str, ...] = MODELS, weights: Optional[Path] = None, device: str = "cpu"):
        import torch

        self.models = tuple(models)
        self.device = torch.device(device)
        self.nets = {m: load_network(m, weights).to(self.device) for m in self.models}
        self.labels = [f"{PREFIX[m]}:{label}" for m in self.models for label in LABELS[m]]

    def scores(self, mono16k: np.ndarray) -> np.ndarray:
        """(patches, len(self.labels)) sigmoid scores for 16 kHz mono audio."""
        return self.score_patches(patches(log_mel(mono16k)))

    def score_patches(self, batch: np.ndarray) -> np.ndarray:
        """(patches, len(self.labels)) scores of log-mel patches (``patches(log_mel(x))``), of one chunk or of
        many at once (processing.analyse.network_stream batches them across chunks)."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        # On CUDA, PyTorch's own convolutions, not cuDNN's: cuDNN in float32 picked an FFT path of ~33,000
        # tiny kernels for the 1-D convolutions (440 ms per network on an H100), and its TF32 path (2 ms)
        # drifts from the CPU's scores; PyTorch's float32 path keeps the CPU's scores (measured on an H100).
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=self.device.type != "cuda"):
            out = torch.cat([self.nets[m](tensor) for m in self.models], dim=1)
            return out.cpu().numpy().astype(np.float64)
