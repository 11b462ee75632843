"""Pluggable audio taggers: pretrained models that score genre and mood labels.

A tagger is anything with ``name`` and ``tag(audio) -> {label: score in 0..1}``.
Labels are free text; ``labels_to_vocabulary`` maps them to the documented
vocabulary (``processing.vocabulary``) and keeps those above a threshold.

Choose one with ``analyse.tagger`` (and ``analyse.tagger_weights``):
- ``musicnn`` (the default): musicnn's MTT_musicnn and MSD_musicnn, 100 tags
  (``processing.analyse.musicnn``), run in PyTorch with the weights shipped in the
  ``musicnn`` wheel (``pip install --no-deps musicnn==0.1.0``); ``tagger_weights`` may name a
  folder holding ``MTT_musicnn/`` and ``MSD_musicnn/`` checkpoints instead;
- ``none`` (or unset): no model; genre/mood come from the source metadata, and moods are
  derived from features (``processing.analyse.moods``) and marked derived;
- ``essentia-tf``: Essentia's TensorFlow models (Discogs-EffNet embeddings +
  the genre_discogs400 and mtg_jamendo_moodtheme heads). Needs the
  ``essentia-tensorflow`` package (not the plain ``essentia`` wheel) and a
  folder (``tagger_weights``) holding the files listed in
  ``ESSENTIA_TF_FILES`` with their ``.json`` metadata, downloaded by the user
  from https://essentia.upf.edu/models.html;
- ``python:package.module:factory``: your own model; ``factory(weights)``
  returns a Tagger (or a plain callable ``audio -> {label: score}``).
Missing packages or files raise ``TaggerUnavailable`` with what to install or
download, before any audio is processed.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np

from .features import to_mono
from .tag_facts import labels_to_vocabulary  # noqa: F401  (re-exported: taggers and their label mapping)
from ..types import AudioData

ESSENTIA_TF_FILES = {
    "embedding": "discogs-effnet-bs64-1.pb",
    "genre": "genre_discogs400-discogs-effnet-1.pb",
    "mood": "mtg_jamendo_moodtheme-discogs-effnet-1.pb",
}


class TaggerUnavailable(RuntimeError):
    """The configured tagger cannot run here; the message says what is missing and how to get it."""


class Tagger(Protocol):
    name: str

    def tag(self, audio: AudioData) -> dict[str, float]:
        """Label -> score (0..1) for one piece of audio."""


@dataclass
class CallableTagger:
    name: str
    fn: Callable[[AudioData], dict[str, float]]

    def tag(self, audio: AudioData) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.fn(audio).items()}


class EssentiaTFTagger:
    """Discogs-EffNet genre (400 Discogs styles) and MTG-Jamendo mood/theme heads."""

    name = "essentia-tf"

    def __init__(self, weights: Optional[Path]):
        try:
            import essentia.standard as es
        except ImportError as exc:  # pragma: no cover - essentia is a dependency
            raise TaggerUnavailable("tagger essentia-tf: essentia is not installed") from exc
        if not hasattr(es, "TensorflowPredictEffnetDiscogs") or not hasattr(es, "TensorflowPredict2D"):
            raise TaggerUnavailable(
                "tagger essentia-tf: this essentia build has no TensorFlow support; "
                "`pip install essentia-tensorflow` (replaces `essentia`) or leave analyse.tagger unset"
            )
        if weights is None or not Path(weights).is_dir():
            raise TaggerUnavailable(
                f"tagger essentia-tf: analyse.tagger_weights must be a folder holding {', '.join(ESSENTIA_TF_FILES.values())} "
                f"and their .json files (from https://essentia.upf.edu/models.html); got {weights}"
            )
        folder = Path(weights)
        missing = [f for f in ESSENTIA_TF_FILES.values() if not (folder / f).is_file()]
        missing += [Path(f).with_suffix(".json").name for k, f in ESSENTIA_TF_FILES.items() if k != "embedding" and not (folder / f).with_suffix(".json").is_file()]
        if missing:
            raise TaggerUnavailable(f"tagger essentia-tf: missing in {folder}: {', '.join(missing)}")
        self._embed = es.TensorflowPredictEffnetDiscogs(graphFilename=str(folder / ESSENTIA_TF_FILES["embedding"]), output="PartitionedCall:1")
        self._heads = []
        for head in ("genre", "mood"):
            path = folder / ESSENTIA_TF_FILES[head]
            meta = json.loads(path.with_suffix(".json").read_text())
            schema = meta.get("schema", {})
            inp = (schema.get("inputs") or [{}])[0].get("name", "model/Placeholder")
            out = next((o["name"] for o in schema.get("outputs", []) if o.get("output_purpose") == "predictions"), "model/Sigmoid")
            self._heads.append((es.TensorflowPredict2D(graphFilename=str(path), input=inp, output=out), meta["classes"]))

    def tag(self, audio: AudioData) -> dict[str, float]:
        embeddings = self._embed(to_mono(audio, 16000))
        scores: dict[str, float] = {}
        for model, classes in self._heads:
            mean = np.asarray(model(embeddings)).mean(axis=0)
            for label, score in zip(classes, mean):
                for part in str(label).split("---"):  # "Electronic---Deep House" -> both words
                    scores[part] = max(scores.get(part, 0.0), float(score))
        return scores


class MusicnnTagger:
    """MTT_musicnn + MSD_musicnn: ``tag(audio)`` averages each tag's patch scores over the audio.

    Labels are ``mtt:<tag>`` and ``msd:<tag>`` (100 in all). On the CPU, inference runs with
    `threads` torch threads (1 by default: analysis runs in one worker process per core), restored
    afterwards; `device` "auto" takes the GPU when this process sees one (see ``musicnn.tagger_device``)."""

    name = "musicnn"

    def __init__(self, weights: Optional[Path] = None, threads: int = 1, device: str = "cpu"):
        from .musicnn import MusicnnModels, MusicnnUnavailable, tagger_device

        try:
            self.models = MusicnnModels(weights=weights, device=tagger_device(device))
        except MusicnnUnavailable as exc:
            raise TaggerUnavailable(str(exc)) from exc
        self.labels = self.models.labels
        self.threads = threads

    def patch_scores(self, audio: AudioData) -> np.ndarray:
        """(patches, labels) scores of the 3 s patches of `audio`."""
        from .musicnn import SAMPLE_RATE
        from .torch_threads import torch_threads

        with torch_threads(self.threads):
            return self.models.scores(to_mono(audio, SAMPLE_RATE))

    def tag(self, audio: AudioData) -> dict[str, float]:
        mean = self.patch_scores(audio).mean(axis=0)
        return {label: round(float(score), 4) for label, score in zip(self.labels, mean)}


def check_tagger(name: Optional[str], weights: Optional[Path] = None, threads: int = 1, device: str = "cpu") -> None:
    """Raise TaggerUnavailable unless the tagger can run. musicnn's checkpoints are read and checked without
    building the network (a build's driver checks before any work and never tags: no torch there); any other
    tagger is made."""
    if name != "musicnn":
        make_tagger(name, weights, threads, device)
        return
    from .musicnn import MusicnnUnavailable, check_device, check_models

    try:
        check_models(weights=weights)
        check_device(device)
    except MusicnnUnavailable as exc:
        raise TaggerUnavailable(str(exc)) from exc


def make_tagger(name: Optional[str], weights: Optional[Path] = None, threads: int = 1,
                device: str = "cpu") -> Optional[Tagger]:
    """The configured tagger, or None when `name` is unset or ``none``. `device` applies to musicnn."""
    if not name or name == "none":
        return None
    if name == "musicnn":
        return MusicnnTagger(weights, threads, device)
    if name == "essentia-tf":
        return EssentiaTFTagger(weights)
    if name.startswith("python:"):
        target = name[len("python:") :]
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise TaggerUnavailable(f"tagger {name!r}: expected python:package.module:factory")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise TaggerUnavailable(f"tagger {name!r}: cannot import {target}: {exc}") from exc
        made = factory(weights)
        if hasattr(made, "tag"):
            return made
        if callable(made):
            return CallableTagger(target, made)
        raise TaggerUnavailable(f"tagger {name!r}: factory returned {type(made).__name__}, not a tagger or callable")
    raise TaggerUnavailable(f"tagger {name!r} unknown: use musicnn, essentia-tf, python:module:factory, or none")
