"""Demucs weights, found without touching the network, and the torch device to run them on.

Order: ``separate.weights`` (a file or a folder) when given; else the Hugging Face cache, then
``$TORCH_HOME/hub/checkpoints``. A machine without them fails at once with a message saying the three
ways to provide them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import yaml
from demucs.apply import BagOfModels

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
