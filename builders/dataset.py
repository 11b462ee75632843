"""The build step's entry point: a pipeline build folder -> the dataset and its exports.

Reads DIR/chunks.parquet (+ report.json, config.json), drops excluded rows,
assigns splits per song and writes:

- DIR/data/<split>-NNNNN-of-NNNNN.parquet  (audio embedded or referenced, cfg.build.embed_audio)
- DIR/egs/<split>/data.jsonl, DIR/egs/<name>.yaml, a MusicInfo .json beside each audio file (audiocraft)
- DIR/hf/  (self-contained Hugging Face folder: README.md card + data/*.parquet with embedded audio)
- DIR/dataset_card.md, DIR/plots/*.png, DIR/build_info.json
- a sampling ``weight`` per chunk (builders/weights.py) in every export and in DIR/chunks.parquet, and
  the balance report (builders/diversity.py) under ``diversity`` in DIR/report.json
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from processing.atomic import partial_path, replaced_dir, write_text_atomic
from processing.config import PipelineConfig

from . import audiocraft_export, parquet
from .card import CardInput, card_data, draw_plots, write_card
from .diversity import balance_report
from .schema import SCHEMA_VERSION, SPLITS
from .splits import assign_splits
from .table import BuildFolderError, read_build, song_pins, to_output_row
from .weights import sampling_weights, weighting_settings

KNOWN_EXPORTS = ("parquet", "audiocraft", "hf")


@dataclass
class SplitStats:
    songs: int
    chunks: int
    hours: float


@dataclass
class DatasetArtifacts:
    """What build_dataset wrote, and the numbers per split."""

    build_dir: Path
    name: str
    version: str
    schema_version: str
    splits: dict[str, SplitStats]  # train / validation (/ test)
    song_splits: dict[str, str]  # song_id -> split
    excluded_chunks: int
    data_files: dict[str, list[Path]] = field(default_factory=dict)  # split -> Parquet shards in DIR/data
    audiocraft: dict[str, Path] = field(default_factory=dict)  # split -> data.jsonl, "yaml" -> dset config
    hf_dir: Optional[Path] = None
    card: Optional[Path] = None
    plots: dict[str, Path] = field(default_factory=dict)
    build_info: Optional[Path] = None
    diversity: dict[str, Any] = field(default_factory=dict)  # the balance report (report.json's `diversity`)

    @property
    def total_chunks(self) -> int:
        return sum(s.chunks for s in self.splits.values())

    @property
    def total_hours(self) -> float:
        return sum(s.hours for s in self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        data = asdict(self)
        data.pop("diversity")  # report.json holds it once, at its top level
        return plain(data)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _linked_plots(plot_paths: dict[str, Optional[Path]], plot_dir: Path) -> dict[str, Optional[Path]]:
    """The build folder's plots linked into another card's folder: the same rows give the same plots, and drawing
    one takes ~0.25 s (matplotlib)."""
    linked: dict[str, Optional[Path]] = {}
    for name, path in plot_paths.items():
        linked[name] = None if path is None else plot_dir / path.name
        if path is not None:
            _link_or_copy(path, plot_dir / path.name)
    return linked


def write_weight_column(path: Path, weights: dict[str, float]) -> None:
    """Set chunks.parquet's ``weight`` column (null for chunks not in the dataset), written aside and renamed."""
    table = pq.read_table(path)
    column = pa.array([weights.get(c) for c in table.column("chunk_id").to_pylist()], pa.float64())
    if "weight" in table.column_names:
        if table.column("weight").combine_chunks().equals(column):
            return
        table = table.set_column(table.column_names.index("weight"), "weight", column)
    else:
        table = table.append_column("weight", column)
    tmp = partial_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _update_report(path: Path, **values: Any) -> None:
    """Set top-level keys of report.json (kept whole: written aside and renamed)."""
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update(values)
    write_text_atomic(path, json.dumps(report, indent=2, default=str))


def build_dataset(build_dir: Path, cfg: PipelineConfig, song_splits: Optional[dict[str, str]] = None) -> DatasetArtifacts:
    """Build the dataset in `build_dir` (see the module docstring) and return what was written.

    song_splits: song_id -> split for the songs whose split is already decided (a curation keeps its
    parent's; by default those report.json's ``curation`` records); other songs follow builders/splits.py.
    """
    build_dir = Path(build_dir)
    bcfg = cfg.build
    unknown = [e for e in bcfg.exports if e not in KNOWN_EXPORTS]
    if unknown:
        raise ValueError(f"build.exports: unknown export(s) {', '.join(unknown)}; known: {', '.join(KNOWN_EXPORTS)}")
    if bcfg.shard_max_mb <= 0:
        raise ValueError(f"build.shard_max_mb must be > 0, got {bcfg.shard_max_mb}")
    src = read_build(build_dir)
    kept = src.kept
    if not kept:
        raise BuildFolderError(f"{build_dir / 'chunks.parquet'}: no chunk left after exclusions ({len(src.excluded)} excluded)")
    rates = {int(r["sample_rate"]) for r in kept}
    if len(rates) != 1:
        raise BuildFolderError(f"{build_dir}: chunks have different sample rates {sorted(rates)}; one dataset needs one rate")
    sample_rate = rates.pop()
    channels = max(int(r["channels"]) for r in kept)

    curation = src.report.get("curation") if isinstance(src.report.get("curation"), dict) else None
    fixed = dict(song_splits if song_splits is not None else (curation or {}).get("song_splits") or {})
    song_splits = assign_splits([r["song_id"] for r in kept], bcfg, song_pins(kept))
    song_splits.update({s: fixed[s] for s in song_splits if s in fixed})
    # only splits with songs get files (an empty Parquet split breaks `datasets`' reader);
    # train is never empty (see builders/splits.py), validation may be with a single song
    present = [s for s in SPLITS if s in song_splits.values()]
    kept.sort(key=lambda r: (r["song_id"], int(r["chunk_index"])))
    audio_paths = {r["chunk_id"]: str(r["audio_path"]) for r in kept}
    rows_by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in present}
    for r in kept:
        split = song_splits[r["song_id"]]
        rows_by_split[split].append(to_output_row(r, split, audio=None))
    for rows in rows_by_split.values():
        for row, weight in zip(rows, sampling_weights(rows, cfg.curate)):
            row["weight"] = weight
    weighting = weighting_settings(cfg.curate)

    # the pipeline records the version it chose (date + content hash) in report.json
    settings = src.report.get("settings") if isinstance(src.report.get("settings"), dict) else {}
    version = bcfg.version or settings.get("version") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y.%m.%d")
    art = DatasetArtifacts(
        build_dir=build_dir,
        name=bcfg.name,
        version=version,
        schema_version=SCHEMA_VERSION,
        splits={"train": SplitStats(0, 0, 0.0), "validation": SplitStats(0, 0, 0.0)} | {
            s: SplitStats(len({r["song_id"] for r in rows}), len(rows), sum(r["duration_s"] for r in rows) / 3600.0)
            for s, rows in rows_by_split.items()
        },
        song_splits=song_splits,
        excluded_chunks=len(src.excluded),
        diversity=balance_report(rows_by_split, weighting),
    )

    def size_embedded(row: dict[str, Any]) -> int:
        return (build_dir / audio_paths[row["chunk_id"]]).stat().st_size

    def write_parquet(out: Path, embed: bool) -> dict[str, list[Path]]:
        files = {}
        for split, rows in rows_by_split.items():
            files[split] = parquet.write_split(
                rows, out, split, sample_rate, bcfg.shard_max_mb,
                audio_for=lambda r: parquet.audio_entry(build_dir, audio_paths[r["chunk_id"]], embed),
                size_of=size_embedded if embed else (lambda r: 0), channels=channels,
            )
        return files

    for stale in (build_dir / "data").glob("*-of-*.parquet"):  # splits of an earlier build
        stale.unlink()
    if (build_dir / "egs").is_dir():
        shutil.rmtree(build_dir / "egs")
    if "parquet" in bcfg.exports:
        art.data_files = write_parquet(build_dir / "data", bcfg.embed_audio)
    if "audiocraft" in bcfg.exports:
        art.audiocraft = audiocraft_export.write_audiocraft(
            build_dir, rows_by_split, audio_paths, sample_rate, channels, bcfg.name
        )

    card_in = CardInput(
        name=bcfg.name, version=version, rows_by_split=rows_by_split, excluded=src.excluded,
        config=src.config or cfg.to_dict(), report=src.report, embed_audio=bcfg.embed_audio,
        splits_present=tuple(present), diversity=art.diversity, curation=curation,
    )
    plot_paths = draw_plots(card_in, build_dir / "plots")
    art.card = write_card(card_in, build_dir / "dataset_card.md", plot_paths)
    art.plots = {p.stem: p for p in sorted((build_dir / "plots").glob("*.png"))}

    if "hf" in bcfg.exports:
        hf = build_dir / "hf"
        with replaced_dir(hf) as staging:  # the previous folder stays whole until this one is
            if bcfg.embed_audio and art.data_files:  # the same self-contained shards: share them
                for files in art.data_files.values():
                    for f in files:
                        _link_or_copy(f, staging / "data" / f.name)
            else:
                write_parquet(staging / "data", True)
            card_in.embed_audio = True
            write_card(card_in, staging / "README.md", _linked_plots(plot_paths, staging / "plots"))
        art.hf_dir = hf

    info = card_data(card_in)
    info.update(
        sample_rate=sample_rate, channels=channels, embed_audio=bcfg.embed_audio,
        excluded_chunks=len(src.excluded), song_splits=song_splits,
        data_files={s: [str(p.relative_to(build_dir)) for p in ps] for s, ps in art.data_files.items()},
        weighting=weighting, balance=art.diversity["summary"],
    )
    if curation:
        # where the parent was read from (a path, a URI) stays in report.json: the same curation of the same
        # version must give the same published files wherever it ran
        info["curation"] = {k: v for k, v in curation.items() if k not in ("song_splits", "parent")}
    write_weight_column(build_dir / "chunks.parquet", {r["chunk_id"]: r["weight"] for rows in rows_by_split.values() for r in rows})
    _update_report(build_dir / "report.json", diversity=art.diversity)
    art.build_info = build_dir / "build_info.json"
    write_text_atomic(art.build_info, json.dumps(info, indent=1, sort_keys=True) + "\n")
    return art
