"""Where a task finds its inputs and puts its outputs: the stage cache, the song's audio, the build's files.

Each is a local folder (one machine, or a shared file system) or a remote store (``processing.storage``).
With a remote build, the worker that makes a chunk puts it into the build itself: by a copy inside the
store from the cache entry when the cache is on the same store, else by an upload; the node's staging
folder keeps a hard link for the stages that read it next. Rows files go up the same way. Nothing goes
through the build's driver.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .atomic import write_text_atomic
from .cache import StageCache
from .chunk.stage import place_file
from .executors.base import BuildContext
from .storage import Store
from .types import Song

ROWS_DIR = ".rows"  # one JSON-lines file of rows per song, merged into chunks.parquet at the end
SOURCES_DIR = "sources"  # in a remote cache: each song's audio, by content hash, for nodes that lack the file


def open_cache(ctx: BuildContext) -> StageCache:
    return StageCache(ctx.cache_root, remote=ctx.cache_store.open() if ctx.cache_store else None)


# ----------------------------------------------------------------------------- the song's audio


def source_rel(song: Song) -> str:
    return f"{SOURCES_DIR}/{song.content_hash}{Path(song.audio_path).suffix.lower()}"


def share_source(song: Song, cache: StageCache) -> None:
    """Put a song's audio file into the remote cache once, for workers on nodes that do not have it."""
    if cache.remote is not None and not cache.remote.exists(source_rel(song)):
        cache.remote.upload(Path(song.audio_path), source_rel(song))


def song_audio(song: Song, ctx: BuildContext) -> Path:
    """The song's audio file on this node: where ingest put it, or fetched from the remote cache by hash."""
    path = Path(song.audio_path)
    if path.is_file() or ctx.cache_store is None:
        return path
    local = ctx.cache_root / source_rel(song)
    if not local.is_file():
        ctx.cache_store.open().download(source_rel(song), local)
    return local


# ----------------------------------------------------------------------------- the build's files


class BuildOutput:
    """The build's files as one task writes them (see the module docstring)."""

    def __init__(self, ctx: BuildContext, cache: StageCache):
        self.out_dir = ctx.out_dir
        self.store: Optional[Store] = ctx.out_store.open() if ctx.out_store else None
        self.cache = cache

    @property
    def needs_local_cache_files(self) -> bool:
        """Whether a cached file must be on this node before ``place`` (no copy inside one store)."""
        remote = self.cache.remote
        return remote is not None and (self.store is None or not self.store.same_endpoint(remote))

    def place(self, src: Path, dest: Path) -> None:
        """A file of a cache entry (``src``) into the build at ``dest`` (a path under ``out_dir``)."""
        if self.store is None:
            place_file(src, dest)
            return
        if src.is_file():
            place_file(src, dest)  # the staging copy (a hard link): what analysis reads on this node
        rel = dest.relative_to(self.out_dir).as_posix()
        remote = self.cache.remote
        if remote is not None and self.store.same_endpoint(remote):
            self.store.copy(remote, src.relative_to(self.cache.root).as_posix(), rel)
        else:
            self.store.upload(src, rel)

    def write_rows(self, song_id: str, rows: list[dict[str, Any]]) -> str:
        """One song's rows into the build (a remote build: then sent in one PUT); the relative path."""
        rel = write_rows(self.out_dir, song_id, rows)
        if self.store is not None:
            self.store.upload(self.out_dir / rel, rel)
        return rel


def write_rows(out_dir: Path, song_id: str, rows: list[dict[str, Any]]) -> str:
    """One song's rows as JSON lines in the build's hidden rows folder (atomic); returns the relative path."""
    rel = f"{ROWS_DIR}/{song_id}.jsonl"
    write_text_atomic(out_dir / rel, "".join(json.dumps(row, default=str) + "\n" for row in rows))
    return rel
