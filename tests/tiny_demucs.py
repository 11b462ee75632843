"""A tiny, randomly initialised HTDemucs saved the way demucs saves its packages.

It runs demucs's real code path (spectrogram + time branches, transformer,
overlap-add) in milliseconds, so tests can check the separator's plumbing
and its equality with ``demucs.apply.apply_model`` without real weights.
Its outputs are meaningless as music separation.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch

SOURCES = ["drums", "bass", "other", "vocals"]
SIGNATURE = "955717e8"  # the released htdemucs signature, so the file names are the real ones
TORCH_HUB_NAME = "955717e8-8726e21a.th"  # the name demucs's legacy download gives the file


def tiny_htdemucs(seed: int = 0, segment: float = 2):
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(sources=list(SOURCES), channels=4, depth=3, nfft=1024, t_layers=1, t_heads=1,
                     dconv_mode=0, segment=segment)
    return model.eval()


def package(model) -> dict:
    """What ``demucs.states.serialize_model`` builds (minus the training args, which need omegaconf)."""
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs,
            "state": get_state(model, None, half=False), "training_args": {}}


def save_th(model, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(package(model), path)
    return path


def save_repo(folder: Path, name: str = "htdemucs", models: list | None = None, weights=None) -> Path:
    """A demucs local repo: ``<sig>.th`` per model and ``<name>.yaml`` listing them (``demucs --repo``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = models or [tiny_htdemucs()]
    sigs = [SIGNATURE] + [f"{SIGNATURE[:-1]}{i}" for i in range(1, len(models))]
    for sig, model in zip(sigs, models):
        save_th(model, folder / f"{sig}.th")
    lines = [f"models: {sigs!r}"]
    if weights is not None:
        lines.append(f"weights: {weights!r}")
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder


def _encode(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def save_safetensors(model, path: Path) -> Path:
    """The layout of the Hugging Face ``adefossez/*`` repos (class and init args in the metadata)."""
    from safetensors.torch import save_file

    args, kwargs = model._init_args_kwargs
    klass = f"{model.__class__.__module__}.{model.__class__.__name__}"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"klass": klass, "args": json.dumps(_encode(list(args))),
                                          "kwargs": json.dumps(_encode(kwargs))})
    return Path(path)


def fill_hf_cache(cache: Path, model, name: str = "htdemucs", repo: str = "adefossez--HTDemucs") -> Path:
    """A Hugging Face hub cache holding ``<name>.yaml`` and ``<sig>.safetensors`` for the model."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = Path(cache) / f"models--{repo}" / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (Path(cache) / f"models--{repo}" / "refs").mkdir(exist_ok=True)
    (Path(cache) / f"models--{repo}" / "refs" / "main").write_text(revision)
    (snapshot / f"{name}.yaml").write_text(f"models: ['{SIGNATURE}']\n")
    save_safetensors(model, snapshot / f"{SIGNATURE}.safetensors")
    return Path(cache)
