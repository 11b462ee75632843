"""Hugging Face `datasets` loading script for a Music Mixer build.

Where the data comes from (first that applies):
  1. ``data_dir=`` : a local build folder, or ``s3://bucket/prefix/<version>`` (pulled with
     ``processing.publish.publish.pull_version``; the endpoint from ``endpoint_url=`` or $MUSIC_MIXER_S3_ENDPOINT)
  2. $MUSIC_MIXER_DATA
  3. ``./build``

Configs: ``default`` (the chunks as built: 32 kHz mono by default, with all
metadata columns) and ``stems`` (adds one audio column per demucs stem,
``stem_drums`` ..., null when the build kept no stems; needs the build's audio files).

Supported `datasets` versions:
  * 3.x (tested 3.6.0): ``load_dataset("music_mixer_dataset.py", data_dir=..., trust_remote_code=True)``.
  * >= 4 (tested 5.2.0) no longer runs scripts; use the class directly::

        from music_mixer_dataset import MusicMixer
        b = MusicMixer(data_dir="build"); b.download_and_prepare(); ds = b.as_dataset()

    or the script-free folder: ``load_dataset("build/hf")``. Without torchcodec, datasets >= 4
    cannot encode/decode `Audio`: the builder then declares audio as a plain
    ``{"bytes", "path"}`` struct (always holding the bytes); read it with soundfile or
    ``ds.cast_column("audio", Audio(sampling_rate=32000))`` once torchcodec is installed.

The column schema is the one the build wrote into its Parquet files (builders/schema.py,
SCHEMA_VERSION in the Parquet metadata); a rebuilt folder gets a new cache entry
(the build's fingerprint is part of the config).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import pyarrow.parquet as pq

DEFAULT_DATA_DIR = "build"
ENV_DATA = "MUSIC_MIXER_DATA"
ENV_ENDPOINT = "MUSIC_MIXER_S3_ENDPOINT"
STEM_NAMES = ("drums", "bass", "other", "vocals", "guitar", "piano")
SPLIT_NAMES = {"train": datasets.Split.TRAIN, "validation": datasets.Split.VALIDATION, "test": datasets.Split.TEST}

_DATASETS_MAJOR = int(datasets.__version__.split(".")[0])


class MusicMixerDataError(RuntimeError):
    """The build folder cannot be found or read; the message says which and why."""


def _torchcodec_available() -> bool:
    try:
        import torchcodec  # noqa: F401
    except Exception:  # ImportError, or a CUDA build failing to load on CPU torch
        return False
    return True


# datasets >= 4 needs torchcodec for Audio (encode and decode); without it audio is a plain struct.
AUDIO_AS_STRUCT = _DATASETS_MAJOR >= 4 and not _torchcodec_available()


def resolve_data_dir(data_dir: Optional[str], endpoint_url: Optional[str] = None) -> Path:
    """The local build folder for `data_dir` (pulling an s3:// version first)."""
    location = str(data_dir or os.environ.get(ENV_DATA) or DEFAULT_DATA_DIR)
    if location.startswith("s3://"):
        try:
            from processing.publish.publish import pull_version
        except ImportError as exc:
            raise MusicMixerDataError(
                f"data_dir={location!r}: loading from S3 needs the music-mixer package "
                f"(processing.publish.publish.pull_version) importable: `pip install -e <music-mixer repo>` ({exc})"
            ) from exc
        dest = os.environ.get("MUSIC_MIXER_PULL_DIR")
        local = Path(pull_version(location, Path(dest) if dest else None, endpoint_url or os.environ.get(ENV_ENDPOINT)))
    else:
        local = Path(location).expanduser().resolve()
    if not (local / "data").is_dir() or not any((local / "data").glob("*.parquet")):
        raise MusicMixerDataError(
            f"{local}: not a built Music Mixer dataset (no data/*.parquet); build one with "
            f"`python scripts/build.py ... --out {local}` or pass data_dir= / set ${ENV_DATA}"
        )
    return local


def split_files(local: Path) -> dict[str, list[Path]]:
    """split -> its Parquet shards, in order."""
    files: dict[str, list[Path]] = {}
    for split in SPLIT_NAMES:
        shards = sorted((local / "data").glob(f"{split}-*-of-*.parquet"))
        if shards:
            files[split] = shards
    if "train" not in files:
        raise MusicMixerDataError(f"{local / 'data'}: no train-*.parquet shard")
    return files


def build_fingerprint(local: Path) -> str:
    """Changes whenever the build's Parquet shards change (name, size, mtime)."""
    digest = hashlib.sha256(str(local).encode())
    for shard in sorted((local / "data").glob("*.parquet")):
        stat = shard.stat()
        digest.update(f"{shard.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@dataclass
class MusicMixerConfig(datasets.BuilderConfig):
    """with_stems: add one audio column per stem; endpoint_url: S3-compatible endpoint for s3:// data_dir."""

    with_stems: bool = False
    endpoint_url: Optional[str] = None
    build_fingerprint: Optional[str] = None


class MusicMixer(datasets.GeneratorBasedBuilder):
    """Instrumental music chunks with MusicGen text descriptions, from a Music Mixer build."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = MusicMixerConfig
    BUILDER_CONFIGS = [
        MusicMixerConfig(name="default", version=VERSION, description="chunks as built (32 kHz mono by default)"),
        MusicMixerConfig(name="stems", version=VERSION, with_stems=True, description="chunks plus one audio column per stem"),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *args, **kwargs):
        # Resolve (and pull) the data first: the features come from the build's Parquet schema,
        # and the build's fingerprint becomes part of the config id (a rebuild is not served stale).
        self._local = resolve_data_dir(kwargs.get("data_dir"), kwargs.get("endpoint_url"))
        kwargs["data_dir"] = str(self._local)
        kwargs["build_fingerprint"] = build_fingerprint(self._local)
        super().__init__(*args, **kwargs)

    # -- schema -------------------------------------------------------------------------------
    def _build_features(self) -> datasets.Features:
        shard = split_files(self._local)["train"][0]
        schema = pq.read_schema(shard)
        meta = (schema.metadata or {}).get(b"huggingface")
        if meta:
            features = datasets.Features.from_dict(json.loads(meta)["info"]["features"])
        else:
            features = datasets.Features.from_arrow_schema(schema)
        audio = features["audio"]  # Audio(sampling_rate=..., mono=False for stereo builds)
        if AUDIO_AS_STRUCT:
            audio = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
        features["audio"] = audio
        if self.config.with_stems:
            for stem in STEM_NAMES:
                features[f"stem_{stem}"] = audio
        return features

    def _info(self) -> datasets.DatasetInfo:
        card = self._local / "dataset_card.md"
        return datasets.DatasetInfo(
            description=__doc__.split("\n\n")[0] + (f"\n\nBuild card: {card}" if card.is_file() else ""),
            features=self._build_features(),
            license="per-song licences: see the licence column and the dataset card",
        )

    # -- data ---------------------------------------------------------------------------------
    def _split_generators(self, dl_manager):
        return [
            datasets.SplitGenerator(name=SPLIT_NAMES[split], gen_kwargs={"shards": [str(p) for p in shards]})
            for split, shards in split_files(self._local).items()
        ]

    def _audio_value(self, cell: Optional[dict], where: str) -> Optional[dict]:
        if cell is None:
            return None
        if cell.get("bytes") is not None:
            return {"bytes": cell["bytes"], "path": cell.get("path")}
        path = self._local / str(cell.get("path") or "")
        if not path.is_file():
            raise MusicMixerDataError(f"{where}: audio file {path} is missing from the build folder")
        if AUDIO_AS_STRUCT:  # no decoder to follow a path later: carry the bytes
            return {"bytes": path.read_bytes(), "path": path.name}
        return {"bytes": None, "path": str(path)}

    def _generate_examples(self, shards):
        for shard in shards:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=64):
                for row in batch.to_pylist():
                    cid = row["chunk_id"]
                    row["audio"] = self._audio_value(row["audio"], f"chunk {cid}")
                    if self.config.with_stems:
                        stems = json.loads(row.get("stem_paths") or "{}")
                        for stem in STEM_NAMES:
                            rel = stems.get(stem)
                            row[f"stem_{stem}"] = self._audio_value({"path": rel}, f"chunk {cid} stem {stem}") if rel else None
                    yield cid, row
