"""Chunk: cut a song into fixed-length chunks; a short tail follows a policy.

Policies (``ChunkConfig.tail_policy``), for the part after the last full chunk:
- ``drop`` (default): a tail shorter than ``min_tail_s`` is dropped; a longer one
  is kept as a shorter last chunk.
- ``pad``: the tail is padded with silence to a full chunk, so every chunk is
  exactly ``chunk_s`` long (``padded_s`` records the padding).
- ``merge``: a tail shorter than ``min_tail_s`` is appended to the previous chunk
  (if the result is at most ``max_merged_s``, else dropped); a longer tail is
  kept as a shorter last chunk.
A song shorter than one chunk is all tail: kept if at least ``min_tail_s``
(``pad`` pads it). Chunks whose RMS is below ``silence_db`` are skipped later,
when their audio is known (see ``is_silent``).
"""
from __future__ import annotations


import math

import numpy as np

from ..config import ChunkConfig
from ..loudness import rms_db as array_rms_db
from ..types import AudioData, ChunkSpan

_EPS = 1e-6  # seconds; absorbs float error so 120.0 s is exactly 4 chunks of 30 s


def plan_chunks(duration_s: float, cfg: ChunkConfig) -> list[ChunkSpan]:
    """Chunk spans for a song of ``duration_s`` seconds under ``cfg``."""
    if duration_s <= _EPS:
        return []
    size = cfg.chunk_s
    n_full = int(math.floor(duration_s / size + _EPS))
    spans = [ChunkSpan(i, i * size, (i + 1) * size) for i in range(n_full)]
    tail_start = n_full * size
    tail = duration_s - tail_start
    if tail <= _EPS:
        return spans
    if cfg.tail_policy == "pad":
        spans.append(ChunkSpan(n_full, tail_start, duration_s, padded_s=size - tail))
    elif tail >= min(cfg.min_tail_s, size) - _EPS:
        spans.append(ChunkSpan(n_full, tail_start, duration_s))
    elif cfg.tail_policy == "merge" and spans and spans[-1].duration_s + tail <= cfg.max_merged_s + _EPS:
        spans[-1] = ChunkSpan(spans[-1].index, spans[-1].start_s, duration_s)
    return spans


def cut(audio: AudioData, span: ChunkSpan) -> AudioData:
    """The samples of one span (padded with zeros when the span asks for it)."""
    rate = audio.sample_rate
    start = int(round(span.start_s * rate))
    end = min(audio.num_frames, int(round(span.end_s * rate)))
    piece = audio.samples[:, start:end]
    pad = int(round(span.padded_s * rate))
    if pad > 0:
        piece = np.concatenate([piece, np.zeros((audio.channels, pad), np.float32)], axis=1)
    return AudioData(np.ascontiguousarray(piece), rate)


def rms_db(audio: AudioData) -> float:
    """RMS level in dBFS over all channels (-200 for digital silence), as analysis measures it."""
    return array_rms_db(audio.samples)


def is_silent(audio: AudioData, cfg: ChunkConfig) -> bool:
    return rms_db(audio) < cfg.silence_db
