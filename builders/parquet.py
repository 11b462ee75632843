"""Write rows of the published schema as sharded Parquet: <split>-NNNNN-of-NNNNN.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .schema import arrow_schema

ROW_OVERHEAD_BYTES = 2048  # metadata of one row, roughly
ROW_GROUP_MAX_ROWS = 64  # small row groups keep random access to embedded audio rows cheap ...
REF_ROW_GROUP_MAX_ROWS = 4096  # rows without audio bytes are small
ROW_GROUP_MAX_BYTES = 16 * 1024 * 1024  # ... and bound the memory one write needs


def audio_entry(build_dir: Path, audio_path: str, embed: bool) -> dict[str, Any]:
    """The audio cell: file bytes + file name (embedded) or the path relative to the build folder."""
    if embed:
        return {"bytes": (Path(build_dir) / audio_path).read_bytes(), "path": Path(audio_path).name}
    return {"bytes": None, "path": audio_path}


def plan_shards(sizes: list[int], max_bytes: int) -> list[tuple[int, int]]:
    """Cut rows (given their estimated sizes) into consecutive [start, end) shards of <= max_bytes.

    A single row larger than the limit gets a shard of its own.
    """
    shards: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > max_bytes:
            shards.append((start, i))
            start, total = i, 0
        total += size
    if sizes:
        shards.append((start, len(sizes)))
    return shards


def write_split(
    rows: list[dict[str, Any]],
    out_dir: Path,
    split: str,
    sample_rate: int,
    shard_max_mb: float,
    audio_for: Callable[[dict[str, Any]], dict[str, Any]],
    size_of: Callable[[dict[str, Any]], int],
    channels: int = 1,
) -> list[Path]:
    """Write one split's rows (their `audio` cell filled by `audio_for`) and return the shard paths.

    The caller writes no empty split: `datasets` cannot read a Parquet file without rows.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{split}-*-of-*.parquet"):
        old.unlink()
    schema = arrow_schema(sample_rate, channels)
    max_bytes = max(1, int(shard_max_mb * 1024 * 1024))
    sizes = [size_of(r) + ROW_OVERHEAD_BYTES for r in rows]
    if not rows:
        raise ValueError(f"split {split!r} has no rows: an empty split is not written")
    plan = plan_shards(sizes, max_bytes)
    paths = []
    for n, (start, end) in enumerate(plan):
        path = out_dir / f"{split}-{n:05d}-of-{len(plan):05d}.parquet"
        tmp = path.with_name(f".{path.name}.partial")
        groups = [(start + a, start + b) for a, b in plan_shards(sizes[start:end], ROW_GROUP_MAX_BYTES)]
        # one row group in memory at a time: memory stays bounded whatever the shard size
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for g_start, g_end in groups:
                step = ROW_GROUP_MAX_ROWS if max(sizes[g_start:g_end]) > ROW_OVERHEAD_BYTES else REF_ROW_GROUP_MAX_ROWS
                for g in range(g_start, g_end, step):
                    batch = [dict(r, audio=audio_for(r)) for r in rows[g:min(g_end, g + step)]]
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        tmp.replace(path)
        paths.append(path)
    return paths


def read_split(paths: list[Path], columns: Optional[list[str]] = None) -> pa.Table:
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])
