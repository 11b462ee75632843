"""Downloads with yt-dlp's Python API, resumable and network-free on reruns.

Layout of the download dir::

    <extractor>-<id>.<ext>         the audio file, moved in only when complete
    <extractor>-<id>.info.json     yt-dlp's info json, read back on reruns
    .partial/                      yt-dlp's temp folder (``paths.temp``): unfinished downloads
    archive.txt                    yt-dlp's download archive ("<extractor> <id>" per line)
    downloads.jsonl                our index: URL -> file + info json (rerun needs no network)
    playlists.jsonl                playlist/channel expansions (rerun needs no network)
    failures.jsonl                 failures (see processing.ingest.failures)
    .info-json-scrubbed            every info json here was checked for credentials (see scrub_info_files)

Transient errors (HTTP 429/5xx, timeouts, resets, cut-off transfers) are
retried ``retries`` times with exponential backoff; permanent ones (connection
refused, unknown host, HTTP 404/410/401/403) fail at once. Limits (duration,
licence) are checked from the extractor's metadata before downloading when it
knows them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .. import audio_io
from ..atomic import write_text_atomic
from ..config import ConfigError, IngestConfig, ingest_checks
from .failures import TRANSIENT_KINDS, IngestFailure, classify_download_error

log = logging.getLogger(__name__)

ARCHIVE = "archive.txt"
SCRUBBED = ".info-json-scrubbed"  # present once every info json here was checked for credentials
INDEX = "downloads.jsonl"
PLAYLISTS = "playlists.jsonl"
PARTIAL = ".partial"


class _YdlLogger:
    """Route yt-dlp's messages to logging instead of stderr (errors come back as exceptions)."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    info = debug

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)


@dataclass
class Entry:
    """One item of an expanded playlist/channel."""

    url: str  # may carry yt-dlp smuggled data (e.g. an RSS guid as id)
    title: Optional[str] = None
    duration: Optional[float] = None
    is_playlist: bool = False  # itself a playlist (a channel's tab, a playlist of playlists): expanded too

    @property
    def display_url(self) -> str:
        from yt_dlp.utils import unsmuggle_url

        return unsmuggle_url(self.url)[0]


@dataclass
class Downloaded:
    path: Path
    info: dict[str, Any]
    from_cache: bool  # True when found on disk without any network access


def _jsonl_records(path: Path) -> list[dict]:
    records = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(record, dict):
                records.append(record)
    return records


class DownloadStore:
    """The download dir's indexes; thread-safe appends, last record per URL wins."""

    def __init__(self, root: Path, records: Optional[tuple[dict, dict]] = None) -> None:
        """``records``: (downloads, playlists) records to start from instead of the index files (what a task
        elsewhere is handed of the driver's index, see ingest.remote)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        if records is not None:
            self.downloads, self.playlists = dict(records[0]), dict(records[1])
        else:
            scrub_info_files(self.root)
            self.downloads = {r["url"]: r for r in _jsonl_records(self.root / INDEX) if "url" in r}
            self.downloads = {u: r for u, r in self.downloads.items() if r.get("file")}
            self.playlists = {r["url"]: r for r in _jsonl_records(self.root / PLAYLISTS) if "url" in r}
        self._local = threading.local()
        self._instances: list[Any] = []
        self._item_locks: dict[str, threading.Lock] = {}

    def ydl(self, cfg: IngestConfig) -> Any:
        """This thread's YoutubeDL (creating one costs ~0.1 s of CPU: extractor table, TLS context)."""
        import yt_dlp

        ydl = getattr(self._local, "ydl", None)
        if ydl is None:
            opts = dict(ydl_options(cfg, self.root), extract_flat="in_playlist", noplaylist=False)
            if cfg.playlist_limit:
                opts["playlistend"] = int(cfg.playlist_limit)
            ydl = self._local.ydl = yt_dlp.YoutubeDL(opts)
            with self._lock:
                self._instances.append(ydl)
        return ydl

    def item_lock(self, key: str) -> threading.Lock:
        """Serialises two sources that resolve to the same file (same URL twice, two URLs of one video)."""
        with self._lock:
            return self._item_locks.setdefault(key, threading.Lock())

    def close(self) -> None:
        with self._lock:
            instances, self._instances = self._instances, []
        for ydl in instances:
            ydl.close()

    def _append(self, name: str, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(self.root / name, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    def cached(self, url: str) -> Optional[Downloaded]:
        record = self.downloads.get(url)
        if not record or not record.get("file"):
            return None
        path, info_json = self.root / record["file"], self.root / record["info_json"]
        if not (path.is_file() and info_json.is_file()):
            return None
        try:
            info = json.loads(info_json.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return Downloaded(path, info, from_cache=True)

    def remember(self, url: str, done: Downloaded, info_json: Path) -> None:
        record = {"url": url, "file": done.path.name, "info_json": info_json.name,
                  "id": done.info.get("id"), "extractor": done.info.get("extractor_key") or done.info.get("extractor")}
        self.downloads[url] = record
        self._append(INDEX, record)

    def forget(self, url: str) -> None:
        record = self.downloads.pop(url, None)
        self._append(INDEX, {"url": url, "file": None})
        if record and record.get("extractor") and record.get("id") is not None:
            line = f"{str(record['extractor']).lower()} {record['id']}"
            archive = self.root / ARCHIVE
            with self._lock:
                if archive.is_file():
                    kept = [ln for ln in archive.read_text().splitlines() if ln.strip() != line]
                    archive.write_text("".join(k + "\n" for k in kept))

    def cached_playlist(self, url: str) -> Optional[list[Entry]]:
        record = self.playlists.get(url)
        if not record:
            return None
        return [Entry(**e) for e in record["entries"]]

    def remember_playlist(self, url: str, title: Optional[str], entries: list[Entry], limit: Optional[int]) -> None:
        record = {"url": url, "title": title, "limit": limit,
                  "entries": [dataclasses.asdict(e) for e in entries]}
        self.playlists[url] = record
        self._append(PLAYLISTS, record)


# extractors whose flat entries are playlists themselves (e.g. a YouTube channel's Videos/Shorts tabs)
_PLAYLIST_IES = {"YoutubeTab", "SoundcloudSet", "SoundcloudUser", "BandcampAlbum", "BandcampUser"}


def validate_config(cfg: IngestConfig) -> None:
    """Raise ConfigError naming the first ingest setting that cannot work (before any download starts)."""
    for ok, message in ingest_checks(cfg):
        if not ok:
            raise ConfigError(message)


def ydl_options(cfg: IngestConfig, download_dir: Path) -> dict[str, Any]:
    from yt_dlp.utils import parse_bytes

    backoff = cfg.retry_backoff_s
    opts: dict[str, Any] = {
        "format": cfg.format,
        "outtmpl": "%(extractor)s-%(id)s.%(ext)s",
        "paths": {"home": str(download_dir), "temp": str(download_dir / PARTIAL)},
        "restrictfilenames": True,
        # yt-dlp's own info json would hold the request cookies ("cookies" fields): we write it, without them
        "writeinfojson": False,
        "download_archive": str(download_dir / ARCHIVE),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YdlLogger(),
        # One retry policy, ours (with_retries): yt-dlp's own HTTP retries would multiply with it
        # ((retries + 1)^2 attempts for a cut transfer). A retried download resumes from its .part file.
        "retries": 0,
        "fragment_retries": cfg.retries,  # one fragment of an HLS/DASH stream, retried in place
        "retry_sleep_functions": {"http": lambda n: min(backoff * 2 ** n, 300.0),
                                  "fragment": lambda n: min(backoff * 2 ** n, 300.0)},
        "socket_timeout": cfg.socket_timeout_s,
        "continuedl": True,
        "ffmpeg_location": audio_io.ffmpeg_exe(),
    }
    if cfg.rate_limit:
        opts["ratelimit"] = parse_bytes(str(cfg.rate_limit))
    if cfg.sleep_interval_s:
        opts["sleep_interval"] = cfg.sleep_interval_s
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    if cfg.cookies_file:
        opts["cookiefile"] = str(cfg.cookies_file)
    return opts


def with_retries(fn: Callable[[], Any], cfg: IngestConfig, what: str) -> Any:
    """Call fn; on a transient IngestFailure wait retry_backoff_s * 2**attempt and try again, up to cfg.retries times."""
    attempt = 0
    while True:
        try:
            return fn()
        except IngestFailure as exc:
            if exc.kind not in TRANSIENT_KINDS or attempt >= cfg.retries:
                if attempt:
                    exc.reason = f"{exc.reason} (after {attempt + 1} attempts)"
                raise
            delay = min(cfg.retry_backoff_s * 2 ** attempt, 300.0)
            log.info("%s: %s; retrying in %.1f s", what, exc.reason, delay)
            time.sleep(delay)
            attempt += 1


def _call(fn: Callable[[], Any]) -> Any:
    import yt_dlp

    try:
        return fn()
    except yt_dlp.utils.DownloadError as exc:
        raise classify_download_error(exc) from None
    except (yt_dlp.utils.YoutubeDLError, OSError) as exc:
        raise classify_download_error(exc) from None


def resolve(url: str, cfg: IngestConfig, store: DownloadStore) -> tuple[str, Any]:
    """Look at a URL without downloading: ("playlist", (title, [Entry])) or ("item", info dict)."""

    def run() -> tuple[str, Any]:
        ydl = store.ydl(cfg)
        info = ydl.extract_info(url, download=False, process=False)
        if info is None:
            raise IngestFailure("unavailable", "the extractor returned nothing")
        if info.get("_type") in ("playlist", "multi_video"):
            entries = []
            for e in info.get("entries") or []:
                if cfg.playlist_limit and len(entries) >= cfg.playlist_limit:
                    break
                if not e:
                    continue
                e_url = e.get("url") or e.get("webpage_url")
                if not e_url:
                    continue
                nested = e.get("_type") == "playlist" or e.get("ie_key") in _PLAYLIST_IES
                entries.append(Entry(url=e_url, title=e.get("title"), duration=e.get("duration"),
                                     is_playlist=bool(nested)))
            return "playlist", (info.get("title"), entries)
        return "item", info

    return with_retries(lambda: _call(run), cfg, url)


def check_limits_before(info: dict[str, Any], cfg: IngestConfig, licence_override: Optional[str]) -> None:
    """Reject from metadata alone (no download) when the extractor knows duration / licence / liveness."""
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise IngestFailure("live", "a live stream or upcoming premiere, not a finished recording")
    duration = info.get("duration")
    if isinstance(duration, (int, float)) and duration > 0:
        if duration < cfg.min_duration_s:
            raise IngestFailure("too_short", f"too short: {duration:.1f} s < min_duration_s {cfg.min_duration_s:g} s "
                                             "(from the extractor, not downloaded)")
        if duration > cfg.max_duration_s:
            raise IngestFailure("too_long", f"too long: {duration:.1f} s > max_duration_s {cfg.max_duration_s:g} s "
                                            "(from the extractor, not downloaded)")
    licence = licence_override or info.get("license")
    if cfg.allowed_licences and licence and licence not in cfg.allowed_licences:
        raise IngestFailure("licence", f"licence {licence!r} is not in allowed_licences (not downloaded)")


def _find_existing(download_dir: Path, info: dict[str, Any]) -> Optional[Path]:
    """The finished file of an item yt-dlp skipped because its archive says it is done."""
    extractor, vid = info.get("extractor"), info.get("id")
    if not extractor or not vid:
        return None
    from yt_dlp.utils import sanitize_filename

    stem = sanitize_filename(f"{extractor}-{vid}", restricted=True)
    for path in sorted(download_dir.glob(f"{glob_escape(stem)}.*")):
        if not path.name.endswith((".info.json", ".part", ".ytdl", ".json")):
            return path
    return None


_CREDENTIAL_HEADERS = {"cookie", "authorization", "proxy-authorization"}


def without_credentials(value: Any) -> Any:
    """An info dict without what authenticated the requests: yt-dlp's ``cookies`` fields (the
    cookies file's values) and Cookie/Authorization headers. Nothing written to disk may hold them."""
    if isinstance(value, dict):
        return {k: without_credentials(v) for k, v in value.items()
                if k != "cookies" and str(k).lower() not in _CREDENTIAL_HEADERS}
    if isinstance(value, list):
        return [without_credentials(v) for v in value]
    return value


def scrub_info_files(root: Path) -> int:
    """Rewrite, once per download folder, every info json that still holds credentials: those written
    before yt-dlp's own info json was replaced by ours held the cookies file's values. Returns how many."""
    if (root / SCRUBBED).exists():
        return 0
    scrubbed = 0
    for info_json in sorted(root.glob("*.info.json")):
        try:
            info = json.loads(info_json.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # unreadable: never read back either (cached() refuses it)
        clean = without_credentials(info)
        if clean != info:
            write_text_atomic(info_json, json.dumps(clean, ensure_ascii=False, default=str))
            scrubbed += 1
    if scrubbed:
        log.warning("%s: removed cookies and credentials from %d info file(s) written by an earlier version",
                    root, scrubbed)
    write_text_atomic(root / SCRUBBED, "info json files here hold no cookies or credentials\n")
    return scrubbed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def download_item(url: str, cfg: IngestConfig, store: DownloadStore, info: Optional[dict[str, Any]] = None,
                  licence_override: Optional[str] = None) -> Downloaded:
    """Download one item's best audio (info: its unprocessed info from ``resolve``, if already known)."""
    cached = store.cached(url)
    if cached is not None:
        return cached
    download_dir = store.root

    def run() -> Downloaded:
        ydl = store.ydl(cfg)
        current = info
        if current is None or current.get("_type") in ("url", "url_transparent"):
            current = ydl.extract_info(url, download=False)
        if current.get("_type") in ("playlist", "multi_video"):
            raise IngestFailure("playlist", "this entry is itself a playlist; list its items as sources")
        check_limits_before(current, cfg, licence_override)
        key = f"{current.get('extractor_key') or current.get('extractor')}-{current.get('id')}"
        with store.item_lock(key):
            result = ydl.process_ie_result(current, download=True)
        downloads = (result or {}).get("requested_downloads") or []
        path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
        if path is None or not path.is_file():
            path = _find_existing(download_dir, result or current)
        if path is None or not path.is_file():
            raise IngestFailure("download", "yt-dlp finished but no audio file was written")
        info_json = path.with_name(Path(ydl.prepare_filename(result, "infojson")).name)
        clean = without_credentials(ydl.sanitize_info(result))
        write_text_atomic(info_json, json.dumps(clean, ensure_ascii=False, default=str))
        return Downloaded(path, json.loads(info_json.read_text()), from_cache=False), info_json

    done, info_json = with_retries(lambda: _call(run), cfg, url)
    store.remember(url, done, info_json)
    return done
