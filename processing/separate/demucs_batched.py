"""demucs's ``apply_model`` for a stream of tracks, with segments of many tracks in each forward pass.

``demucs.apply.apply_model`` separates one track at a time: it cuts the track into fixed-length
segments and runs them through the model one by one, which leaves a GPU mostly idle.
:class:`BatchedSeparation` does the same arithmetic (same padding, segment length, stride,
triangular transition weights, random time shifts, bag-of-models weighting) but queues the segments
of every track it is given, whenever it is given it, and runs them ``batch_segments`` at a time, so
one forward pass holds segments of several songs and the model never waits for a whole group of
songs. Each track's output matches ``apply_model`` on that track (up to float rounding): each track
has its own random generator, seeded alike, and its segments are added up in apply_model's order.
Hand-written because demucs has no batched multi-track path. On CUDA an out-of-memory error halves
the batch and retries it; nothing on the way synchronises the device (no per-segment host reads).
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Sequence

import torch
from demucs.apply import TensorChunk, tensor_chunk


@dataclass
class _View:
    """One (track, model, shift) view, as apply_model's recursion sees it."""

    view: TensorChunk  # what apply_model's split branch cuts segments from
    length: int  # frames of the view
    trim: int  # frames dropped from the front of the view's output (shift undo)
    out: Optional[torch.Tensor] = None
    sum_weight: Optional[torch.Tensor] = None


@dataclass
class _Job:
    key: Hashable
    views: list[list[_View]] = field(default_factory=list)  # per model of the bag
    remaining: int = 0  # segments not yet through the model
    error: Optional[BaseException] = None


@dataclass
class _Piece:
    seq: int  # arrival order: batches take the oldest queued segments first
    job: _Job
    view: _View
    offset: int
    chunk: TensorChunk


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


def _forward_draws(model) -> list[int]:
    """``randrange`` bounds HTDemucs's transformer draws from Python's ``random`` on every
    forward pass (one per cross-transformer with sine embeddings, even when the shift is 0).
    apply_model's next shift offset comes after those draws, so they are replayed per track."""
    from demucs.transformer import CrossTransformerEncoder

    return [m.sin_random_shift + 1 for m in model.modules()
            if isinstance(m, CrossTransformerEncoder) and m.emb == "sin"]


def _forward(model, inputs: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(inputs).float()


class BatchedSeparation:
    """Tracks in (``add``), separated tracks out (``step`` returns those that finished).

    A track is a (channels, frames) tensor at the bag's rate and channel count, normalised as the
    caller wants. Its output is a (sources, channels, frames) tensor on ``device``.
    """

    def __init__(self, bag, shifts: int = 1, overlap: float = 0.25, batch_segments: int = 8,
                 device: Optional[torch.device] = None, seed: int = 0, bf16: bool = False,
                 transition_power: float = 1.0):
        self.models = list(bag.models) if hasattr(bag, "models") else [bag]
        self.bag_weights = bag.weights if hasattr(bag, "models") else [[1.0] * len(bag.sources)]
        self.n_sources = len(bag.sources)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.shifts, self.overlap, self.seed, self.bf16 = shifts, overlap, seed, bf16
        self.batch_segments = max(1, int(batch_segments))
        self.totals = [sum(w[k] for w in self.bag_weights) for k in range(self.n_sources)]
        self._segment = [int(m.samplerate * m.segment) for m in self.models]
        self._weight = [_transition_weight(s, transition_power, self.device) for s in self._segment]
        self._draws = [_forward_draws(m) for m in self.models]
        for model in self.models:
            model.to(self.device).eval()
        # Queues of segments by (model, model input length): constant for HTDemucs; the last,
        # shorter segment of a track may differ for the older Demucs/HDemucs models.
        self._queues: dict[tuple[int, int], deque[_Piece]] = {}
        self._seq = 0

    # ------------------------------------------------------------------ tracks in

    def add(self, key: Hashable, mix: torch.Tensor) -> None:
        """Queue every segment of one track (views drawn exactly as apply_model draws them)."""
        rng = random.Random(self.seed)  # apply_model draws shift offsets model by model, shift by shift
        mix = mix.to(self.device, non_blocking=True)
        job = _Job(key)
        for index, model in enumerate(self.models):
            views = self._views(model, index, mix, rng)
            job.views.append(views)
            segment = self._segment[index]
            stride = _stride(segment, self.overlap)
            for view in views:
                channels = view.view.shape[-2]
                view.out = torch.zeros(self.n_sources, channels, view.length, device=self.device)
                view.sum_weight = torch.zeros(view.length, device=self.device)
                for offset in range(0, view.length, stride):
                    chunk = TensorChunk(view.view, offset, segment)
                    valid = model.valid_length(chunk.length) if hasattr(model, "valid_length") else chunk.length
                    self._queues.setdefault((index, int(valid)), deque()).append(
                        _Piece(self._seq, job, view, offset, chunk))
                    self._seq += 1
                    job.remaining += 1

    def _views(self, model, index: int, mix: torch.Tensor, rng: random.Random) -> list[_View]:
        length = mix.shape[-1]
        if not self.shifts:
            return [_View(tensor_chunk(mix), length, 0)]
        max_shift = int(0.5 * model.samplerate)
        padded = tensor_chunk(mix).padded(length + 2 * max_shift)
        stride = _stride(self._segment[index], self.overlap)
        views = []
        for _ in range(self.shifts):
            offset = rng.randint(0, max_shift)
            views.append(_View(TensorChunk(padded, offset, length + max_shift - offset),
                               length + max_shift - offset, max_shift - offset))
            for _ in range(len(range(0, views[-1].length, stride))):
                for bound in self._draws[index]:
                    rng.randrange(bound)
        return views

    def pending(self) -> int:
        """Segments queued and not yet through the model."""
        return sum(len(q) for q in self._queues.values())

    # ------------------------------------------------------------------ work

    def step(self) -> list[tuple[Hashable, Any]]:
        """Run one batch (the oldest queued segments of one model); return the tracks it finished as
        (key, (sources, channels, frames) tensor) or (key, exception) for a track whose batch failed."""
        queues = [(q[0].seq, k) for k, q in self._queues.items() if q]
        if not queues:
            return []
        _, (index, valid) = min(queues)
        queue = self._queues[(index, valid)]
        batch = [queue.popleft() for _ in range(min(self.batch_segments, len(queue)))]
        model = self.models[index]
        try:
            inputs = torch.stack([piece.chunk.padded(valid) for piece in batch])
            outputs = _forward(model, inputs, self.device, self.bf16)
        except torch.cuda.OutOfMemoryError as exc:
            if self.batch_segments > 1:
                self.batch_segments = max(1, self.batch_segments // 2)  # retry this batch smaller; keep that size
                queue.extendleft(reversed(batch))
                torch.cuda.empty_cache()
                return []
            return self._fail({id(p.job): p.job for p in batch}.values(), exc)
        except Exception as exc:  # a bad track must not take the others down
            return self._fail({id(p.job): p.job for p in batch}.values(), exc)
        segment = self._segment[index]
        weight = self._weight[index]
        done = []
        for piece, out in zip(batch, outputs):
            n = piece.chunk.length
            piece.view.out[..., piece.offset:piece.offset + segment] += weight[:n] * _center_trim(out, n)
            piece.view.sum_weight[piece.offset:piece.offset + segment] += weight[:n]
            piece.job.remaining -= 1
            if piece.job.remaining == 0:
                done.append((piece.job.key, self._merge(piece.job)))
        return done

    def _fail(self, jobs, exc: BaseException) -> list[tuple[Hashable, Any]]:
        failed = {id(j) for j in jobs}
        for key, queue in self._queues.items():
            self._queues[key] = deque(p for p in queue if id(p.job) not in failed)
        for job in jobs:
            job.views = []
        return [(job.key, exc) for job in jobs]

    def _merge(self, job: _Job) -> torch.Tensor:
        estimate: Any = 0.0
        for views, model_weights in zip(job.views, self.bag_weights):
            out: Any = 0.0
            for view in views:
                out = out + (view.out / view.sum_weight)[..., view.trim:]
            if self.shifts:
                out = out / self.shifts
            for k, w in enumerate(model_weights):
                out[k] *= w
            estimate = estimate + out
        for k in range(estimate.shape[0]):
            estimate[k] /= self.totals[k]
        job.views = []
        return estimate

    def run(self) -> list[tuple[Hashable, Any]]:
        """Step until every queued segment has gone through the model."""
        done = []
        while self.pending():
            done.extend(self.step())
        return done


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
    """Separate several tracks at once; one (sources, channels, frames) CPU tensor per mix.

    Equals ``apply_model(bag, mix[None], shifts, overlap=overlap)[0]`` for each mix when Python's
    ``random`` is seeded with ``seed`` before each of those calls.
    """
    engine = BatchedSeparation(bag, shifts, overlap, batch_segments, device, seed, bf16, transition_power)
    for i, mix in enumerate(mixes):
        engine.add(i, mix)
    results: dict[Hashable, Any] = dict(engine.run())
    for i in range(len(mixes)):
        if isinstance(results[i], BaseException):
            raise results[i]
    return [results[i].cpu() for i in range(len(mixes))]
