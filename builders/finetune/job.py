"""One fine-tuning run from start to end: what ``scripts/finetune_musicgen.py`` does.

Data (a build folder, or a published version pulled first) -> examples ->
model (pretrained from the cache, loaded before any data so missing weights
fail at once; or tiny and random, its tokenizer trained on the training
descriptions and its EnCodec codebooks fitted to the training audio) ->
EnCodec codes -> training -> checkpoint + training.json + loss.png.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from . import FinetuneError, data, models, train

log = logging.getLogger(__name__)


@dataclass
class FinetuneJob:
    source: str  # a build folder or s3://bucket/prefix/<name>/<version|latest>
    out: Path  # the checkpoint folder
    model: str = "facebook/musicgen-small"  # a Hub id in the HF cache, or a local checkpoint folder
    tiny: bool = False  # a small random MusicGen instead of pretrained weights
    split: str = "train"
    validation_split: Optional[str] = "validation"  # None: no validation loss
    loader: str = "auto"  # "script" (datasets 3.x), "folder" (build/hf) or auto
    endpoint_url: Optional[str] = None
    pull_dest: Optional[Path] = None
    cache_dir: Optional[Path] = None  # datasets cache (default: datasets' own)
    hf_cache_dir: Optional[Path] = None  # Hugging Face hub cache to find pretrained weights in (default: HF_HOME's)
    offline: bool = False  # never download pretrained weights (as HF_HUB_OFFLINE=1)
    train: train.TrainConfig = field(default_factory=train.TrainConfig)
    progress: bool = True


@dataclass
class FinetuneResult:
    checkpoint: Path
    build: Path
    train_examples: int
    validation_examples: int
    result: train.TrainResult
    seconds: float


def _build_info(build: Path) -> dict:
    path = build / "build_info.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: info[k] for k in ("name", "version", "schema_version", "sample_rate", "channels", "splits") if k in info}


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FinetuneError(f"device {name!r}: no CUDA GPU is available to torch here")
    return name


def run(job: FinetuneJob) -> FinetuneResult:
    t0 = time.perf_counter()
    cfg = job.train
    cfg.device = _device(cfg.device)
    bundle = None if job.tiny else models.load_pretrained(job.model, job.hf_cache_dir, job.offline)  # fail before any data work
    build = data.resolve_build(job.source, job.pull_dest, job.endpoint_url, progress=job.progress)
    rate = bundle.sampling_rate if bundle else 32000
    channels = bundle.audio_channels if bundle else 1
    train_rows = data.examples(data.load_split(build, job.split, job.loader, job.cache_dir), rate, channels, build)
    if not train_rows:
        raise FinetuneError(f"{build}: the {job.split!r} split has no rows with a description to train on")
    val_rows: list[data.Example] = []
    if job.validation_split:
        try:
            val_rows = data.examples(data.load_split(build, job.validation_split, job.loader, job.cache_dir),
                                     rate, channels, build)
        except FinetuneError as exc:
            log.warning("no validation loss: %s", exc)
    if bundle is None:
        tokenizer = models.train_tokenizer([ex.text for ex in train_rows])
        bundle = models.tiny_musicgen(tokenizer, seed=cfg.seed)
        models.fit_codebooks(bundle, [ex.audio[0] for ex in train_rows], seed=cfg.seed)
    bundle.model.to(cfg.device)
    items = train.encode_audio(bundle, train_rows, progress=job.progress)
    val_items = train.encode_audio(bundle, val_rows, progress=job.progress) if val_rows else None
    result = train.train(bundle, items, cfg, validation=val_items, progress=job.progress)
    bundle.model.to("cpu")
    info = {
        "model": bundle.name,
        "source": job.source,
        "build": str(build),
        "dataset": _build_info(build),
        "split": job.split,
        "train_examples": len(items),
        "validation_examples": len(val_items or []),
        "train_config": asdict(cfg),
    }
    train.save_checkpoint(bundle, result, job.out, info)
    return FinetuneResult(Path(job.out), build, len(items), len(val_items or []), result, time.perf_counter() - t0)
