"""Demucs separation through demucs 4.1's Python API, with segments of many songs per forward pass.

``demucs.apply.apply_model`` separates one track at a time: it cuts the track
into fixed-length segments and runs them through the model one by one. On a
GPU that leaves the device mostly idle. :func:`apply_model_batched` does the
same arithmetic (same padding, segment length, stride, triangular
transition weights, random time shifts and bag-of-models weighting) but cuts
the segments of ALL the given tracks first and runs them ``batch_segments``
at a time, so one forward pass may hold segments of several songs. Its
output matches ``apply_model`` run on each track (up to float rounding).
Hand-written because demucs has no batched multi-track path. Batching pays
on GPUs; on a CPU it measured slower (larger tensors, same FLOPs), so CPU
runs use ``cpu_batch_segments`` (default 1) instead of ``batch_segments``.
On CUDA an out-of-memory error halves the batch and retries.

Weights are looked up without touching the network (see :func:`load_model`),
so a machine without them fails at once with a message saying how to
provide them.
"""
from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soxr
import torch
import yaml
from demucs.apply import BagOfModels, TensorChunk, tensor_chunk

from ..config import SeparateConfig
from ..types import AudioData
from .base import SeparatorError

# Released demucs models: which Hugging Face repo holds each, and which files.
HF_NAMESPACE = "adefossez"


class _LoadError(RuntimeError):
    pass


# --------------------------------------------------------------------------- weights


def _remote_bag(name: str) -> Optional[dict]:
    """The bag definition demucs ships for a released model name (models, weights, segment)."""
    from demucs.pretrained import REMOTE_ROOT

    path = REMOTE_ROOT / f"{name}.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text())


def _remote_files() -> dict[str, str]:
    """signature -> download URL of every released single model."""
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    return _parse_remote_files(REMOTE_ROOT / "files.txt")


def released_names() -> list[str]:
    from demucs.pretrained import REMOTE_ROOT

    return sorted(p.stem for p in REMOTE_ROOT.glob("*.yaml"))


def _signatures(name: str) -> list[str]:
    bag = _remote_bag(name)
    if bag is not None:
        return list(bag["models"])
    return [name] if name in _remote_files() else []


def _hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub"


def _hf_repo_id(name: str) -> tuple[str, str]:
    from demucs.hf import hf_repo_name

    namespace, bare = (name.split("/", 1) if "/" in name else (HF_NAMESPACE, name))
    return f"{namespace}/{hf_repo_name(bare)}", bare


def _torch_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _bag(models: list, bag: Optional[dict]) -> BagOfModels:
    bag = bag or {}
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def _from_hf_cache(name: str):
    """The bag from a filled Hugging Face cache (as HF_HUB_OFFLINE=1 would find it), else None."""
    from demucs.hf import load_safetensors_model
    from huggingface_hub import try_to_load_from_cache

    repo_id, bare = _hf_repo_id(name)
    cache = _hf_cache_dir()
    bag_file = try_to_load_from_cache(repo_id, f"{bare}.yaml", cache_dir=cache)
    if not isinstance(bag_file, str):
        return None
    bag = yaml.safe_load(Path(bag_file).read_text())
    files = [try_to_load_from_cache(repo_id, f"{sig}.safetensors", cache_dir=cache) for sig in bag["models"]]
    if not all(isinstance(f, str) for f in files):
        return None
    return _bag([load_safetensors_model(f) for f in files], bag), f"Hugging Face cache {cache} ({repo_id})"


def _from_torch_hub(name: str):
    """The bag from $TORCH_HOME/hub/checkpoints (where demucs's legacy download puts files), else None."""
    from demucs.states import load_model as load_package

    urls = _remote_files()
    sigs = _signatures(name)
    if not sigs or any(sig not in urls for sig in sigs):
        return None
    folder = _torch_checkpoints()
    files = [folder / urls[sig].rsplit("/", 1)[1] for sig in sigs]
    if not all(f.is_file() for f in files):
        return None
    return _bag([load_package(f) for f in files], _remote_bag(name)), f"torch hub cache {folder}"


def _from_folder(name: str, folder: Path):
    """A demucs local repo (``<name>.yaml`` + ``<sig>.th``, as ``demucs --repo``) or a
    downloaded Hugging Face repo folder (``<name>.yaml`` + ``<sig>.safetensors``)."""
    from demucs.hf import load_safetensors_model
    from demucs.pretrained import get_model

    bag_file = folder / f"{name}.yaml"
    if bag_file.is_file():
        bag = yaml.safe_load(bag_file.read_text())
        sigs = list(bag.get("models", []))
        if sigs and all((folder / f"{sig}.safetensors").is_file() for sig in sigs) and not any(
            folder.glob(f"{sigs[0]}*.th")
        ):
            return _bag([load_safetensors_model(folder / f"{sig}.safetensors") for sig in sigs], bag)
    model = get_model(name, repo=folder)  # raises ModelLoadingError when name/signatures are missing
    return model if hasattr(model, "models") else _bag([model], None)


def _from_file(name: str, path: Path):
    from demucs.hf import load_safetensors_model
    from demucs.states import load_model as load_package

    if path.suffix in (".yaml", ".yml"):
        return _from_folder(path.stem, path.parent)  # a bag file names its model, whatever separate.model says
    sigs = _signatures(name)
    if len(sigs) > 1:
        raise _LoadError(
            f"separate.model={name} is a bag of {len(sigs)} models ({', '.join(sigs)}); one file cannot hold it: "
            f"point separate.weights to a folder with {name}.yaml and {', '.join(s + '.th' for s in sigs)}"
        )
    if path.suffix == ".safetensors":
        model = load_safetensors_model(path)
    else:
        package = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(package, dict) or "klass" not in package:
            raise _LoadError(
                f"{path} is not a demucs model package (expected a dict with klass/args/kwargs/state, "
                "as demucs saves its .th files)"
            )
        model = load_package(package)
    return _bag([model], _remote_bag(name) if len(sigs) == 1 else None)


def missing_weights_message(name: str) -> str:
    sigs = _signatures(name)
    urls = _remote_files()
    repo_id, bare = _hf_repo_id(name)
    th_names = [urls[s].rsplit("/", 1)[1] for s in sigs if s in urls]
    sig_th = ", ".join(f"{s}.th" for s in sigs) or "<signature>.th"
    sig_st = ", ".join(f"{s}.safetensors" for s in sigs) or "<signature>.safetensors"
    lines = [
        f"demucs weights for separate.model={name} were not found (nothing is downloaded; the lookup is offline).",
        "Provide them in one of three ways:",
        f"  1. separate.weights=FOLDER holding {bare}.yaml and {sig_th} (a demucs local repo, as `demucs --repo`), "
        f"or {bare}.yaml and {sig_st} (a downloaded Hugging Face repo); for a single model, "
        f"separate.weights may also name the file itself ({th_names[0] if th_names else sig_th} or .safetensors);",
        f"  2. copy {', '.join(th_names) or sig_th} into {_torch_checkpoints()} ($TORCH_HOME/hub/checkpoints/)"
        + (f", downloadable from {', '.join(urls[s] for s in sigs if s in urls)}" if th_names else "") + ";",
        f"  3. fill the Hugging Face cache {_hf_cache_dir()} with {repo_id} ({bare}.yaml, {sig_st}), e.g. "
        f"`huggingface-cli download {repo_id}` on a machine with network, then copy the cache here.",
        "Or use separate.model=offline (weight-free REPET-style masking, lower quality) or "
        "separate.model=none (the inputs are already instrumental).",
    ]
    if not sigs:
        lines.insert(1, f"({name!r} is not a released demucs model; released: {', '.join(released_names())}.)")
    return "\n".join(lines)


def load_model(name: str, weights: Optional[Path] = None):
    """Load a demucs model (always as a BagOfModels) without any network access.

    Order: ``weights`` (a file or a folder) when given; else the Hugging Face
    cache, then ``$TORCH_HOME/hub/checkpoints``. Returns (bag, where it came from).
    Raises SeparatorError with instructions when nothing is found.
    """
    from demucs.repo import ModelLoadingError

    try:
        if weights is not None:
            weights = Path(weights).expanduser()
            if weights.is_dir():
                return _from_folder(name, weights), str(weights)
            if weights.is_file():
                return _from_file(name, weights), str(weights)
            raise SeparatorError(f"separate.weights={weights}: no such file or folder\n" + missing_weights_message(name))
        for lookup in (_from_hf_cache, _from_torch_hub):
            found = lookup(name)
            if found is not None:
                return found
    except SeparatorError:
        raise
    except (ModelLoadingError, _LoadError, OSError, KeyError, ValueError, RuntimeError) as exc:
        where = f"separate.weights={weights}" if weights is not None else "the weights cache"
        raise SeparatorError(f"cannot load demucs model {name!r} from {where}: {exc}\n"
                             + missing_weights_message(name)) from exc
    raise SeparatorError(missing_weights_message(name))


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise SeparatorError(f"separate.device={spec!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeparatorError(f"separate.device={spec!r} but this torch has no usable CUDA device; use auto or cpu")
    return device


# --------------------------------------------------------------------------- batched apply


@dataclass
class _Track:
    """One (track, shift) view, as apply_model's recursion sees it."""

    view: TensorChunk  # what apply_model's split branch cuts segments from
    length: int  # frames of the view
    trim: int  # frames dropped from the front of the view's output (shift undo)
    out: Optional[torch.Tensor] = None
    sum_weight: Optional[torch.Tensor] = None


def _transition_weight(segment_length: int, power: float, device) -> torch.Tensor:
    # Same triangle as apply_model: peak in the middle, normalised, to the power `power`.
    weight = torch.cat([torch.arange(1, segment_length // 2 + 1, device=device),
                        torch.arange(segment_length - segment_length // 2, 0, -1, device=device)])
    return (weight / weight.max()) ** power


def _stride(segment_length: int, overlap: float) -> int:
    return int((1 - overlap) * segment_length)


def _center_trim(tensor: torch.Tensor, length: int) -> torch.Tensor:
    delta = tensor.shape[-1] - length
    return tensor[..., delta // 2: tensor.shape[-1] - (delta - delta // 2)] if delta else tensor


def apply_model_batched(
    bag,
    mixes: Sequence[torch.Tensor],
    shifts: int = 1,
    overlap: float = 0.25,
    batch_segments: int = 8,
    device: Optional[torch.device] = None,
    seed: int = 0,
    bf16: bool = False,
    transition_power: float = 1.0,
) -> list[torch.Tensor]:
    """Separate several tracks, batching segments of all of them per forward pass.

    ``mixes``: tensors (channels, frames) at the model's rate and channel count
    (already normalised as the caller wants). Returns one (sources, channels,
    frames) tensor per mix on the CPU. Equals ``apply_model(bag, mix[None],
    shifts, overlap=overlap)[0]`` for each mix when Python's ``random`` is
    seeded with ``seed`` before each of those calls.
    """
    models = list(bag.models) if hasattr(bag, "models") else [bag]
    bag_weights = bag.weights if hasattr(bag, "models") else [[1.0] * len(bag.sources)]
    device = torch.device(device) if device is not None else torch.device("cpu")
    # apply_model draws shift offsets from `random` model by model, shift by shift: same order per track.
    rngs = [random.Random(seed) for _ in mixes]
    estimates: list = [0.0 for _ in mixes]
    totals = [0.0] * len(bag.sources)
    for model, model_weights in zip(models, bag_weights):
        model.to(device).eval()
        tracks = _views(model, mixes, shifts, overlap, rngs, device)
        _run_segments(model, tracks, overlap, batch_segments, device, bf16, transition_power)
        for i, views in enumerate(tracks):
            out = _merge_shifts(views, shifts)
            for k, w in enumerate(model_weights):
                out[k] *= w
            estimates[i] = estimates[i] + out
        for k, w in enumerate(model_weights):
            totals[k] += w
        del tracks
    results = []
    for est in estimates:
        for k in range(est.shape[0]):
            est[k] /= totals[k]
        results.append(est.cpu())
    return results


def _forward_draws(model) -> list[int]:
    """``randrange`` bounds HTDemucs's transformer draws from Python's ``random`` on every
    forward pass (one per cross-transformer with sine embeddings, even when the shift is 0).
    apply_model's next shift offset comes after those draws, so they are replayed per track."""
    from demucs.transformer import CrossTransformerEncoder

    return [m.sin_random_shift + 1 for m in model.modules()
            if isinstance(m, CrossTransformerEncoder) and m.emb == "sin"]


def _views(model, mixes, shifts, overlap, rngs, device) -> list[list[_Track]]:
    segment_length = int(model.samplerate * model.segment)
    draws = _forward_draws(model)
    tracks = []
    for mix, rng in zip(mixes, rngs):
        mix = mix.to(device)
        length = mix.shape[-1]
        if not shifts:
            tracks.append([_Track(tensor_chunk(mix), length, 0)])
            continue
        max_shift = int(0.5 * model.samplerate)
        padded = tensor_chunk(mix).padded(length + 2 * max_shift)
        views = []
        for _ in range(shifts):
            offset = rng.randint(0, max_shift)
            views.append(_Track(TensorChunk(padded, offset, length + max_shift - offset),
                                length + max_shift - offset, max_shift - offset))
            for _ in range(len(range(0, views[-1].length, _stride(segment_length, overlap)))):
                for bound in draws:
                    rng.randrange(bound)
        tracks.append(views)
    return tracks


def _run_segments(model, tracks, overlap, batch_segments, device, bf16, transition_power) -> None:
    """Cut every view into segments, run them batch by batch, overlap-add into each view."""
    segment_length = int(model.samplerate * model.segment)
    stride = _stride(segment_length, overlap)
    weight = _transition_weight(segment_length, transition_power, device)
    n_sources = len(model.sources)
    # Pieces grouped by the model's input length (constant for HTDemucs; the last, shorter
    # segment of a track may differ for the older Demucs/HDemucs models).
    groups: dict[int, list[tuple[_Track, int, object]]] = {}
    for views in tracks:
        for view in views:
            channels = view.view.shape[-2]
            view.out = torch.zeros(n_sources, channels, view.length, device=device)
            view.sum_weight = torch.zeros(view.length, device=device)
            for offset in range(0, view.length, stride):
                chunk = TensorChunk(view.view, offset, segment_length)
                valid = model.valid_length(chunk.length) if hasattr(model, "valid_length") else chunk.length
                groups.setdefault(int(valid), []).append((view, offset, chunk))
    for valid, pieces in groups.items():
        start = 0
        while start < len(pieces):
            batch = pieces[start:start + batch_segments]
            try:
                outputs = _forward(model, torch.stack([chunk.padded(valid) for _, _, chunk in batch]), device, bf16)
            except torch.cuda.OutOfMemoryError:
                if batch_segments == 1:
                    raise
                batch_segments = max(1, batch_segments // 2)  # retry this batch smaller; keep that size
                torch.cuda.empty_cache()
                continue
            for (view, offset, chunk), out in zip(batch, outputs):
                n = chunk.length
                view.out[..., offset:offset + segment_length] += weight[:n] * _center_trim(out, n)
                view.sum_weight[offset:offset + segment_length] += weight[:n]
            del outputs
            start += len(batch)


def _forward(model, inputs: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(inputs.to(device)).float()


def _merge_shifts(views: list[_Track], shifts: int) -> torch.Tensor:
    total: object = 0.0
    for view in views:
        assert view.sum_weight.min() > 0
        view.out /= view.sum_weight
        total = total + view.out[..., view.trim:]
        view.out = view.sum_weight = None
    if shifts:
        total = total / shifts
    return total


# --------------------------------------------------------------------------- separator


def _to_model_input(samples: np.ndarray, rate: int, model_rate: int, model_channels: int) -> torch.Tensor:
    """(channels, frames) float32 at any rate -> model rate; mono duplicated to the model's channels."""
    if rate != model_rate:
        samples = soxr.resample(samples.T, rate, model_rate).T
    if samples.shape[0] == 1 and model_channels > 1:
        samples = np.repeat(samples, model_channels, axis=0)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def _from_model_output(stem: torch.Tensor, rate: int, model_rate: int, channels: int, frames: int) -> np.ndarray:
    out = stem.numpy()
    if channels == 1 and out.shape[0] > 1:
        out = out.mean(axis=0, keepdims=True)
    if rate != model_rate:
        out = soxr.resample(np.ascontiguousarray(out.T), model_rate, rate).T
    if out.shape[1] >= frames:
        out = out[:, :frames]
    else:
        out = np.pad(out, ((0, 0), (0, frames - out.shape[1])))
    return np.ascontiguousarray(out, dtype=np.float32)


class DemucsSeparator:
    """A demucs model (any released name, or a local repo) behind the Separator protocol.

    Weights are loaded in the constructor, so missing weights fail before any
    work (SeparatorError with instructions). Each mix is converted to the
    model's rate (soxr) and channels (mono duplicated; more than two channels
    are separated channel by channel), normalised like demucs's own
    ``separate.py`` (mean/std of the channel average), separated with
    :func:`apply_model_batched`, and returned at its own rate and channel count.
    """

    def __init__(self, cfg: SeparateConfig):
        if cfg.shifts < 0:
            raise SeparatorError(f"separate.shifts must be >= 0, got {cfg.shifts}")
        if not 0 <= cfg.overlap < 1:
            raise SeparatorError(f"separate.overlap must lie in [0, 1), got {cfg.overlap}")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.batch_segments = max(1, cfg.batch_segments if self.device.type == "cuda" else cfg.cpu_batch_segments)
        self.bag, self.origin = load_model(cfg.model, cfg.weights)
        self.bag.eval()
        self.name = cfg.model
        self.stems = list(self.bag.sources)
        self.samplerate = int(self.bag.samplerate)
        self.audio_channels = int(self.bag.audio_channels)
        self._weights_sha: Optional[str] = None

    def weights_sha256(self) -> str:
        """sha256 over every parameter of every model in the bag (identifies the weights, any route)."""
        if self._weights_sha is None:
            digest = hashlib.sha256()
            for model in self.bag.models:
                for key, value in model.state_dict().items():
                    digest.update(key.encode())
                    digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            self._weights_sha = digest.hexdigest()
        return self._weights_sha

    def cache_params(self) -> dict:
        # batch_segments, device and bf16-free float32 paths change outputs only by rounding; bf16 more.
        return {"name": self.name, "weights": self.weights_sha256(), "shifts": self.cfg.shifts,
                "overlap": self.cfg.overlap, "seed": self.cfg.seed, "bf16": self.cfg.bf16, "impl": "batched-1"}

    def separate_many(self, mixes: list[AudioData]) -> list[dict[str, AudioData]]:
        # jobs: (mix index, channel index or None = all channels); >2 channels go one by one.
        jobs: list[tuple[int, Optional[int]]] = []
        for i, mix in enumerate(mixes):
            if mix.num_frames == 0:
                raise ValueError(f"mix {i} has no samples")
            if mix.channels <= self.audio_channels:
                jobs.append((i, None))
            else:
                jobs.extend((i, c) for c in range(mix.channels))
        inputs, norms = [], []
        for i, c in jobs:
            samples = mixes[i].samples if c is None else mixes[i].samples[c:c + 1]
            wav = _to_model_input(samples, mixes[i].sample_rate, self.samplerate, self.audio_channels)
            ref = wav.mean(0)
            mean, std = ref.mean(), ref.std() + 1e-8
            inputs.append((wav - mean) / std)
            norms.append((mean, std))
        outs = apply_model_batched(self.bag, inputs, shifts=self.cfg.shifts, overlap=self.cfg.overlap,
                                   batch_segments=self.batch_segments, device=self.device,
                                   seed=self.cfg.seed, bf16=self.cfg.bf16)
        results: list[dict[str, np.ndarray]] = [dict() for _ in mixes]
        for (i, c), out, (mean, std) in zip(jobs, outs, norms):
            mix = mixes[i]
            out = out * std + mean
            channels = mix.channels if c is None else 1
            for k, name in enumerate(self.stems):
                stem = _from_model_output(out[k], mix.sample_rate, self.samplerate, channels, mix.num_frames)
                if c is None:
                    results[i][name] = stem
                else:
                    results[i].setdefault(name, np.zeros_like(mix.samples))[c] = stem[0]
        return [{n: AudioData(s, m.sample_rate) for n, s in r.items()} for r, m in zip(results, mixes)]
