"""Build the dataset from a pipeline run: Parquet splits, loading script data, exports, card.

The pipeline calls ``build_dataset(build_dir, cfg)``; see builders/dataset.py. ``builders.finetune``
trains MusicGen on a build. Names are imported on first use, so a submodule (e.g. the fine-tuning data
loader under a torch-free datasets-5 environment) does not pull in the whole package's dependencies.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"DatasetArtifacts": "dataset", "SplitStats": "dataset", "build_dataset": "dataset",
            "SCHEMA_VERSION": "schema"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
