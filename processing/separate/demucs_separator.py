"""Demucs behind the Separator protocol, in three record steps that can run in three places.

1. ``prepare_model_input`` (a CPU worker): the song at the model's rate and channel count (soxr),
   normalised as demucs's own ``separate.py`` does (mean/std of the channel average); mono is
   duplicated to the model's channels, more than two channels are separated channel by channel.
2. :class:`DemucsStream` (the one model worker, on the GPU when there is one): songs in as they come,
   segments of all of them batched through the model (:mod:`.demucs_batched`), and for each finished
   song the instrumental and the per-window stem levels computed on the device; only those (and the
   stems with ``keep_stems``) are copied back to the host, asynchronously into pinned memory.
3. ``separation_from_model`` (a CPU worker): back to the song's rate and length.

``DemucsSeparator.separate_many`` runs the three steps in one place (tests, benchmarks) and returns
every stem at each mix's rate; its output equals demucs's ``apply_model`` song by song.

On CUDA the defaults are the fastest measured on an H100 (batches of 64 segments, bfloat16 autocast);
on a CPU batching measured slower (larger tensors, same FLOPs), so CPU runs use
``cpu_batch_segments`` (default 1) and float32.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

import numpy as np
import soxr
import torch

from ..config import SeparateConfig
from ..types import AudioData, StemLevels
from .base import SeparatorError
from .demucs_batched import BatchedSeparation, apply_model_batched  # noqa: F401  (apply_model_batched: public)
from .demucs_weights import load_model, resolve_device
from .levels import VOCAL_STEMS, levels_from_host, levels_on_device
from .stage import Separation

CUDA_BATCH_SEGMENTS = 64  # measured fastest on an H100 (b64 bf16 239x real time against 172x for b8 fp32)


@dataclass
class ModelInput:
    """A song ready for the model (picklable: made on a CPU worker, sent to the model worker)."""

    tracks: list[np.ndarray]  # (model channels, frames at the model's rate), normalised
    norms: list[tuple[float, float]]  # (mean, std) that normalised each track
    channel_of_track: list[Optional[int]]  # None: the track is the whole song; c: the song's channel c alone
    channels: int  # the song's channel count
    frames: int  # the song's length at its own rate
    sample_rate: int  # the song's rate


@dataclass
class ModelOutput:
    """A separated song at the model's rate, on the host."""

    instrumental: Optional[np.ndarray]  # (song channels, model-rate frames); None in residual mode
    vocals: Optional[np.ndarray]  # the vocal stem, in residual mode (instrumental = mix - vocals)
    stems: dict[str, np.ndarray] = field(default_factory=dict)  # every stem, only with keep_stems
    levels: Optional[StemLevels] = None  # at the model's rate
    model_rate: int = 44100
    source: Optional[ModelInput] = None  # the song's input description (its audio dropped)
    busy_s: float = 0.0  # this song's share of the model worker's busy time (set by the executor's model worker)


def prepare_model_input(mix: AudioData, model_rate: int, model_channels: int) -> ModelInput:
    """Step 1: resample, match channels and normalise (see the module docstring)."""
    if mix.num_frames == 0:
        raise ValueError("the mix has no samples")
    jobs: list[Optional[int]] = [None] if mix.channels <= model_channels else list(range(mix.channels))
    tracks, norms = [], []
    for c in jobs:
        samples = mix.samples if c is None else mix.samples[c:c + 1]
        if mix.sample_rate != model_rate:
            samples = soxr.resample(samples.T, mix.sample_rate, model_rate).T
        if samples.shape[0] == 1 and model_channels > 1:
            samples = np.repeat(samples, model_channels, axis=0)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        ref = samples.mean(axis=0)
        mean, std = float(ref.mean()), float(ref.std()) + 1e-8
        tracks.append((samples - np.float32(mean)) / np.float32(std))
        norms.append((mean, std))
    return ModelInput(tracks, norms, jobs, mix.channels, mix.num_frames, mix.sample_rate)


def _assemble(inp: ModelInput, outs: list[torch.Tensor], tracks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Denormalised (sources, song channels, frames) stems and (song channels, frames) mix, at the model's
    rate, from the model's outputs and its (normalised) input tracks."""
    stems, mixes = [], []
    for c, out, track, (mean, std) in zip(inp.channel_of_track, outs, tracks, inp.norms):
        out = out * std + mean
        mix = track.to(out.device) * std + mean
        if c is not None or inp.channels == 1:  # one song channel went through as a duplicated pair
            out, mix = out.mean(dim=1, keepdim=True), mix.mean(dim=0, keepdim=True)
        stems.append(out)
        mixes.append(mix)
    return torch.cat(stems, dim=1), torch.cat(mixes, dim=0)


def _to_song_rate(x: np.ndarray, model_rate: int, rate: int, frames: int) -> np.ndarray:
    if rate != model_rate:
        x = soxr.resample(np.ascontiguousarray(x.T), model_rate, rate).T
    x = x[:, :frames] if x.shape[1] >= frames else np.pad(x, ((0, 0), (0, frames - x.shape[1])))
    return np.ascontiguousarray(x, dtype=np.float32)


def separation_from_model(out: ModelOutput, mix: Optional[AudioData]) -> Separation:
    """Step 3: the song's separation at its own rate and length (``mix``: needed in residual mode)."""
    rate, frames = out.source.sample_rate, out.source.frames
    if out.instrumental is not None:
        instrumental = AudioData(_to_song_rate(out.instrumental, out.model_rate, rate, frames), rate)
    else:
        if mix is None:
            raise ValueError("residual mode needs the mix")
        vocals = _to_song_rate(out.vocals, out.model_rate, rate, frames)
        instrumental = AudioData(mix.samples - vocals, rate)
    stems = {n: AudioData(_to_song_rate(s, out.model_rate, rate, frames), rate) for n, s in out.stems.items()}
    return Separation(instrumental, out.levels, stems)


def without_tracks(inp: ModelInput) -> ModelInput:
    """The input's description without its audio (what step 3 needs; cheap to send back)."""
    return ModelInput([], list(inp.norms), list(inp.channel_of_track), inp.channels, inp.frames, inp.sample_rate)


class DemucsSeparator:
    """A demucs model (any released name, or a local repo): weights are loaded in the constructor, so
    missing weights fail before any work (SeparatorError with instructions)."""

    runs_in_model_worker = True

    def __init__(self, cfg: SeparateConfig):
        if cfg.shifts < 0:
            raise SeparatorError(f"separate.shifts must be >= 0, got {cfg.shifts}")
        if not 0 <= cfg.overlap < 1:
            raise SeparatorError(f"separate.overlap must lie in [0, 1), got {cfg.overlap}")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        cuda = self.device.type == "cuda"
        batch = cfg.batch_segments if cfg.batch_segments is not None else CUDA_BATCH_SEGMENTS
        self.batch_segments = max(1, batch if cuda else cfg.cpu_batch_segments)
        self.bf16 = cfg.bf16 if cfg.bf16 is not None else cuda
        self.bag, self.origin = load_model(cfg.model, cfg.weights, cfg.offline, cfg.pins)
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
        # batch size and device change outputs only by float rounding; bf16 more, so it is part of the key.
        return {"name": self.name, "weights": self.weights_sha256(), "shifts": self.cfg.shifts,
                "overlap": self.cfg.overlap, "seed": self.cfg.seed, "bf16": self.bf16, "impl": "batched-1"}

    def model_format(self) -> tuple[int, int]:
        """(rate, channels) that ``prepare_model_input`` must produce for this model."""
        return self.samplerate, self.audio_channels

    def stream(self, instrumental_mode: str = "sum", keep_stems: bool = False) -> "DemucsStream":
        """What the model worker runs (step 2)."""
        return DemucsStream(self, instrumental_mode, keep_stems)

    def engine(self) -> BatchedSeparation:
        return BatchedSeparation(self.bag, shifts=self.cfg.shifts, overlap=self.cfg.overlap,
                                 batch_segments=self.batch_segments, device=self.device, seed=self.cfg.seed,
                                 bf16=self.bf16)

    def separate_many(self, mixes: list[AudioData]) -> list[dict[str, AudioData]]:
        """Every stem of every mix, at the mix's rate and channel count (all three steps here)."""
        inputs = [prepare_model_input(m, self.samplerate, self.audio_channels) for m in mixes]
        engine = self.engine()
        for i, inp in enumerate(inputs):
            for j, track in enumerate(inp.tracks):
                engine.add((i, j), torch.from_numpy(track))
        done = dict(engine.run())
        results = []
        for i, inp in enumerate(inputs):
            outs = [done[(i, j)] for j in range(len(inp.tracks))]
            for out in outs:
                if isinstance(out, BaseException):
                    raise out
            stems, _ = _assemble(inp, outs, [torch.from_numpy(track) for track in inp.tracks])
            stems = stems.cpu().numpy()
            results.append({name: AudioData(_to_song_rate(stems[k], self.samplerate, inp.sample_rate, inp.frames),
                                            inp.sample_rate) for k, name in enumerate(self.stems)})
        return results


class DemucsStream:
    """The model worker's side of separation: ``add`` songs as they come, ``step`` until ``idle``;
    each step runs one batch and returns the songs that are complete on the host as
    (key, ModelOutput) or (key, exception)."""

    def __init__(self, separator: DemucsSeparator, instrumental_mode: str = "sum", keep_stems: bool = False):
        self.separator = separator
        self.engine = separator.engine()
        self.mode = instrumental_mode
        self.keep_stems = keep_stems
        self.device = separator.device
        self._songs: dict[Hashable, tuple[ModelInput, list[Any], list[torch.Tensor]]] = {}
        self._copies: list[tuple[Hashable, Any, Any]] = []  # (key, event or None, host tensors)
        self._errors: list[tuple[Hashable, BaseException]] = []

    def add(self, key: Hashable, inp: ModelInput) -> None:
        on_device = []
        for track in inp.tracks:
            tensor = torch.from_numpy(track)
            if self.device.type == "cuda":
                tensor = tensor.pin_memory()  # the copy to the device is then asynchronous
            on_device.append(tensor.to(self.device, non_blocking=True))
        self._songs[key] = (without_tracks(inp), [None] * len(on_device), on_device)
        for j, tensor in enumerate(on_device):
            self.engine.add((key, j), tensor)

    def songs_in_flight(self) -> int:
        return len(self._songs) + len(self._copies)

    def idle(self) -> bool:
        return not self._songs and not self._copies and not self._errors

    def step(self) -> list[tuple[Hashable, Any]]:
        for (key, j), out in self.engine.step():
            if key not in self._songs:
                continue  # the song failed through another of its tracks
            inp, outs, tracks = self._songs[key]
            if isinstance(out, BaseException):
                del self._songs[key]
                self._errors.append((key, out))
                continue
            outs[j] = out
            if all(o is not None for o in outs):
                del self._songs[key]
                self._start_copy(key, inp, outs, tracks)
        if not self.engine.pending() and self._songs:  # nothing queued yet songs unfinished: cannot happen
            stuck = list(self._songs)
            self._songs.clear()
            self._errors.extend((k, RuntimeError("separation lost its segments")) for k in stuck)
        return self._collect(wait=not self.engine.pending())

    def _start_copy(self, key: Hashable, inp: ModelInput, outs: list[torch.Tensor], tracks: list[torch.Tensor]) -> None:
        stems, mix = _assemble(inp, outs, tracks)
        names = self.separator.stems
        by_name = {n: stems[k] for k, n in enumerate(names)}
        vocal = [by_name[n] for n in names if n in VOCAL_STEMS]
        instrumental = sum(s for n, s in by_name.items() if n not in VOCAL_STEMS) if self.mode == "sum" else mix - sum(vocal)
        level_names, level_tensor, meta = levels_on_device(mix, by_name, instrumental, self.separator.samplerate)
        tensors = {"levels": level_tensor}
        if self.mode == "sum":
            tensors["instrumental"] = instrumental
        else:
            tensors["vocals"] = sum(vocal)
        if self.keep_stems:
            tensors.update({f"stem:{n}": s for n, s in by_name.items()})
        if self.device.type == "cuda":
            host = {}
            for name, tensor in tensors.items():
                host[name] = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                host[name].copy_(tensor, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._copies.append((key, event, (host, level_names, meta, inp)))
        else:
            self._copies.append((key, None, (tensors, level_names, meta, inp)))

    def _collect(self, wait: bool) -> list[tuple[Hashable, Any]]:
        ready: list[tuple[Hashable, Any]] = list(self._errors)
        self._errors.clear()
        keep = []
        for key, event, payload in self._copies:
            if event is not None and not (wait or event.query()):
                keep.append((key, event, payload))
                continue
            if event is not None:
                event.synchronize()
            host, level_names, meta, source = payload
            arrays = {n: t.numpy() for n, t in host.items()}
            ready.append((key, ModelOutput(
                instrumental=arrays.get("instrumental"), vocals=arrays.get("vocals"),
                stems={n.split(":", 1)[1]: a for n, a in arrays.items() if n.startswith("stem:")},
                levels=levels_from_host(level_names, arrays["levels"], meta), model_rate=self.separator.samplerate,
                source=source)))
        self._copies = keep
        return ready
