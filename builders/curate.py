"""Re-curate a build without recomputing: a new dataset from an existing build's rows and chunk files.

``curate(source, out, settings)`` reads the parent (a build folder, a pulled version, or an s3:// version,
pulled first), keeps the chunks the filters let through, hard-links their files (copies only across file
systems) into a staging folder beside ``out``, writes the parent's rows for them as ``chunks.parquet``, and
runs the build step (builders/dataset.py) there: every export a build writes, with new sampling weights and
the balance report. No audio is decoded, separated or analysed again, and every song keeps its parent's
split. The staging folder takes ``out``'s place only once it is complete; on any error it is removed.

Filters, in this order: ``only_split``, ``min_seconds``, ``exclude_genres``, ``max_chunks_per_song`` (the
first N chunks of a song by position). ``include_flagged`` brings back chunks the parent's analysis
excluded when every flag in their exclusion reason is one of those named. Chunks a filter removes leave
the new ``chunks.parquet``; the parent's excluded chunks stay in it, excluded.

The new build records its parent, the settings and the chain of versions before it (``curation`` in
report.json and build_info.json). Its version is ``<parent version>-c<hash>``, the hash of the parent's
version, the settings and the chunks kept: the same curation gives the same version, another a new one.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from processing.atomic import replaced_dir, write_text_atomic
from processing.cache import stable_hash
from processing.config import PipelineConfig, apply_override, config_from_dict

from .audiocraft_export import relocate
from .dataset import DatasetArtifacts, build_dataset
from .schema import SPLITS
from .source import local_build, read_json, recorded_name_version
from .splits import assign_splits
from .table import BuildFolderError, read_build, song_pins


class CurateError(ValueError):
    """The curation cannot be made; the message names the input and the reason. Nothing is written."""


@dataclass
class CurationSettings:
    min_seconds: Optional[float] = None  # keep chunks of at least this duration
    exclude_genres: list[str] = field(default_factory=list)  # drop chunks of these genres (case-insensitive)
    only_split: Optional[str] = None  # keep only this split's songs
    max_chunks_per_song: Optional[int] = None  # keep at most the first N chunks of each song
    include_flagged: list[str] = field(default_factory=list)  # bring back chunks excluded only for these flags

    def check(self) -> None:
        if self.min_seconds is not None and not self.min_seconds >= 0:
            raise CurateError(f"--min-seconds must be >= 0, got {self.min_seconds}")
        if self.only_split is not None and self.only_split not in SPLITS:
            raise CurateError(f"--only-split {self.only_split!r}: choose one of {', '.join(SPLITS)}")
        if self.max_chunks_per_song is not None and self.max_chunks_per_song < 1:
            raise CurateError(f"--max-chunks-per-song must be >= 1, got {self.max_chunks_per_song}")


@dataclass
class CurationResult:
    out: Path
    version: str
    parent: Path  # the local parent folder (pulled first for an s3:// source)
    parent_version: str
    kept: int  # chunks in the new dataset
    removed: dict[str, int]  # reason -> chunks
    re_included: int
    linked: int  # chunk files hard-linked
    copied: int  # chunk files copied (another file system)
    seconds: float
    artifacts: DatasetArtifacts


def _reasons(row: dict[str, Any]) -> set[str]:
    return {r.strip() for r in str(row.get("exclude_reason") or "").split(",") if r.strip()}


def _genre(row: dict[str, Any]) -> str:
    return str(row.get("genre") or row.get("source_genre") or "").strip().lower()


def select_rows(rows: list[dict[str, Any]], splits: dict[str, str], s: CurationSettings) -> tuple[list[int], set[int], dict[str, int]]:
    """(indices of the rows the new table keeps, those of them re-included, removed chunks per reason)."""
    removed: dict[str, int] = {}
    keep: list[int] = []
    back: set[int] = set()
    per_song: dict[str, int] = {}
    flags = set(s.include_flagged)
    genres = {g.strip().lower() for g in s.exclude_genres}
    order = sorted(range(len(rows)), key=lambda i: (str(rows[i].get("song_id")), int(rows[i].get("chunk_index") or 0)))
    for i in order:
        row = rows[i]
        if row.get("excluded"):
            reasons = _reasons(row)
            if not (flags and reasons and reasons <= flags):
                keep.append(i)  # stays in the table, excluded
                continue
            back.add(i)
        reason = None
        if s.only_split and splits.get(row["song_id"]) != s.only_split:
            reason = f"not in split {s.only_split}"
        elif s.min_seconds is not None and float(row["duration_s"]) < s.min_seconds:
            reason = f"shorter than {s.min_seconds:g} s"
        elif genres and _genre(row) in genres:
            reason = f"genre {_genre(row)}"
        elif s.max_chunks_per_song is not None and per_song.get(row["song_id"], 0) >= s.max_chunks_per_song:
            reason = f"beyond {s.max_chunks_per_song} chunks per song"
        if reason:
            removed[reason] = removed.get(reason, 0) + 1
            back.discard(i)
            continue
        per_song[row["song_id"]] = per_song.get(row["song_id"], 0) + 1
        keep.append(i)
    return sorted(keep), back, removed


def _link(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst`` (True), or copy it when they are on different file systems (False)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


def _chunk_files(row: dict[str, Any]) -> list[str]:
    return [str(row["audio_path"])] + list(json.loads(row.get("stem_paths") or "{}").values())


def _check_out(out: Path, parent: Path, version: str) -> None:
    """``out`` may be missing, empty, or hold this very curation (rerun); anything else is refused."""
    if out.resolve() == parent.resolve() or out.resolve().is_relative_to(parent.resolve()):
        raise CurateError(f"--out {out} is the build being curated or inside it: give a folder beside it")
    if not out.exists():
        return
    if not out.is_dir():
        raise CurateError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    info = read_json(out / "build_info.json")
    if not info:
        raise CurateError(f"--out {out}: holds files but no build (no build_info.json): give an empty or new folder")
    if info.get("version") != version:
        raise CurateError(f"--out {out}: already holds a different build (version {info.get('version')}); "
                          f"this curation is version {version}: give another --out or remove that folder")


def curation_config(parent: Path, overrides: list[str]) -> PipelineConfig:
    """The parent's configuration with ``section.key=value`` overrides (curate.weighting, ...), validated."""
    data = read_json(parent / "config.json")
    for item in overrides:
        apply_override(data, item)
    cfg = config_from_dict(data)
    cfg.validate()
    return cfg


def curate(source: str | Path, out: Path, settings: CurationSettings, overrides: Optional[list[str]] = None,
           endpoint_url: Optional[str] = None, pull_dest: Optional[Path] = None) -> CurationResult:
    """Write the curated build to ``out`` (see the module docstring); ConfigError / CurateError / BuildFolderError
    on bad input, with nothing written."""
    t0 = time.perf_counter()
    settings.check()
    parent = local_build(source, pull_dest, endpoint_url)
    out = Path(out)
    src = read_build(parent)
    info = read_json(parent / "build_info.json")
    if not info:
        raise BuildFolderError(f"{parent}: not a finished build: no build_info.json (run the build step: python -m builders {parent})")
    name, parent_version = recorded_name_version(parent)
    parent_version = info.get("version") or parent_version
    cfg = curation_config(parent, overrides or [])
    parent_report = src.report

    rows = src.rows
    kept_before = [r for r in rows if not r.get("excluded")]
    splits = assign_splits([r["song_id"] for r in rows], cfg.build, song_pins(rows))
    splits.update({s: v for s, v in (info.get("song_splits") or {}).items() if s in splits})
    keep, back, removed = select_rows(rows, splits, settings)
    in_dataset = [i for i in keep if not rows[i].get("excluded") or i in back]
    if not in_dataset:
        raise CurateError(f"{source}: the filters leave no chunk (of {len(kept_before)}: "
                          + ", ".join(f"{n} {why}" for why, n in removed.items()) + ")")
    if "train" not in {splits[rows[i]["song_id"]] for i in in_dataset}:
        raise CurateError(f"{source}: the filters leave no chunk in the train split, which every dataset needs "
                          f"(splits are kept per song: --only-split {settings.only_split} cannot make another split train)")
    for i in back:
        audio = parent / str(rows[i].get("audio_path") or "")
        if not audio.is_file():
            raise CurateError(f"chunk {rows[i]['chunk_id']!r}: --include-flagged needs its audio file, {audio} is missing")

    parent_curation = parent_report.get("curation") if isinstance(parent_report.get("curation"), dict) else {}
    record_settings = {**asdict(settings), **{k: v for k, v in cfg.to_dict()["curate"].items()}}
    version = f"{parent_version}-c" + stable_hash(
        parent_version, record_settings, sorted((rows[i]["chunk_id"], rows[i].get("audio_sha256")) for i in in_dataset))[:8]
    _check_out(out, parent, version)
    cfg.build.version = version

    chain = list(parent_curation.get("chain") or []) + [
        {"version": parent_version, "settings": parent_curation.get("settings")}]
    curation = {
        "parent": str(source), "parent_name": name, "parent_version": parent_version, "settings": record_settings,
        "kept": len(in_dataset), "removed": removed, "re_included": len(back), "chain": chain,
        "song_splits": {s: splits[s] for s in sorted({rows[i]["song_id"] for i in in_dataset})},
    }

    linked = copied = 0
    with replaced_dir(out) as stage:
        for i in keep:
            for rel in _chunk_files(rows[i]):
                if (parent / rel).is_file():
                    if _link(parent / rel, stage / rel):
                        linked += 1
                    else:
                        copied += 1
                elif not rows[i].get("excluded") or i in back:
                    raise CurateError(f"chunk {rows[i]['chunk_id']!r}: file {parent / rel} is missing from the parent build")
        table = pq.read_table(parent / "chunks.parquet").take(pa.array(keep, pa.int64()))
        if "weight" in table.column_names:  # the build step writes the new weights
            table = table.drop_columns(["weight"])
        if back:
            back_ids = {rows[i]["chunk_id"] for i in back}
            ids = table.column("chunk_id").to_pylist()
            for column, value in (("excluded", False), ("exclude_reason", "")):
                old = table.column(column).to_pylist()
                new = [value if cid in back_ids else v for cid, v in zip(ids, old)]
                table = table.set_column(table.column_names.index(column), column, pa.array(new, table.schema.field(column).type))
        pq.write_table(table, stage / "chunks.parquet")
        write_text_atomic(stage / "config.json", json.dumps(cfg.to_dict(), indent=2))
        report = {k: v for k, v in parent_report.items() if k not in ("diversity", "dataset", "curation")}
        report["settings"] = {**(parent_report.get("settings") or {}), "version": version}
        report["curation"] = curation
        write_text_atomic(stage / "report.json", json.dumps(report, indent=2, default=str))
        art = build_dataset(stage, cfg)
        relocate(stage, root=out)
        art = DatasetArtifacts(**_moved(vars(art), stage, out))
        report = json.loads((stage / "report.json").read_text())
        report["dataset"] = art.to_dict()
        write_text_atomic(stage / "report.json", json.dumps(report, indent=2, default=str))
    return CurationResult(out, version, parent, parent_version, len(in_dataset), removed, len(back), linked, copied,
                          time.perf_counter() - t0, art)


def _moved(values: dict[str, Any], stage: Path, out: Path) -> dict[str, Any]:
    """The artifacts' Path fields moved from the staging folder to ``out``."""
    def move(v: Any) -> Any:
        if isinstance(v, Path):
            return out / v.relative_to(stage) if v.is_relative_to(stage) else v
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        if isinstance(v, list):
            return [move(x) for x in v]
        return v

    return {k: move(v) for k, v in values.items()}
