"""Ingest: turn SourceSpecs into Songs (complete local audio files + metadata).

Sources are URLs (single items, playlists, channels, RSS feeds: anything
yt-dlp extracts), local files, local folders (recursive, by
``audio_extensions``) and text files listing one URL/path per line. Items are
downloaded/checked on a bounded thread pool (``concurrency``) and come out of
``iter_ingest`` as they finish: failures at once, songs and duplicates in
source order (a song is only known not to duplicate an earlier item once all
earlier items are done). Duplicates (same id, same bytes, or the same
recording by Chromaprint fingerprint) are caught here, before separation; the
first in source order is kept. Every failure becomes a Failure with a short
``kind`` and a specific reason, is appended to ``failures.jsonl`` and the rest
goes on.
"""
from __future__ import annotations

import hashlib
import heapq
import logging
import re
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from .. import audio_io
from .audio_check import check_audio_head
from ..config import IngestConfig
from .download import DownloadStore, check_limits_before, download_item, resolve, validate_config
from .failures import EARLIER_RUN, FailureLog, IngestFailure
from .fingerprint import (LENGTH_S, DuplicateIndex, Fingerprint, FingerprintError, cached_fingerprint,
                          chromaprint_available)
from .sources import LIST_SUFFIXES, child_spec, expand_local_source, song_id_problem
from ..types import Failure, SongMetadata, Song, SourceSpec

log = logging.getLogger(__name__)

@dataclass
class Duplicate:
    """An item dropped because it is the same recording as an earlier, kept song."""

    song_id: str
    kept_song_id: str
    item: str  # the source location of the dropped item
    similarity: float  # 1.0 = same id or same bytes; else fingerprint similarity


@dataclass
class IngestResult:
    songs: list[Song] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # dropped song id -> kept song id
    duplicate_items: list[Duplicate] = field(default_factory=list)  # the same, with item and similarity


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


# a lower-case tag between the name and the extension ("Title.hq.ogg", "Title.lowq-22k-mono.ogg"); a dot
# inside a title ("Mr. Blue Sky.mp3", "E.L.O. - Mr. Blue Sky.mp3") is followed by a space or a capital
_FILE_TAG = re.compile(r"\.[a-z][a-z0-9-]*$")


def _title_from_filename(path: Path) -> tuple[Optional[str], Optional[str]]:
    """'Artist_-_Title.hq.ogg' -> ('Artist', 'Title'); a best guess only, the user's metadata wins."""
    stem = _FILE_TAG.sub("", path.stem).replace("_", " ").strip()
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip() or None, title.strip() or None
    return None, stem or None


def _metadata_from_info(info: dict[str, Any], url: str) -> SongMetadata:
    from yt_dlp.utils import unsmuggle_url

    return SongMetadata(
        title=info.get("track") or info.get("title"),
        artist=info.get("artist") or info.get("creator") or (info.get("artists") or [None])[0],
        uploader=info.get("uploader"),
        channel=info.get("channel"),
        tags=list(info.get("tags") or []),
        categories=list(info.get("categories") or []),
        licence=info.get("license"),
        url=unsmuggle_url(info.get("webpage_url") or url)[0],
        extractor=info.get("extractor_key") or info.get("extractor"),
        description=info.get("description"),
    )


# ----------------------------------------------------------------------------- work items

@dataclass
class _Item:
    key: tuple[int, ...]  # position in source order; playlist entries extend their playlist's key
    spec: SourceSpec
    display: str  # what failures and duplicates name
    url: Optional[str] = None  # the URL to fetch (may carry yt-dlp smuggled data)
    entry_title: Optional[str] = None
    entry_duration: Optional[float] = None  # known from the playlist listing: limits checked before any request
    expand: bool = True  # may be a playlist/channel: resolve it before downloading


def _expand_local(item: _Item, cfg: IngestConfig) -> Optional[list[_Item]]:
    children = expand_local_source(item.spec, cfg.audio_extensions)
    if children is None:
        return None
    return [_Item(item.key + (j,), child, child.location) for j, child in enumerate(children)]


@dataclass
class _Done:
    song: Song
    fingerprint: Optional[Fingerprint]
    item: str = ""  # the source location, as failures and duplicates name it


def _finish(spec: SourceSpec, path: Path, meta: SongMetadata, default_id: Optional[str], cfg: IngestConfig,
            fingerprints: Optional[Path]) -> _Done:
    """Check the file and the limits; hash and fingerprint it (fingerprints: cache folder, None = off). The check
    decodes the file in full (most formats): it keeps the first seconds for the fingerprint, which then needs no
    decode of its own."""
    (duration, rate, channels), head = check_audio_head(path, LENGTH_S if fingerprints else 0.0)
    meta = _metadata_from_spec(spec, meta)
    if duration < cfg.min_duration_s:
        raise IngestFailure("too_short", f"too short: {duration:.1f} s < min_duration_s {cfg.min_duration_s:g} s")
    if duration > cfg.max_duration_s:
        raise IngestFailure("too_long", f"too long: {duration:.1f} s > max_duration_s {cfg.max_duration_s:g} s")
    if cfg.allowed_licences and (meta.licence or "") not in cfg.allowed_licences:
        raise IngestFailure("licence", f"licence {meta.licence!r} is not in allowed_licences "
                                       f"({', '.join(cfg.allowed_licences)})")
    if spec.song_id is not None and song_id_problem(spec.song_id):
        raise IngestFailure("bad_song_id", f"song_id {spec.song_id!r} {song_id_problem(spec.song_id)}")
    content_hash = audio_io.file_sha256(path)
    song_id = spec.song_id or default_id or hashlib.sha256(content_hash.encode()).hexdigest()[:16]
    fp = None
    if fingerprints:
        try:
            fp = cached_fingerprint(path, content_hash, fingerprints, LENGTH_S, head)
        except FingerprintError as exc:
            log.warning("%s: no fingerprint, duplicates by content hash only (%s)", song_id, exc)
    song = Song(song_id=song_id, audio_path=path, metadata=meta, content_hash=content_hash, duration_s=duration,
                sample_rate=rate, channels=channels, instrumental=spec.instrumental)
    return _Done(song, fp)


def _process(item: _Item, cfg: IngestConfig, store: DownloadStore, failures: FailureLog,
             fingerprints: Optional[Path]) -> Union[_Done, list[_Item], Failure]:
    """One item, on a worker thread: a finished song, the entries it expands to, or a Failure."""
    spec = item.spec
    try:
        if not spec.is_url:
            path = Path(spec.location)
            if not path.exists():
                raise _why_missing(path)
            if path.is_dir():
                raise IngestFailure("no_audio", f"{path}: folder holds no files ending in "
                                                f"{', '.join(cfg.audio_extensions)}")
            if path.suffix.lower() in LIST_SUFFIXES:
                raise IngestFailure("no_audio", f"{path}: the list names no URL or file")
            artist, title = _title_from_filename(path)
            meta = SongMetadata(title=title, artist=artist, source_path=str(path))
            return _finish(spec, path, meta, None, cfg, fingerprints)
        url = item.url or spec.location
        done = store.cached(url)
        if done is None:
            if not cfg.retry_failed:
                before = failures.failed_before(item.display)
                if before is not None:
                    return before
            info = None
            if item.entry_duration:
                check_limits_before({"duration": item.entry_duration}, cfg, None)
            if item.expand:  # a source the user gave (or a nested playlist): it may be a playlist or channel
                playlist = None if cfg.refresh_playlists else store.cached_playlist(url)
                if playlist is None:
                    what, value = resolve(url, cfg, store)
                    if what == "playlist":
                        title, entries = value
                        store.remember_playlist(url, title, entries, cfg.playlist_limit)
                        playlist = entries
                    else:
                        info = value
                if playlist is not None:
                    if cfg.playlist_limit:
                        playlist = playlist[: cfg.playlist_limit]
                    return [_Item(item.key + (j,), child_spec(spec, e.display_url, j), e.display_url, url=e.url,
                                  entry_title=e.title, entry_duration=e.duration, expand=e.is_playlist)
                            for j, e in enumerate(playlist)]
            done = download_item(url, cfg, store, info=info, licence_override=spec.licence)
        meta = _metadata_from_info(done.info, item.display)
        if item.entry_title:  # the playlist's title for its entry wins, as in yt-dlp's url_transparent
            meta.title = item.entry_title
        extractor = (done.info.get("extractor_key") or done.info.get("extractor") or "url").lower()
        default_id = _safe_id(f"{extractor}-{done.info.get('id')}")
        try:
            return _finish(spec, done.path, meta, default_id, cfg, fingerprints)
        except IngestFailure as exc:
            if exc.kind in ("truncated", "corrupt", "not_audio", "empty"):
                _forget(store, url, done.path)  # never reuse a bad file; a retry downloads it again
            raise
    except IngestFailure as exc:
        return Failure(item=item.display, stage="ingest", reason=exc.reason, kind=exc.kind)
    except Exception as exc:  # one bad item never stops the build
        log.exception("ingest of %s failed unexpectedly", item.display)
        return Failure(item=item.display, stage="ingest", reason=f"{type(exc).__name__}: {exc}", kind="error")


def _why_missing(path: Path) -> IngestFailure:
    """A path that does not resolve: a symlink loop, a dangling symlink, or nothing there."""
    import errno
    import os

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return IngestFailure("symlink_loop", f"{path}: symbolic link loop (the links point at each other)")
        if path.is_symlink():
            return IngestFailure("missing", f"{path}: broken symbolic link to {os.readlink(path)}")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return IngestFailure("unreadable", f"{path}: permission denied")
    return IngestFailure("missing", f"{path}: no such file or folder")


def _forget(store: DownloadStore, url: str, path: Path) -> None:
    """Drop a bad download (file, index record, archive line) so a retry fetches it again."""
    store.forget(url)
    path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- driver

class ThreadRunner:
    """Runs items on ``concurrency`` threads of this process (the default): ``submit`` an item, get a
    Future; ``result`` of a finished Future is the item's outcome. Another runner (the Ray executor's)
    runs them elsewhere, with the same interface, while this module keeps order, dedup and the index."""

    def __init__(self, cfg: IngestConfig, store: DownloadStore, failures: FailureLog, fingerprints: Optional[Path]):
        workers = max(1, int(cfg.concurrency))
        self.capacity = 2 * workers  # items submitted at once
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        self.args = (cfg, store, failures, fingerprints)

    def submit(self, item: "_Item") -> Future:
        return self.pool.submit(_process, item, *self.args)

    def result(self, future: Future) -> Union["_Done", list["_Item"], Failure]:
        return future.result()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _iter_keyed(sources: list[SourceSpec], cfg: IngestConfig, download_dir: Path,
                runner: Optional[Any] = None) -> Iterator[tuple[tuple[int, ...], Union[Song, Failure, Duplicate]]]:
    validate_config(cfg)
    download_dir = Path(download_dir)
    store = DownloadStore(download_dir)
    failures = FailureLog(download_dir / "failures.jsonl")
    fingerprints: Optional[Path] = download_dir / "fingerprints" if cfg.dedup else None
    if fingerprints and not chromaprint_available():
        log.warning("essentia's Chromaprinter is not available: duplicates are caught by id and content hash "
                    "only; pip install essentia (a dependency of this project) to catch re-encodes")
        fingerprints = None

    todo: deque[_Item] = deque()
    pending: list[tuple[int, ...]] = []  # heap of unresolved keys
    resolved: dict[tuple[int, ...], Optional[_Done]] = {}

    def leaves(items: list[_Item]) -> list[_Item]:
        """Local folders and URL lists become their entries, recursively, in order."""
        out: list[_Item] = []
        for it in items:
            local = None if it.spec.is_url else _expand_local(it, cfg)
            out.extend(leaves(local) if local else [it])  # an empty folder/list fails as itself
        return out

    def add(items: list[_Item]) -> None:
        for it in leaves(items):
            heapq.heappush(pending, it.key)
            todo.append(it)

    add([_Item((i,), spec, spec.location) for i, spec in enumerate(sources)])

    index = DuplicateIndex(threshold=cfg.dedup_threshold)
    kept_ids: set[str] = set()
    kept_hashes: dict[str, str] = {}

    def release() -> Iterator[tuple[tuple[int, ...], Union[Song, Duplicate]]]:
        while pending and pending[0] in resolved:
            key = heapq.heappop(pending)
            done = resolved.pop(key)
            if done is None:
                continue
            song = done.song
            dup: Optional[tuple[str, float]] = None
            if song.song_id in kept_ids:
                dup = (song.song_id, 1.0)
            elif cfg.dedup and song.content_hash in kept_hashes:
                dup = (kept_hashes[song.content_hash], 1.0)
            elif cfg.dedup and done.fingerprint is not None:
                dup = index.match(done.fingerprint)
            if dup is not None:
                yield key, Duplicate(song_id=song.song_id, kept_song_id=dup[0], item=done.item,
                                     similarity=round(float(dup[1]), 4))
                continue
            kept_ids.add(song.song_id)
            kept_hashes.setdefault(song.content_hash, song.song_id)
            if done.fingerprint is not None:
                index.add(song.song_id, done.fingerprint)
            yield key, song

    pool = (runner or ThreadRunner)(cfg, store, failures, fingerprints)
    try:
        running: dict[Future, _Item] = {}
        while todo or running:
            while todo and len(running) < pool.capacity:
                it = todo.popleft()
                running[pool.submit(it)] = it
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: running[f].key):
                it = running.pop(fut)
                outcome = pool.result(fut)
                if isinstance(outcome, list):  # a playlist: its entries take its place in the order
                    resolved[it.key] = None
                    for child in outcome:
                        heapq.heappush(pending, child.key)
                    todo.extendleft(reversed(outcome))
                elif isinstance(outcome, Failure):
                    resolved[it.key] = None
                    if not outcome.reason.startswith(EARLIER_RUN):
                        failures.append(outcome)
                    yield it.key, outcome
                else:
                    outcome.item = it.display
                    resolved[it.key] = outcome
            yield from release()
    finally:  # a consumer that stops early (or Ctrl-C) leaves no queued work behind
        pool.shutdown()
        store.close()
    yield from release()


def iter_ingest(sources: list[SourceSpec], cfg: IngestConfig, download_dir: Path,
                runner: Optional[Any] = None) -> Iterator[Union[Song, Failure, Duplicate]]:
    """Yield each item as it is done: Failures at once, Songs and Duplicates in source order.

    Downloads go on in the background (``cfg.concurrency`` threads, or ``runner(cfg, store, failures,
    fingerprints)``'s workers: see ThreadRunner) while the caller works on the songs already yielded.
    """
    for _, item in _iter_keyed(sources, cfg, download_dir, runner):
        yield item


def ingest(sources: list[SourceSpec], cfg: IngestConfig, download_dir: Path) -> IngestResult:
    """All of ``iter_ingest``, collected; songs, failures and duplicates each in source order."""
    keyed = list(_iter_keyed(sources, cfg, download_dir))
    keyed.sort(key=lambda kv: kv[0])
    result = IngestResult()
    for _, item in keyed:
        if isinstance(item, Song):
            result.songs.append(item)
        elif isinstance(item, Failure):
            result.failures.append(item)
        else:
            result.duplicates[item.song_id] = item.kept_song_id
            result.duplicate_items.append(item)
    return result


def ingest_one(spec: SourceSpec, cfg: IngestConfig, download_dir: Path) -> Song:
    """Ingest a single file or URL (no playlist expansion, no dedup); raise IngestFailure on failure."""
    store = DownloadStore(Path(download_dir))
    validate_config(cfg)
    outcome = _process(_Item((0,), spec, spec.location, expand=False), cfg, store,
                       FailureLog(Path(download_dir) / "failures.jsonl"), fingerprints=None)
    store.close()
    if isinstance(outcome, Failure):
        raise IngestFailure(outcome.kind, outcome.reason)
    if isinstance(outcome, list):
        raise IngestFailure("playlist", f"{spec.location} is a playlist; use ingest() or iter_ingest()")
    return outcome.song
