"""A build (folder or published version) -> (description, audio) examples, through `datasets`.

Two loaders, as fine-tuning code uses them: ``script`` runs the repository's
``music_mixer_dataset.py`` (datasets 3.x only: 4.0 dropped loading scripts),
``folder`` loads the build's script-free ``hf/`` folder (any version). Audio
is resampled to the model's rate (``datasets``' Audio feature on 3.x; soundfile
+ soxr on >= 4, whose Audio decoding needs torchcodec and FFmpeg libraries).
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import FinetuneError

log = logging.getLogger(__name__)
LOADING_SCRIPT = Path(__file__).resolve().parents[2] / "music_mixer_dataset.py"
LOADERS = ("auto", "script", "folder")


@dataclass
class Example:
    chunk_id: str
    text: str  # the chunk's description: MusicGen's conditioning text
    audio: np.ndarray  # float32, (channels, samples) at the model's rate
    weight: float = 1.0  # the chunk's sampling weight (builders/weights.py); used with --weighted


def datasets_major() -> int:
    import datasets

    return int(datasets.__version__.split(".")[0])


def resolve_build(source: str, pull_dest: Optional[Path] = None, endpoint_url: Optional[str] = None,
                  progress: bool = True) -> Path:
    """A local build folder as is; ``s3://bucket/prefix/<name>/<version|latest>`` pulled (and verified) first."""
    from ..source import local_build
    from ..table import BuildFolderError

    try:
        return local_build(source, pull_dest, endpoint_url, progress=progress)
    except BuildFolderError as exc:
        raise FinetuneError(str(exc)) from exc


def pick_loader(loader: str, build: Path) -> str:
    if loader not in LOADERS:
        raise FinetuneError(f"loader {loader!r}: choose one of {', '.join(LOADERS)}")
    if loader == "auto":
        loader = "script" if datasets_major() < 4 and LOADING_SCRIPT.is_file() else "folder"
    if loader == "script":
        if datasets_major() >= 4:
            raise FinetuneError("the loading script runs only on datasets 3.x (4.0 dropped loading scripts); "
                                "use the script-free folder (loader 'folder') or pip install 'datasets<4'")
        if not LOADING_SCRIPT.is_file():
            raise FinetuneError(f"{LOADING_SCRIPT}: loading script not found (run from a checkout of the repository)")
    elif not (build / "hf" / "README.md").is_file():
        raise FinetuneError(f"{build / 'hf'}: no script-free dataset folder in this build "
                            "(build it with the 'hf' export: --set build.exports=[parquet,audiocraft,hf])")
    return loader


def load_split(build: Path, split: str, loader: str = "auto", cache_dir: Optional[Path] = None):
    """The split as a `datasets.Dataset` (``description`` and ``audio`` columns among the others)."""
    import datasets

    loader = pick_loader(loader, build)
    kwargs = {"cache_dir": str(cache_dir)} if cache_dir else {}
    try:
        if loader == "script":
            return datasets.load_dataset(str(LOADING_SCRIPT), data_dir=str(build), split=split,
                                         trust_remote_code=True, **kwargs)
        return datasets.load_dataset(str(build / "hf"), split=split, **kwargs)
    except ValueError as exc:  # an unknown split: name the ones there are
        if "split" in str(exc).lower() or "Unknown split" in str(exc):
            raise FinetuneError(f"{build}: no {split!r} split ({exc})") from exc
        raise


def _decode_bytes(audio: dict, rate: int, channels: int, build: Path) -> np.ndarray:
    import soundfile as sf

    source = io.BytesIO(audio["bytes"]) if audio.get("bytes") else build / audio["path"]
    data, sr = sf.read(source, dtype="float32", always_2d=True)  # (samples, channels)
    if sr != rate:
        import soxr

        data = soxr.resample(data, sr, rate)
    return _channels(data.T, channels)


def _channels(audio: np.ndarray, channels: int) -> np.ndarray:
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio[:1], channels, axis=0)  # mono chunks for a stereo model: both sides the same


def examples(ds, rate: int, channels: int = 1, build: Optional[Path] = None) -> list[Example]:
    """Rows -> Examples at ``rate`` Hz with ``channels`` channels; rows without a description are skipped."""
    import datasets

    if datasets_major() < 4:  # datasets' own decoding and resampling, as fine-tuning scripts use it
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=rate, mono=channels == 1))
    else:
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
    out, skipped = [], 0
    for row in ds:
        text = (row.get("description") or "").strip()
        if not text:
            skipped += 1
            continue
        audio = row["audio"]
        if "array" in audio:
            array = _channels(audio["array"], channels)
        else:
            array = _decode_bytes(audio, rate, channels, build or Path("."))
        weight = row.get("weight")
        out.append(Example(str(row.get("chunk_id") or len(out)), text, array, 1.0 if weight is None else float(weight)))
    if skipped:
        log.warning("%d rows have no description and are left out of training", skipped)
    return out
