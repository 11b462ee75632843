"""Read a build folder's chunks.parquet and turn it into rows of the published schema."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .schema import COLUMN_NAMES, COLUMNS, CONSUMED_INPUT, REQUIRED_INPUT


class BuildFolderError(ValueError):
    """The build folder does not follow the contract; the message names the file, row or column."""


@dataclass
class BuildInput:
    build_dir: Path
    rows: list[dict[str, Any]]  # every row of chunks.parquet, excluded ones included
    report: dict[str, Any]
    config: dict[str, Any]
    columns: list[str]  # the columns chunks.parquet has

    @property
    def kept(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r.get("excluded")]

    @property
    def excluded(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("excluded")]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BuildFolderError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BuildFolderError(f"{path}: top level must be an object")
    return data


def read_build(build_dir: Path) -> BuildInput:
    """Load DIR/chunks.parquet (+ report.json, config.json) and check the contract."""
    build_dir = Path(build_dir)
    path = build_dir / "chunks.parquet"
    if not path.is_file():
        raise BuildFolderError(f"{path}: missing (the pipeline writes it before the build step)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise BuildFolderError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in REQUIRED_INPUT if c not in table.column_names]
    if missing:
        raise BuildFolderError(f"{path}: required column(s) missing: {', '.join(missing)}")
    rows = table.to_pylist()
    seen: set[str] = set()
    for i, row in enumerate(rows):
        cid = row.get("chunk_id")
        if not cid:
            raise BuildFolderError(f"{path}: row {i} has no chunk_id")
        if cid in seen:
            raise BuildFolderError(f"{path}: chunk_id {cid!r} appears twice")
        seen.add(cid)
        if not row.get("excluded"):
            if not row.get("song_id"):
                raise BuildFolderError(f"{path}: chunk {cid!r} has no song_id")
            audio = build_dir / str(row.get("audio_path") or "")
            if not row.get("audio_path") or not audio.is_file():
                raise BuildFolderError(f"chunk {cid!r}: audio file {audio} is missing")
    return BuildInput(
        build_dir=build_dir,
        rows=rows,
        report=_read_json(build_dir / "report.json"),
        config=_read_json(build_dir / "config.json"),
        columns=list(table.column_names),
    )


def song_pins(rows: list[dict[str, Any]]) -> dict[str, Optional[str]]:
    """song_id -> its split_pin; rows of one song that disagree are an error."""
    pins: dict[str, Optional[str]] = {}
    for row in rows:
        sid, pin = row["song_id"], row.get("split_pin") or None
        if sid in pins and pins[sid] != pin:
            raise BuildFolderError(f"song {sid!r}: chunks disagree on split_pin ({pins[sid]!r} vs {pin!r})")
        pins[sid] = pin
    return pins


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_list(value: Any) -> Optional[list[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def to_output_row(row: dict[str, Any], split: str, audio: dict[str, Any]) -> dict[str, Any]:
    """One input row -> one row of the published schema (see builders/schema.py)."""
    out: dict[str, Any] = {name: None for name in COLUMN_NAMES}
    for name in COLUMN_NAMES:
        if name in row:
            out[name] = _clean(row[name])
    out["audio"] = audio
    out["split"] = split
    # `instrument`: the analyse stage writes a list, the describe stage a string.
    inst = row.get("instrument")
    instruments = _as_list(row.get("instruments")) or _as_list(inst)
    out["instruments"] = instruments
    sources = _as_list(row.get("instrument_source"))
    out["instrument_sources"] = sources if sources and instruments and len(sources) == len(instruments) else None
    out["instrument"] = inst if isinstance(inst, str) else (", ".join(instruments) if instruments else None)
    # `key`: analysis may give the tonic alone and the mode in `scale`.
    key, scale = row.get("key"), row.get("scale")
    if isinstance(key, str) and key and isinstance(scale, str) and scale and " " not in key.strip():
        out["key"] = f"{key.strip()} {scale.strip()}"
    if out["bpm"] is not None:
        out["bpm"] = float(out["bpm"])
    for c in COLUMNS:
        if c.kind == "strings" and out[c.name] is not None:
            out[c.name] = _as_list(out[c.name])
        elif c.kind == "floats" and out[c.name] is not None:
            out[c.name] = [float(v) for v in out[c.name]]
        elif c.kind == "int" and out[c.name] is not None:
            out[c.name] = int(out[c.name])
        elif c.kind == "float" and out[c.name] is not None:
            out[c.name] = float(out[c.name])
        elif c.kind == "scores" and out[c.name] is not None:
            out[c.name] = [{"tag": str(d["tag"]), "score": float(d["score"])} for d in out[c.name]] or None
        elif c.kind == "bool" and out[c.name] is not None:
            out[c.name] = bool(out[c.name])
        elif c.kind == "string" and out[c.name] is not None and not isinstance(out[c.name], str):
            out[c.name] = json.dumps(out[c.name]) if isinstance(out[c.name], (dict, list)) else str(out[c.name])
    if out["stem_paths"] is None:
        out["stem_paths"] = "{}"
    extra = {
        k: _clean(v)
        for k, v in row.items()
        if k not in COLUMN_NAMES and k not in CONSUMED_INPUT and k not in ("instrument", "instruments", "instrument_source")
    }
    out["extra"] = json.dumps(extra, sort_keys=True, default=str) if extra else None
    return out
