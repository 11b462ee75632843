"""Read a sources file (YAML or CSV) into SourceSpec items.

YAML: either a list, or a mapping with a ``songs:`` list (and optionally a
``config:`` mapping, read by scripts/build.py). Each item is a string (path or
URL) or a mapping with ``location`` (alias ``url``/``path``) and optional
metadata: artist, title, genre, moods, licence, keywords, split, song_id,
instrumental. CSV: a header row with the same column names; list columns
(moods, keywords) are separated by ``;``. Relative paths are resolved against
the sources file's folder.

At ingest time a location may also be a local folder (expanded recursively to
its audio files, sorted by path) or a ``.txt``/``.list`` file of URLs/paths
(see ``expand_local_source``); URLs of playlists and channels are expanded by
the ingest stage with yt-dlp.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from ..config import yaml_error_text
from ..types import SourceSpec


class SourcesError(ValueError):
    """The sources file is malformed; the message names the file and the entry."""


_ALIASES = {"url": "location", "path": "location", "file": "location", "license": "licence", "mood": "moods", "id": "song_id"}
_LIST_FIELDS = {"moods", "keywords"}
_FIELDS = {f.name for f in dataclasses.fields(SourceSpec)}


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        sep = ";" if ";" in value else ","
        return [v.strip() for v in value.split(sep) if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


# A song id names folders and files of the build (audio/<song_id>/<song_id>-000.wav): letters, digits,
# '.', '_', '-', starting with a letter or digit, so no id can be a path ('../x', 'a/b', '/abs').
_SONG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def song_id_problem(song_id: str) -> Optional[str]:
    """Why a user-given song_id cannot name files, or None when it can."""
    if _SONG_ID.match(str(song_id)):
        return None
    return ("cannot name the song's files: use up to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')")


def spec_from_mapping(item: dict[str, Any], base_dir: Path | None, where: str) -> SourceSpec:
    data: dict[str, Any] = {}
    for key, value in item.items():
        name = _ALIASES.get(str(key).strip().lower(), str(key).strip().lower())
        if name not in _FIELDS:
            raise SourcesError(f"{where}: unknown field {key!r}; known: {', '.join(sorted(_FIELDS))}")
        data[name] = value
    location = data.get("location")
    if not location or not str(location).strip():
        raise SourcesError(f"{where}: no location (a path or URL) given")
    for name in _LIST_FIELDS:
        if name in data:
            data[name] = _as_list(data[name])
    if "instrumental" in data and isinstance(data["instrumental"], str):
        data["instrumental"] = data["instrumental"].strip().lower() in ("1", "true", "yes")
    for name in ("artist", "title", "genre", "licence", "split", "song_id"):
        if data.get(name) in ("", None):
            data.pop(name, None)
        elif name in data:
            data[name] = str(data[name]).strip()
    if data.get("split") not in (None, "train", "validation", "test"):
        raise SourcesError(f"{where}: split must be train, validation or test, not {data['split']!r}")
    if data.get("song_id") is not None and song_id_problem(data["song_id"]):
        raise SourcesError(f"{where}: song_id {data['song_id']!r} {song_id_problem(data['song_id'])}")
    spec = SourceSpec(**data)
    spec.location = str(spec.location).strip()
    if not spec.is_url:
        local = Path(spec.location.removeprefix("file://")).expanduser()
        if base_dir is not None and not local.is_absolute():
            local = Path(os.path.normpath(base_dir / local))
        spec.location = str(local)
    return spec


def specs_from_items(items: Iterable[Any], base_dir: Path | None = None, origin: str = "sources") -> list[SourceSpec]:
    specs = []
    for i, item in enumerate(items):
        where = f"{origin} entry {i + 1}"
        if isinstance(item, (str, Path)):
            item = {"location": str(item)}
        if not isinstance(item, dict):
            raise SourcesError(f"{where}: expected a path, URL or mapping, got {item!r}")
        specs.append(spec_from_mapping(item, base_dir, where))
    return specs


def read_sources(path: Path) -> tuple[list[SourceSpec], dict[str, Any]]:
    """Return the songs of a sources file and its embedded ``config:`` mapping (may be empty)."""
    path = Path(path)
    if not path.is_file():
        raise SourcesError(f"sources file {path} does not exist")
    base = path.parent.resolve()
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = [{k: v for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]
        return _some(specs_from_items(rows, base, str(path)), path), {}
    if path.suffix.lower() in (".txt", ".list"):
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return _some(specs_from_items([ln for ln in lines if ln and not ln.startswith("#")], base, str(path)), path), {}
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SourcesError(f"{path}: not valid YAML at {yaml_error_text(exc)}") from None
    config: dict[str, Any] = {}
    if doc is None:
        raise SourcesError(f"{path}: {NO_SONGS}")
    if isinstance(doc, dict):
        config = doc.get("config") or {}
        if not isinstance(config, dict):
            raise SourcesError(f"{path}: config: must be a mapping of sections (ingest:, chunk:, ...)")
        unknown = set(doc) - {"songs", "config"}
        if unknown:
            raise SourcesError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected songs and config")
        doc = doc.get("songs") or []
    if not isinstance(doc, list):
        raise SourcesError(f"{path}: expected a list of songs or a mapping with 'songs:'")
    return _some(specs_from_items(doc, base, str(path)), path), config


NO_SONGS = "the sources file lists no songs"


def _some(specs: list[SourceSpec], path: Path) -> list[SourceSpec]:
    """An empty sources file is a mistake (a wrong file, a failed export), not an empty dataset."""
    if not specs:
        raise SourcesError(f"{path}: {NO_SONGS}")
    return specs


LIST_SUFFIXES = (".txt", ".list")


def child_spec(spec: SourceSpec, location: str, index: int, title: Optional[str] = None) -> SourceSpec:
    """An entry of a folder, URL list or playlist: it inherits the user's metadata except the
    title, and a user ``song_id`` gets the entry's number as a suffix (``id-0001``)."""
    return dataclasses.replace(spec, location=location, title=title,
                               song_id=f"{spec.song_id}-{index + 1:04d}" if spec.song_id else None)


def expand_local_source(spec: SourceSpec, audio_extensions: Iterable[str]) -> Optional[list[SourceSpec]]:
    """A local folder (recursive, files with an audio extension, sorted by relative path) or a
    text file listing URLs/paths (``.txt``/``.list``, one a line, ``#`` comments) becomes its
    entries; None for anything else (a URL or a single file)."""
    if spec.is_url:
        return None
    path = Path(spec.location)
    if path.is_dir():
        exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in audio_extensions}
        files = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts),
                       key=lambda p: p.relative_to(path).as_posix())
        return [child_spec(spec, str(p), j) for j, p in enumerate(files)]
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
        out = []
        for j, line in enumerate(ln for ln in lines if ln and not ln.startswith("#")):
            child = child_spec(spec, line, j)
            if not child.is_url:
                local = Path(line.removeprefix("file://")).expanduser()
                child.location = str(local if local.is_absolute() else path.parent / local)
            out.append(child)
        return out
    return None
