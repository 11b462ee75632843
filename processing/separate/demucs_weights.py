"""Demucs weights: found on disk, else fetched once from the Hugging Face Hub and checked; the torch device.

Order: ``separate.weights`` (a file or a folder) when given; else the Hugging Face cache (the pinned
revision, verified; then whatever revision a user put there), then ``$TORCH_HOME/hub/checkpoints``;
else, for a model with a pinned download (``PINNED``, or ``separate.pins``), its safetensors files are
fetched with ``huggingface_hub`` (``HF_ENDPOINT``, a progress bar) into the Hugging Face cache at the
pinned revision and checked against the size and sha256 recorded here before use: a file that differs
is refused and removed, and so is an unfinished one. Nothing fetched from the network is ever
unpickled (only safetensors are fetched; legacy ``.th`` files are for users who place them by hand).
``separate.offline`` or ``HF_HUB_OFFLINE=1`` forbid the download: missing weights then fail at once
with a message saying the ways to provide them.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import yaml
from demucs.apply import BagOfModels

from ..hub import CONNECT_TIMEOUT_S, error_words, hub_endpoint, hub_offline, unreachable
from .base import SeparatorError

# Released demucs models: which Hugging Face repo holds each, and which files.
HF_NAMESPACE = "adefossez"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Pin:
    """A download a build may make: these files of this repo at this commit, and only these bytes."""

    repo_id: str
    revision: str  # a commit hash: a moved branch or tag never changes what is fetched
    files: tuple[PinnedFile, ...]


# What a build fetches when a released model's weights are missing, and the only bytes it accepts.
# These were not measured on our machines, which have no network: revision, sizes and sha256 are the
# ones several independent public projects recorded for demucs 4.1's adefossez/HTDemucs (the same
# revision and hashes in each); htdemucs.yaml is the 21 bytes "models: ['955717e8']\n", whose sha256
# we recomputed. More models (htdemucs_ft, htdemucs_6s, a mirror's own) can be pinned with
# separate.pins; a model without a pin is never downloaded.
PINNED: dict[str, Pin] = {
    "htdemucs": Pin("adefossez/HTDemucs", "bf35a81b663819a8255c8fefee17f9d812b786b5", (
        PinnedFile("htdemucs.yaml", "239c445d0b14454d541ad8bd9bb271c9e536d267e8a4625208744cbb2e7bb66c", 21),
        PinnedFile("955717e8.safetensors", "d9fa14133cfcc034a6758923bb3a8ca9f8dfd0b582134643bbf83f72c17576dd",
                   84_025_440),
    )),
}


class _LoadError(RuntimeError):
    pass


def read_pins(path: Optional[Path]) -> dict[str, Pin]:
    """The built-in pins, plus those of a ``separate.pins`` YAML file::

        htdemucs_ft:
          repo: adefossez/HTDemucs-ft
          revision: <40-hex commit>
          files: {htdemucs_ft.yaml: {sha256: <64 hex>, size: 65}, f7e0c4bc.safetensors: {...}, ...}
    """
    pins = dict(PINNED)
    if path is None:
        return pins
    try:
        data = yaml.safe_load(Path(path).read_text())
        for model, entry in (data or {}).items():
            files = tuple(PinnedFile(str(name), str(f["sha256"]).lower(), int(f["size"]))
                          for name, f in entry["files"].items())
            revision = str(entry["revision"])
            if len(revision) != 40 or any(c not in "0123456789abcdef" for c in revision):
                raise ValueError(f"{model}: revision {revision!r} is not a commit hash (40 hex digits)")
            if not files or any(len(f.sha256) != 64 for f in files):
                raise ValueError(f"{model}: every file needs a sha256 (64 hex digits) and a size")
            pins[str(model)] = Pin(str(entry["repo"]), revision, files)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SeparatorError(f"separate.pins={path}: {exc} (expected model: {{repo, revision, files: "
                             "{name: {sha256, size}}}})") from exc
    return pins


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _mismatch(path: Path, pinned: PinnedFile) -> Optional[str]:
    """Why the file is not the pinned one (None when it is): its size, else its sha256."""
    size = path.stat().st_size
    if size != pinned.size:
        return f"{size} bytes, not the pinned {pinned.size}"
    digest = _sha256(path)
    return None if digest == pinned.sha256 else f"sha256 {digest}, not the pinned {pinned.sha256}"


def _repo_folder(pin: Pin) -> Path:
    return _hf_cache_dir() / f"models--{pin.repo_id.replace('/', '--')}"


def _discard(pin: Pin, names: list[str]) -> None:
    """Remove these files of the pinned snapshot (and the blobs they point at) and any unfinished transfer
    of the repo, so that nothing refused stays in the cache."""
    snapshot = _repo_folder(pin) / "snapshots" / pin.revision
    for name in names:
        link = snapshot / name
        blob = link.resolve() if link.is_symlink() else None
        link.unlink(missing_ok=True)
        if blob is not None and blob.parent.name == "blobs":
            blob.unlink(missing_ok=True)
    for partial in (_repo_folder(pin) / "blobs").glob("*.incomplete"):
        partial.unlink(missing_ok=True)


def offline_routes(name: str) -> str:
    return ("Work offline instead: put the files in place on a machine with network and copy them here, "
            "then pass --offline (separate.offline=true) or set HF_HUB_OFFLINE=1:\n"
            + missing_weights_message(name, intro=False))


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


def _from_pinned_snapshot(name: str, pin: Pin):
    """The bag from the pinned revision in the Hugging Face cache, every file checked; None when a file is
    missing. A file there that is not the pinned one is removed (it is fetched again unless offline)."""
    snapshot = _repo_folder(pin) / "snapshots" / pin.revision
    if not all((snapshot / f.name).is_file() for f in pin.files):
        return None
    bad = [(f.name, why) for f in pin.files if (why := _mismatch(snapshot / f.name, f))]
    if bad:
        log.warning("the Hugging Face cache's %s at %s holds a file that is not the pinned one (%s): removed",
                    pin.repo_id, pin.revision, "; ".join(f"{n}: {why}" for n, why in bad))
        _discard(pin, [n for n, _ in bad])
        return None
    return _pinned_bag(name, pin, snapshot), f"Hugging Face cache {_hf_cache_dir()} ({pin.repo_id}@{pin.revision[:8]}, verified)"


def _pinned_bag(name: str, pin: Pin, snapshot: Path):
    from demucs.hf import load_safetensors_model

    _, bare = _hf_repo_id(name)
    bag = yaml.safe_load((snapshot / f"{bare}.yaml").read_text())
    pinned = {f.name for f in pin.files}
    unpinned = [sig for sig in bag["models"] if f"{sig}.safetensors" not in pinned]
    if unpinned:
        raise _LoadError(f"{pin.repo_id}: {bare}.yaml names {', '.join(unpinned)}, which the pin does not cover")
    return _bag([load_safetensors_model(snapshot / f"{sig}.safetensors") for sig in bag["models"]], bag)


def download_pinned(name: str, pin: Pin):
    """Fetch the pinned files into the Hugging Face cache (huggingface_hub: HF_ENDPOINT, resumable, a
    progress bar), check each before use, and load the bag. A failure leaves nothing of it in the cache."""
    from huggingface_hub import hf_hub_download

    endpoint, cache = hub_endpoint(), _hf_cache_dir()
    why = unreachable(pin.repo_id, pin.files[0].name, pin.revision)  # fails within seconds, not after backoff
    if why:
        raise SeparatorError(f"cannot download the {name} weights: {why}\n" + offline_routes(name))
    size_mb = sum(f.size for f in pin.files) / 1e6
    log.warning("downloading the %s weights (%s, %.0f MB) from %s at %s into the Hugging Face cache %s",
                name, pin.repo_id, size_mb, endpoint, pin.revision[:8], cache)
    for f in pin.files:
        where = f"{endpoint}/{pin.repo_id}/resolve/{pin.revision}/{f.name}"
        try:
            path = Path(hf_hub_download(pin.repo_id, f.name, revision=pin.revision, cache_dir=cache,
                                        endpoint=endpoint, etag_timeout=CONNECT_TIMEOUT_S))
        except Exception as exc:  # huggingface_hub and httpx raise many kinds; each ends the same way
            _discard(pin, [f.name])
            raise SeparatorError(f"cannot download the {name} weights: {where}: {error_words(exc)}\n"
                                 + offline_routes(name)) from exc
        why = _mismatch(path, f)
        if why:
            _discard(pin, [f.name])
            raise SeparatorError(f"refused the {name} weights downloaded from {where}: the file has {why} "
                                 "(a corrupted or truncated transfer, or other bytes at that address); "
                                 "nothing of it was kept in the cache. Run again to retry.\n" + offline_routes(name))
    snapshot = _repo_folder(pin) / "snapshots" / pin.revision
    return _pinned_bag(name, pin, snapshot), f"downloaded from {endpoint} ({pin.repo_id}@{pin.revision[:8]}, verified) into {cache}"


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


def missing_weights_message(name: str, why: str = "", intro: bool = True) -> str:
    sigs = _signatures(name)
    urls = _remote_files()
    repo_id, bare = _hf_repo_id(name)
    th_names = [urls[s].rsplit("/", 1)[1] for s in sigs if s in urls]
    sig_th = ", ".join(f"{s}.th" for s in sigs) or "<signature>.th"
    sig_st = ", ".join(f"{s}.safetensors" for s in sigs) or "<signature>.safetensors"
    lines = [
        f"demucs weights for separate.model={name} were not found ({why or 'nothing was downloaded'}).",
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
    return "\n".join(lines if intro else lines[1:])


def load_model(name: str, weights: Optional[Path] = None, offline: bool = False, pins: Optional[Path] = None):
    """Load a demucs model (always as a BagOfModels), downloading its pinned files once when missing.

    Order: ``weights`` (a file or a folder) when given; else the Hugging Face cache (the pinned revision,
    verified, then any other), then ``$TORCH_HOME/hub/checkpoints``; else the pinned download, unless
    ``offline`` or HF_HUB_OFFLINE=1. Returns (bag, where it came from). Raises SeparatorError with
    instructions when nothing is found or the download fails.
    """
    from demucs.repo import ModelLoadingError

    pin = read_pins(pins).get(name) if weights is None else None
    try:
        if weights is not None:
            weights = Path(weights).expanduser()
            if weights.is_dir():
                return _from_folder(name, weights), str(weights)
            if weights.is_file():
                return _from_file(name, weights), str(weights)
            raise SeparatorError(f"separate.weights={weights}: no such file or folder\n" + missing_weights_message(name))
        lookups = ([lambda n: _from_pinned_snapshot(n, pin)] if pin else []) + [_from_hf_cache, _from_torch_hub]
        for lookup in lookups:
            found = lookup(name)
            if found is not None:
                return found
        if pin is not None and not hub_offline(offline):
            return download_pinned(name, pin)
    except SeparatorError:
        raise
    except (ModelLoadingError, _LoadError, OSError, KeyError, ValueError, RuntimeError) as exc:
        where = f"separate.weights={weights}" if weights is not None else "the weights cache"
        raise SeparatorError(f"cannot load demucs model {name!r} from {where}: {exc}\n"
                             + missing_weights_message(name)) from exc
    if pin is None:
        why = f"nothing is downloaded for it: no pinned download (pinned: {', '.join(sorted(read_pins(pins)))}; more with separate.pins)"
    elif offline:
        why = "offline: separate.offline=true (--offline) forbids the download"
    else:
        why = "offline: HF_HUB_OFFLINE=1 forbids the download"
    raise SeparatorError(missing_weights_message(name, why))


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
