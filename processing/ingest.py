"""Ingest: turn SourceSpecs into Songs (complete local audio files + metadata).

Local files are read in place; URLs are downloaded with yt-dlp's Python API
into the download cache. Each failure becomes a Failure naming the item and
the reason; the other items go on.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import audio_io
from .config import IngestConfig
from .types import Failure, SongMetadata, Song, SourceSpec


@dataclass
class IngestResult:
    songs: list[Song] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # dropped song id -> kept song id


class DownloadError(RuntimeError):
    """A URL could not be downloaded; the message says why."""


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "song"


def _metadata_from_spec(spec: SourceSpec, base: Optional[SongMetadata] = None) -> SongMetadata:
    meta = base or SongMetadata()
    meta.title = spec.title or meta.title
    meta.artist = spec.artist or meta.artist
    meta.genre = spec.genre or meta.genre
    meta.moods = list(spec.moods) or meta.moods
    meta.keywords = list(spec.keywords) or meta.keywords
    meta.licence = spec.licence or meta.licence
    meta.split = spec.split or meta.split
    return meta


def _title_from_filename(path: Path) -> tuple[Optional[str], Optional[str]]:
    """'Artist_-_Title.hq.ogg' -> ('Artist', 'Title'); a best guess only, the user's metadata wins."""
    stem = path.name.split(".")[0].replace("_", " ").strip()
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip() or None, title.strip() or None
    return None, stem or None


def download(url: str, cfg: IngestConfig, download_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Download the best audio of one URL with yt-dlp; return (file, info dict)."""
    import yt_dlp

    download_dir.mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {
        "format": cfg.format,
        "outtmpl": str(download_dir / "%(extractor)s-%(id)s.%(ext)s"),
        "paths": {"temp": str(download_dir / ".partial")},
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": cfg.retries,
        "socket_timeout": cfg.socket_timeout_s,
    }
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    if cfg.cookies_file:
        opts["cookiefile"] = str(cfg.cookies_file)
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
            path = Path(ydl.prepare_filename(info))
    except yt_dlp.utils.DownloadError as exc:
        message = re.sub(r"^ERROR:\s*", "", str(exc)).strip()
        raise DownloadError(message) from exc
    if not path.is_file():
        raise DownloadError(f"yt-dlp reported success but {path} is missing")
    return path, info


def _metadata_from_info(info: dict[str, Any], url: str) -> SongMetadata:
    return SongMetadata(
        title=info.get("track") or info.get("title"),
        artist=info.get("artist") or info.get("creator") or None,
        uploader=info.get("uploader"),
        channel=info.get("channel"),
        tags=list(info.get("tags") or []),
        categories=list(info.get("categories") or []),
        licence=info.get("license"),
        url=info.get("webpage_url") or url,
        extractor=info.get("extractor_key") or info.get("extractor"),
        description=info.get("description"),
    )


def ingest_one(spec: SourceSpec, cfg: IngestConfig, download_dir: Path) -> Song:
    """Ingest one source or raise (DownloadError / AudioDecodeError / ValueError) with a reason."""
    if spec.is_url:
        path, info = download(spec.location, cfg, download_dir)
        meta = _metadata_from_info(info, spec.location)
        default_id = _safe_id(f"{(info.get('extractor_key') or info.get('extractor') or 'url').lower()}-{info.get('id')}")
    else:
        path = Path(spec.location)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        artist, title = _title_from_filename(path)
        meta = SongMetadata(title=title, artist=artist, source_path=str(path))
        default_id = None
    duration, rate, channels = audio_io.info(path)
    content_hash = audio_io.file_sha256(path)
    meta = _metadata_from_spec(spec, meta)
    if duration < cfg.min_duration_s:
        raise ValueError(f"too short: {duration:.1f} s < min_duration_s {cfg.min_duration_s:g} s")
    if duration > cfg.max_duration_s:
        raise ValueError(f"too long: {duration:.1f} s > max_duration_s {cfg.max_duration_s:g} s")
    if cfg.allowed_licences and (meta.licence or "") not in cfg.allowed_licences:
        raise ValueError(f"licence {meta.licence!r} is not in allowed_licences")
    song_id = spec.song_id or default_id or hashlib.sha256(content_hash.encode()).hexdigest()[:16]
    return Song(song_id=song_id, audio_path=path, metadata=meta, content_hash=content_hash,
                duration_s=duration, sample_rate=rate, channels=channels, instrumental=spec.instrumental)


def ingest(sources: list[SourceSpec], cfg: IngestConfig, download_dir: Path) -> IngestResult:
    result = IngestResult()
    seen: dict[str, str] = {}  # content hash -> song id
    for spec in sources:
        try:
            song = ingest_one(spec, cfg, download_dir)
        except (DownloadError, audio_io.AudioDecodeError, FileNotFoundError, ValueError) as exc:
            kind = "download" if isinstance(exc, DownloadError) else "input"
            result.failures.append(Failure(item=spec.location, stage="ingest", reason=str(exc), kind=kind))
            continue
        if song.content_hash in seen:
            result.duplicates[song.song_id] = seen[song.content_hash]
            continue
        seen[song.content_hash] = song.song_id
        result.songs.append(song)
    return result
