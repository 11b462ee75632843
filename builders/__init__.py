"""Build the dataset from a pipeline run: Parquet splits, loading script data, exports, card.

The pipeline calls ``build_dataset(build_dir, cfg)``; see builders/dataset.py.
"""
from .dataset import DatasetArtifacts, SplitStats, build_dataset
from .schema import SCHEMA_VERSION

__all__ = ["DatasetArtifacts", "SplitStats", "build_dataset", "SCHEMA_VERSION"]
