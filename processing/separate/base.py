"""Separate: remove vocals, keep the instrumental (and the stems).

"Instrumental" is defined by ``SeparateConfig.instrumental_mode``:
- ``sum`` (default): the sum of every non-vocal stem the model outputs
  (drums + bass + other, plus guitar + piano with htdemucs_6s; "other" alone
  with the offline separator);
- ``residual``: the input mix minus the vocal stem (keeps whatever the model
  failed to assign to any stem, at the price of vocal bleed).
Whatever the model puts in its vocal stem (lead and backing vocals, choirs,
usually spoken samples) is removed; everything else stays. Songs marked
``instrumental`` in the sources skip the model entirely.

Separators (``separate.model``):
- any demucs model name (``htdemucs`` default, ``htdemucs_6s``,
  ``htdemucs_ft``, ``mdx``, ...): :class:`processing.separate.demucs_separator.DemucsSeparator`;
  weights come from ``separate.weights`` (a file or a folder) or the usual
  caches, never from the network, and are loaded when the separator is built;
- ``offline``: :class:`processing.separate.offline_separator.OfflineSeparator`, REPET-SIM
  soft masking with librosa, no weights, LOWER QUALITY (demos, tests,
  machines without weights);
- ``none``: the inputs are already instrumental.

A Separator takes several songs at once so that segments of many songs can be
batched into one forward pass. This module holds the protocol, the error and
the trivial ``none`` separator; the model-backed separators live in their own
modules, which import this one, and ``choose.make_separator`` picks one.
Outputs are cached per song (content hash + separator parameters +
instrumental mode) as 24-bit FLAC at the song's own rate and channel count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..types import AudioData

VOCAL_STEMS = ("vocals",)


class SeparatorError(RuntimeError):
    """The separator cannot run (e.g. missing weights); the message says how to fix it."""


class Separator(Protocol):
    name: str  # recorded in the table, e.g. "htdemucs"
    stems: list[str]  # stem names the separator outputs, "vocals" among them if it separates vocals
    # True: a model that runs in the executor's one model worker (the GPU's), fed prepared songs
    # (demucs_separator's three steps); False: cheap enough to run song by song in any CPU worker.
    runs_in_model_worker: bool

    def cache_params(self) -> dict:
        """Everything that changes the output (model, weights signature, shifts, ...)."""

    def separate_many(self, mixes: list[AudioData]) -> list[dict[str, AudioData]]:
        """Stems for each mix, each at the mix's rate and channel count."""


@dataclass
class PassThroughSeparator:
    """For inputs that are already instrumental: the mix is the instrumental."""

    name: str = "none"
    stems: list[str] = field(default_factory=list)
    runs_in_model_worker: bool = False

    def cache_params(self) -> dict:
        return {"name": self.name}

    def separate_many(self, mixes: list[AudioData]) -> list[dict[str, AudioData]]:
        return [{} for _ in mixes]


def instrumental_from_stems(mix: AudioData, stems: dict[str, AudioData], mode: str) -> AudioData:
    if not stems:
        return mix
    if mode == "residual":
        vocals = sum((s.samples for n, s in stems.items() if n in VOCAL_STEMS), np.zeros_like(mix.samples))
        return AudioData(mix.samples - vocals, mix.sample_rate)
    rest = [s.samples for n, s in stems.items() if n not in VOCAL_STEMS]
    if not rest:
        raise SeparatorError("the separator returned no non-vocal stem")
    return AudioData(np.sum(rest, axis=0, dtype=np.float32), mix.sample_rate)
