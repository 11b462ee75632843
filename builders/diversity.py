"""The balance report: how evenly the dataset covers genres, moods, instruments, tempi, keys and modes.

For each field (``processing.config.BALANCE_FIELDS``), per split and in all: the chunks per value, their
shares, the effective number of categories (the exponential of the Shannon entropy of the shares: k for k
equally common values, near 1 when one value dominates) and the under-represented values, those whose share
is below half an even share (1 / (2 k)). They tell the user which songs to add. Mood and instrument are
lists: a chunk counts once for each of its values and the shares are shares of those labels. Tempo is cut
into bands and mode is major/minor: there the bands and modes no chunk has are under-represented too.

With sampling weights (builders/weights.py) each field also gets its weighted shares and effective number:
what a trainer that samples by weight sees. ``report.json`` holds the report under ``diversity``; the card
shows it as a table and a plot; the build summary prints ``summary_line``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from processing.config import BALANCE_FIELDS

TEMPO_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 80", 0.0, 80.0), ("80-110", 80.0, 110.0), ("110-140", 110.0, 140.0), ("> 140", 140.0, math.inf))
MODES = ("major", "minor")
CLOSED_VALUES: dict[str, tuple[str, ...]] = {"tempo": tuple(b[0] for b in TEMPO_BANDS), "mode": MODES}
UNDER_SHARE = 0.5  # a value is under-represented below this fraction of an even share
LABELS = {"genre": "genre", "mood": "mood", "instrument": "instrument", "tempo": "tempo band", "key": "key", "mode": "mode"}


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v not in (None, "")]


def tempo_band(bpm: Any) -> Optional[str]:
    if not isinstance(bpm, (int, float)) or not math.isfinite(bpm) or bpm <= 0:
        return None
    return next(name for name, lo, hi in TEMPO_BANDS if lo <= bpm < hi)


def values_of(row: dict[str, Any], name: str) -> list[str]:
    """The values of one field for one row of the published schema (or a build's chunks.parquet row)."""
    if name == "genre":
        return _list(row.get("genre") or row.get("source_genre"))
    if name == "mood":
        return _list(row.get("moods") or row.get("source_moods"))
    if name == "instrument":
        return _list(row.get("instruments") or row.get("instrument"))
    if name == "tempo":
        band = tempo_band(row.get("bpm"))
        return [band] if band else []
    key, scale = row.get("key") or "", row.get("scale") or ""
    label = key if " " in key else f"{key} {scale}".strip() if key else ""
    if name == "key":
        return [label] if label else []
    if name == "mode":
        mode = label.split(" ", 1)[1] if " " in label else scale
        return [mode.lower()] if mode else []
    raise ValueError(f"unknown balance field {name!r}; known: {', '.join(BALANCE_FIELDS)}")


def group_of(row: dict[str, Any], fields: Sequence[str]) -> tuple[Optional[str], ...]:
    """The row's value combination for balancing: the first value of each field (None when it has none)."""
    return tuple((values_of(row, f) or [None])[0] for f in fields)


def effective_number(counts: Iterable[float]) -> float:
    """exp(Shannon entropy) of the distribution given by ``counts`` (0 when there is nothing)."""
    p = np.asarray([c for c in counts if c > 0], dtype=np.float64)
    if p.size == 0:
        return 0.0
    p = p / p.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


@dataclass
class FieldBalance:
    field: str
    chunks: int  # chunks considered
    chunks_without: int  # chunks with no value for this field
    counts: dict[str, int]  # value -> chunks (most common first)
    shares: dict[str, float]  # value -> share of the labels
    categories: int  # values seen (closed fields: every band / mode)
    effective: float  # exp(entropy) of the shares
    under_represented: list[str]  # share < UNDER_SHARE / categories (closed fields: unseen values too)
    weighted_shares: Optional[dict[str, float]] = None  # shares when chunks are drawn by weight
    weighted_effective: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def field_balance(rows: Sequence[dict[str, Any]], name: str, weights: Optional[Sequence[float]] = None) -> FieldBalance:
    counts: Counter = Counter()
    weighted: Counter = Counter()
    without = 0
    for i, row in enumerate(rows):
        values = values_of(row, name)
        without += not values
        for v in values:
            counts[v] += 1
            if weights is not None:
                weighted[v] += float(weights[i])
    closed = CLOSED_VALUES.get(name)
    total = sum(counts.values())
    shares = {v: round(c / total, 6) for v, c in counts.most_common()} if total else {}
    categories = len(closed) if closed else len(counts)
    seen = {v: shares.get(v, 0.0) for v in (closed or ())} | shares
    under = ([v for v, s in seen.items() if s < UNDER_SHARE / categories] if categories >= 2 and total else [])
    wtotal = sum(weighted.values())
    return FieldBalance(
        field=name, chunks=len(rows), chunks_without=without, counts=dict(counts.most_common()), shares=shares,
        categories=categories, effective=round(effective_number(counts.values()), 4),
        under_represented=sorted(under, key=lambda v: (seen[v], v)),
        weighted_shares={v: round(weighted[v] / wtotal, 6) for v in counts} if weights is not None and wtotal else None,
        weighted_effective=round(effective_number(weighted.values()), 4) if weights is not None else None,
    )


def balance_report(rows_by_split: dict[str, list[dict[str, Any]]], weighting: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The ``diversity`` block of report.json: per split and ``all``, every field's FieldBalance.

    Rows carry their ``weight`` (builders/weights.py) when the build wrote weights.
    """
    scopes = {"all": [r for rows in rows_by_split.values() for r in rows], **rows_by_split}
    splits: dict[str, Any] = {}
    for scope, rows in scopes.items():
        weights = [r["weight"] for r in rows] if rows and all(r.get("weight") is not None for r in rows) else None
        splits[scope] = {f: field_balance(rows, f, weights).to_dict() for f in BALANCE_FIELDS}
    report = {
        "fields": list(BALANCE_FIELDS),
        "tempo_bands": [b[0] for b in TEMPO_BANDS],
        "under_represented_rule": f"share below {UNDER_SHARE:g} / (number of values)",
        "weighting": weighting or {},
        "splits": splits,
    }
    report["summary"] = summary_line(report)
    return report


def summary_line(diversity: dict[str, Any], scope: str = "all") -> str:
    """One line for the build summary: effective / seen values per field, and what to add."""
    fields = diversity.get("splits", {}).get(scope, {})
    parts = []
    for name in diversity.get("fields", []):
        f = fields.get(name)
        if not f or not f["counts"]:
            continue
        text = f"{LABELS[name]} {f['effective']:.1f}/{f['categories']}"
        if f["under_represented"]:
            text += f" (add: {', '.join(f['under_represented'][:3])}{', ...' if len(f['under_represented']) > 3 else ''})"
        parts.append(text)
    if not parts:
        return "no genre, mood, instrument, tempo or key facts to measure"
    return "effective/seen values: " + "; ".join(parts)
