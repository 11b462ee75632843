"""One typed configuration object for a whole build.

Built from a YAML file (``--config``) and/or the command line (``--set
section.key=value`` and the named flags of ``scripts/build.py``); every stage
receives only its own section. Unknown keys are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


EXECUTORS = ("local",)


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


@dataclass
class IngestConfig:
    cache_dir: Optional[Path] = None  # default: <out>/../.music_mixer_cache/downloads
    min_duration_s: float = 5.0  # songs shorter than this are rejected
    max_duration_s: float = 3600.0  # songs longer than this are rejected
    allowed_licences: list[str] = field(default_factory=list)  # empty: any licence
    audio_extensions: list[str] = field(
        default_factory=lambda: [".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".wma", ".webm"]
    )
    # downloader (yt-dlp)
    format: str = "bestaudio/best"
    retries: int = 5
    retry_backoff_s: float = 2.0
    rate_limit: Optional[str] = None  # e.g. "2M" (bytes/s)
    sleep_interval_s: float = 0.0
    cookies_file: Optional[Path] = None
    proxy: Optional[str] = None
    playlist_limit: Optional[int] = None
    concurrency: int = 4
    socket_timeout_s: float = 30.0
    retry_failed: bool = False  # rerun: try items that failed before (failures.jsonl) again
    refresh_playlists: bool = False  # rerun: expand playlists/channels again instead of reusing playlists.jsonl
    # duplicates
    dedup: bool = True
    dedup_threshold: float = 0.9  # fingerprint similarity above which two songs are one


@dataclass
class SeparateConfig:
    # "htdemucs" (default) or any demucs model name; "offline" = weight-free
    # REPET-style soft masking (lower quality); "none" = inputs are instrumental.
    model: str = "htdemucs"
    weights: Optional[Path] = None  # a weights file or a folder (demucs local repo)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    batch_segments: Optional[int] = None  # segments (from any songs) per forward pass on CUDA; None: 64 (halved on out-of-memory)
    cpu_batch_segments: int = 1  # the same on CPU, where batching measured slower (bigger tensors, no gain)
    songs_per_group: int = 4  # songs the model worker holds at once (their segments share batches; bounds memory)
    shifts: int = 1
    overlap: float = 0.25
    keep_stems: bool = False  # also write each stem of every chunk to the build
    instrumental_mode: str = "sum"  # "sum" of non-vocal stems, or "residual" = mix - vocals
    seed: int = 0  # seeds demucs's random time shifts (per song, so outputs never depend on grouping)
    bf16: Optional[bool] = None  # bfloat16 autocast for the demucs forward pass; None: on for CUDA, off on CPU


@dataclass
class ChunkConfig:
    chunk_s: float = 30.0
    tail_policy: str = "drop"  # "drop", "pad" or "merge"
    min_tail_s: float = 15.0  # tails shorter than this are dropped (policy "drop"); capped at chunk_s
    max_merged_s: float = 45.0  # a merged last chunk is never longer than this
    silence_db: float = -60.0  # chunks whose RMS is below this (dBFS) are skipped


@dataclass
class ConvertConfig:
    sample_rate: int = 32000  # MusicGen's EnCodec rate
    channels: int = 1  # 1 = mono (MusicGen), 2 = stereo
    format: str = "wav"  # "wav" or "flac"
    subtype: str = "PCM_16"  # soundfile subtype: PCM_16, PCM_24, FLOAT
    peak_limit: float = 0.99  # chunks are scaled down (never up) to stay below this


@dataclass
class AnalyseConfig:
    enabled: bool = True
    key_profile: str = "shaath"  # essentia KeyExtractor profile (best measured: see processing/features.py)
    stem_presence_db: float = -35.0  # stem present when its RMS is within this of the mix
    tagger: Optional[str] = "musicnn"  # "musicnn", "essentia-tf", "python:module:factory" or "none" (processing/analyse/tagger.py)
    tagger_weights: Optional[Path] = None  # musicnn: a folder with MTT_musicnn/ and MSD_musicnn/ (default: the musicnn package)
    tagger_threads: int = 1  # torch threads for the tagger's inference (analysis runs one worker process per core)
    vocal_threshold: float = 0.15  # a chunk whose model vocal score is >= this is flagged vocals_heard
    flag_non_music: bool = True
    exclude_flagged: bool = True
    silence_db: float = -60.0  # frames (50 ms) below this dBFS count as silence
    residual_vocal_db: float = -20.0  # vocal energy left in an instrumental above this (dB re. it) is flagged
    tagger_threshold: float = 0.3  # taggers other than musicnn: labels scoring below this are ignored (musicnn: tag_facts.py)
    derive_moods: bool = True  # derive mood words from features when no source/tagger gives any


@dataclass
class DescribeConfig:
    enabled: bool = True
    seed: int = 0
    max_keywords: int = 12  # keywords kept per chunk (genres, moods, instruments, tags; deduped)


@dataclass
class BuildConfig:
    name: str = "music_mixer"
    version: Optional[str] = None  # default: a date-based version
    validation_ratio: float = 0.1
    test_ratio: float = 0.0
    split_salt: str = "music-mixer"
    embed_audio: bool = False  # Parquet holds audio bytes (True) or relative paths
    shard_max_mb: int = 500
    exports: list[str] = field(default_factory=lambda: ["parquet", "audiocraft", "hf"])
    executor: str = "local"  # how stages are scheduled: "local" (worker processes + one model worker)


@dataclass
class PublishConfig:
    s3_uri: Optional[str] = None  # s3://bucket/prefix
    endpoint_url: Optional[str] = None  # S3-compatible endpoint (MinIO, R2, moto)
    region: Optional[str] = None
    max_concurrency: int = 4
    multipart_threshold_mb: int = 64
    multipart_chunksize_mb: int = 16
    hub_repo: Optional[str] = None  # e.g. "user/my-musicgen-set"
    hub_private: bool = True
    dry_run: bool = False
    max_attempts: int = 8  # botocore retries per request (with backoff)
    retry_mode: str = "standard"  # botocore retry mode: "standard" or "adaptive"
    timeout_s: float = 60.0  # connect/read timeout per request
    update_latest: bool = True  # move <name>/latest.json to the newly published version
    hub_commit_max_mb: int = 2048  # Hub: bytes per commit (bounded commits)
    hub_commit_max_files: int = 500  # Hub: files per commit


@dataclass
class PipelineConfig:
    out_dir: Path = Path("build")
    cache_dir: Optional[Path] = None  # default: <out_dir>/.cache
    sources: list[Any] = field(default_factory=list)  # SourceSpec, parsed by processing.ingest.sources
    workers: Optional[int] = None  # CPU worker processes (decode, chunk, analyse, ...); None: one per CPU core
    progress: bool = True
    ingest: IngestConfig = field(default_factory=IngestConfig)
    separate: SeparateConfig = field(default_factory=SeparateConfig)
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    analyse: AnalyseConfig = field(default_factory=AnalyseConfig)
    describe: DescribeConfig = field(default_factory=DescribeConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / ".cache"

    def validate(self) -> None:
        """Raise ConfigError naming the first value that cannot work."""
        checks = [
            (self.chunk.chunk_s > 0, "chunk.chunk_s must be > 0"),
            (self.chunk.tail_policy in ("drop", "pad", "merge"), "chunk.tail_policy must be drop, pad or merge"),
            (self.chunk.min_tail_s >= 0, "chunk.min_tail_s must be >= 0"),
            (self.convert.sample_rate >= 8000, "convert.sample_rate must be >= 8000"),
            (self.convert.channels in (1, 2), "convert.channels must be 1 or 2"),
            (self.convert.format in ("wav", "flac"), "convert.format must be wav or flac"),
            (0 < self.convert.peak_limit <= 1.0, "convert.peak_limit must lie in (0, 1]"),
            (self.separate.instrumental_mode in ("sum", "residual"), "separate.instrumental_mode must be sum or residual"),
            (self.separate.batch_segments is None or self.separate.batch_segments >= 1,
             "separate.batch_segments must be >= 1"),
            (self.separate.cpu_batch_segments >= 1, "separate.cpu_batch_segments must be >= 1"),
            (self.separate.songs_per_group >= 1, "separate.songs_per_group must be >= 1"),
            (self.workers is None or self.workers >= 1, "workers must be >= 1"),
            (self.build.executor in EXECUTORS, f"build.executor must be one of {', '.join(EXECUTORS)}"),
            (0 <= self.build.validation_ratio < 1, "build.validation_ratio must lie in [0, 1)"),
            (0 <= self.build.test_ratio < 1 - self.build.validation_ratio, "build.test_ratio too large"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        return [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is Path:
        return Path(str(value)).expanduser()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        try:
            number = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    return _from_dict(PipelineConfig, data or {}, "")


def load_config(path: Optional[Path] = None, overrides: Optional[list[str]] = None) -> PipelineConfig:
    """Read a YAML config (optional) and apply ``section.key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: top level must be a mapping")
        data = loaded
    for item in overrides or []:
        apply_override(data, item)
    return config_from_dict(data)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (numbers, bools, lists)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    dotted, raw = item.split("=", 1)
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {item!r} names no key")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
