"""(description, audio) examples -> EnCodec codes -> delayed batches -> a trained MusicGen checkpoint.

MusicGen predicts its K codebooks in parallel with the "delay" pattern:
codebook k is shifted right by k steps, so at step t the model emits
codebook 0 of frame t, codebook 1 of frame t-1, ... The positions this opens
(before a codebook starts, after it ends, and padding; stereo models
interleave left/right codebooks, a pair sharing one delay) hold the pad id, which
transformers' MusicGen loss ignores; the model shifts the labels right
itself (its decoder start id first). Training crops random segments of
``segment_s`` seconds, as audiocraft does, and drops the text condition with
probability ``text_dropout`` (zeroed text states: the null condition
transformers' classifier-free guidance uses at generation).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import FinetuneError
from .data import Example
from .models import MusicgenBundle

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 500
    batch_size: int = 4
    lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # audiocraft's default clipping
    segment_s: float = 30.0  # random crops of this length (audiocraft trains on 30 s; capped at the longest chunk)
    text_dropout: float = 0.1  # classifier-free guidance training dropout (audiocraft's default)
    train_text_encoder: bool = False  # audiocraft keeps T5 frozen by default
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False  # bfloat16 autocast (CUDA)
    log_every: int = 10  # steps between validation losses (when a validation set is given)
    weighted: bool = False  # draw examples in proportion to their sampling weight (the build's `weight` column)


@dataclass
class Encoded:
    chunk_id: str
    text: str
    codes: np.ndarray  # int64 (num_codebooks, frames)
    weight: float = 1.0  # sampling weight


@dataclass
class TrainResult:
    losses: list[float]  # training loss per step
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def encode_audio(bundle: MusicgenBundle, examples: list[Example], progress: bool = False) -> list[Encoded]:
    """Each example's audio -> its EnCodec codes (num_codebooks, frames), with the model's own audio encoder."""
    import torch
    from tqdm import tqdm

    model, want = bundle.model, bundle.model.decoder.config.num_codebooks
    encoder = model.audio_encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    with torch.no_grad():
        for ex in tqdm(examples, desc="EnCodec", unit="chunk", disable=not progress, file=sys.stderr, leave=False):
            channels = []
            for side in ex.audio:  # EnCodec is mono; a stereo model interleaves left/right codebooks
                wave = torch.from_numpy(np.ascontiguousarray(side, dtype=np.float32))[None, None].to(device)
                codes = encoder.encode(wave).audio_codes  # (chunks, batch, codebooks, frames)
                if codes.shape[0] != 1:
                    raise FinetuneError(f"{bundle.name}: EnCodec returned {codes.shape[0]} chunks; "
                                        "its chunk_length_s must be unset for MusicGen")
                channels.append(codes[0, 0])
            codes = torch.stack(channels, dim=1).reshape(-1, channels[0].shape[-1])  # k0L, k0R, k1L, ...
            if codes.shape[0] != want:
                raise FinetuneError(f"{bundle.name}: EnCodec gave {codes.shape[0]} codebooks for {ex.chunk_id}, "
                                    f"the decoder expects {want}")
            out.append(Encoded(ex.chunk_id, ex.text, codes.cpu().numpy().astype(np.int64), ex.weight))
    return out


def delay_pattern(codes: np.ndarray, pad_id: int, audio_channels: int = 1) -> np.ndarray:
    """(K, T) codes -> (T + K/channels - 1, K) labels: codebook k delayed by k steps, the gaps holding ``pad_id``.

    Stereo models interleave left/right codebooks (k0L, k0R, k1L, ...); both of a pair share a delay,
    as in transformers' ``build_delay_pattern_mask`` and audiocraft's stereo delays [0, 0, 1, 1, ...].
    """
    k, t = codes.shape
    delays = np.arange(k) // audio_channels
    labels = np.full((k, t + int(delays[-1])), pad_id, dtype=np.int64)
    for i, d in enumerate(delays):
        labels[i, d:d + t] = codes[i]
    return labels.T


def draw_batch(rng: np.random.Generator, weights: Optional[np.ndarray], n_items: int, size: int) -> np.ndarray:
    """Indices of one batch: uniform (without replacement when there are enough items), or with ``weights``
    in proportion to them, with replacement (as torch's WeightedRandomSampler and audiocraft's sample_on_weight)."""
    if weights is None:
        return rng.choice(n_items, size=size, replace=n_items < size)
    return rng.choice(n_items, size=size, replace=True, p=weights / weights.sum())


def make_batch(items: list[Encoded], frames: int, pad_id: int, rng: Optional[np.random.Generator],
               audio_channels: int = 1):
    """Crop (random when ``rng``, else from the start) to ``frames``, delay, pad: (texts, labels (B, L, K))."""
    import torch

    rows = []
    for item in items:
        t = item.codes.shape[1]
        start = int(rng.integers(0, t - frames + 1)) if rng is not None and t > frames else 0
        rows.append(delay_pattern(item.codes[:, start:start + frames], pad_id, audio_channels))
    length = max(r.shape[0] for r in rows)
    labels = np.full((len(rows), length, rows[0].shape[1]), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        labels[i, : r.shape[0]] = r
    return [item.text for item in items], torch.from_numpy(labels)


def _loss(bundle: MusicgenBundle, texts: list[str], labels, text_dropout: float, generator, cfg: TrainConfig):
    import torch

    model = bundle.model
    device = next(model.parameters()).device
    tokens = bundle.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
    with torch.set_grad_enabled(torch.is_grad_enabled() and cfg.train_text_encoder):
        states = model.text_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    if text_dropout > 0:
        keep = (torch.rand(len(texts), generator=generator) >= text_dropout).to(states.dtype).to(device)
        states = states * keep[:, None, None]
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        out = model(encoder_outputs=(states,), attention_mask=tokens.attention_mask, labels=labels.to(device))
    return out.loss


def validation_loss(bundle: MusicgenBundle, items: list[Encoded], frames: int, batch_size: int, cfg: TrainConfig) -> float:
    """Mean loss over ``items`` (first ``frames`` of each, full text condition), without training."""
    import torch

    model = bundle.model
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            texts, labels = make_batch(items[i:i + batch_size], frames, model.config.decoder.pad_token_id, None,
                                       bundle.audio_channels)
            total += float(_loss(bundle, texts, labels, 0.0, None, cfg)) * len(texts)
    model.train(was_training)
    return total / len(items)


def train(bundle: MusicgenBundle, items: list[Encoded], cfg: TrainConfig, validation: Optional[list[Encoded]] = None,
          progress: bool = True) -> TrainResult:
    """``cfg.steps`` AdamW steps on random (description, codes) batches; the loss of every step."""
    import torch
    from tqdm import tqdm

    if not items:
        raise FinetuneError("no training examples: the split is empty or no row has a description")
    model = bundle.model
    frame_rate = bundle.model.config.audio_encoder.frame_rate
    frames = max(1, min(int(round(cfg.segment_s * frame_rate)), max(i.codes.shape[1] for i in items)))
    pad_id = model.config.decoder.pad_token_id
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    for p in model.audio_encoder.parameters():
        p.requires_grad_(False)
    for p in model.text_encoder.parameters():
        p.requires_grad_(cfg.train_text_encoder)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(0, cfg.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    weights = np.array([i.weight for i in items], dtype=np.float64) if cfg.weighted else None
    if weights is not None and not (np.all(weights >= 0) and weights.sum() > 0):
        raise FinetuneError("--weighted: the build's weights must be >= 0 and not all 0 (rebuild with curate.weighting)")
    result = TrainResult(losses=[])
    if validation:
        result.val_losses.append((0, validation_loss(bundle, validation, frames, cfg.batch_size, cfg)))
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="fine-tune", unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        batch = [items[i] for i in draw_batch(rng, weights, len(items), cfg.batch_size)]
        texts, labels = make_batch(batch, frames, pad_id, rng, bundle.audio_channels)
        loss = _loss(bundle, texts, labels, cfg.text_dropout, generator, cfg)
        if not torch.isfinite(loss):
            raise FinetuneError(f"the loss became {float(loss)} at step {step + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        result.losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{result.losses[-1]:.3f}")
        if validation and ((step + 1) % max(1, cfg.log_every) == 0 or step + 1 == cfg.steps):
            result.val_losses.append((step + 1, validation_loss(bundle, validation, frames, cfg.batch_size, cfg)))
    bar.close()
    result.seconds = time.perf_counter() - t0
    return result


def plot_losses(result: TrainResult, path: Path, title: str = "MusicGen fine-tuning") -> Path:
    """The loss curve (training per step, validation where measured) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = np.arange(1, len(result.losses) + 1)
    ax.plot(steps, result.losses, label="train", lw=1)
    if len(result.losses) >= 20:  # a moving average shows the trend through the batch noise
        w = max(5, len(result.losses) // 20)
        smooth = np.convolve(result.losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, label=f"train (mean of {w})", lw=2)
    if result.val_losses:
        vs, vl = zip(*result.val_losses)
        ax.plot(vs, vl, "o-", label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy (mean over codebooks)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_checkpoint(bundle: MusicgenBundle, result: TrainResult, out: Path, info: dict) -> Path:
    """save_pretrained of model and processor, ``training.json`` (settings, losses) and ``loss.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle.model.save_pretrained(out)
    bundle.processor.save_pretrained(out)
    record = {**info, **result.to_dict(), "first_loss": result.losses[0] if result.losses else None,
              "last_loss": result.losses[-1] if result.losses else None}
    (out / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    plot_losses(result, out / "loss.png")
    return out

