"""Analysis's networks batched across chunks and songs: musicnn's two taggers and the beat network, fed the
inputs of many pieces at once, on one device.

Each piece's signal processing (musicnn's log-mel patches, the beat network's spectrogram features) is
done where its audio is (``tag_request``, ``beat_request``: CPU only, no torch device touched); this stream
runs the networks alone, batching what is waiting when ``step`` is called:
- tagger: the patches of every waiting chunk stacked, at most ``max_patches`` per forward pass; a chunk's
  scores are the mean of its patches' scores, as ``MusicnnTagger.tag`` gives for the chunk alone;
- beat network: windows of the same number of frames stacked (windows of other lengths run in their own
  pass: zero padding would feed the backward LSTMs).
Batched results equal one-piece results within 1e-5 (``tests/test_network_stream.py``, on the CPU).

Its interface is the separator's stream's (``DemucsStream``: ``add``, ``step``, ``idle``), so the model
worker can drive both: that is where it belongs on a GPU machine, where today each CPU worker runs musicnn on
its own chunk's 10 patches and holds a CUDA context to do it. Wiring it into the model worker (the parts of
a song's FanOut then hand their requests to the model worker and the join gets the scores) is not done yet:
it needs a GPU to be measured. Without a GPU the networks run in the CPU workers (processing.pipeline).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..types import AudioData


@dataclass
class TagRequest:
    """One chunk's musicnn input: (patches, 187, 96) log-mel patches."""

    patches: np.ndarray


@dataclass
class BeatRequest:
    """One beat-network window's input: (frames, 266) features, and the frames of its output that are kept."""

    features: np.ndarray
    keep: slice


def tag_request(audio: AudioData) -> TagRequest:
    """The tagger's input for a chunk (its 16 kHz mono log-mel patches), computed here on the CPU."""
    from .features import to_mono
    from .musicnn import SAMPLE_RATE, log_mel, patches

    return TagRequest(patches(log_mel(to_mono(audio, SAMPLE_RATE))))


def beat_request(x44: np.ndarray, window: Any) -> BeatRequest:
    """The beat network's input for one window (``beat_network.Window``) of a song's mono 44.1 kHz signal."""
    from .beat_network import features

    return BeatRequest(features(x44, window.first, window.last - window.first),
                       slice(window.start - window.first, window.stop - window.first))


class NetworkStream:
    """Requests in (``add(key, TagRequest | BeatRequest)``), results out of ``step()`` as (key, result): a
    chunk's mean tag scores ((labels,) float64, in ``tagger.labels`` order) or a window's activations."""

    def __init__(self, tagger: Optional[Any] = None, beat: Optional[Any] = None, max_patches: int = 256):
        self.tagger = tagger  # musicnn.MusicnnModels
        self.beat = beat  # beat_network.BeatNetwork
        self.max_patches = max(1, int(max_patches))
        self.tags: deque[tuple[Any, TagRequest]] = deque()
        self.beats: deque[tuple[Any, BeatRequest]] = deque()

    def add(self, key: Any, request: Any) -> None:
        if isinstance(request, TagRequest):
            if self.tagger is None:
                raise ValueError("this stream has no tagger")
            self.tags.append((key, request))
        elif isinstance(request, BeatRequest):
            if self.beat is None:
                raise ValueError("this stream has no beat network")
            self.beats.append((key, request))
        else:
            raise TypeError(f"not a network request: {type(request).__name__}")

    def idle(self) -> bool:
        return not self.tags and not self.beats

    def step(self) -> list[tuple[Any, np.ndarray]]:
        """One pass over what waits: tagger batches of up to ``max_patches`` patches (whole chunks; a chunk with
        more patches than that runs alone), and every waiting beat window, grouped by length."""
        done: list[tuple[Any, np.ndarray]] = []
        while self.tags:
            group = [self.tags.popleft()]
            size = len(group[0][1].patches)
            while self.tags and size + len(self.tags[0][1].patches) <= self.max_patches:
                size += len(self.tags[0][1].patches)
                group.append(self.tags.popleft())
            scores = self.tagger.score_patches(np.concatenate([r.patches for _, r in group]))
            edges = np.cumsum([0] + [len(r.patches) for _, r in group])
            done += [(key, scores[a:b].mean(axis=0)) for (key, _), a, b in zip(group, edges[:-1], edges[1:])]
        if self.beats:
            import torch

            waiting, self.beats = list(self.beats), deque()
            for frames in sorted({len(r.features) for _, r in waiting}):
                group = [(k, r) for k, r in waiting if len(r.features) == frames]
                batch = torch.from_numpy(np.stack([r.features for _, r in group])).to(self.beat.device)
                with torch.inference_mode():
                    acts = self.beat(batch).float().cpu().numpy()
                done += [(key, act[r.keep]) for (key, r), act in zip(group, acts)]
        return done
