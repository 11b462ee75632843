"""Assign every SONG (never a chunk) to train, validation or test.

Rule (documented in the dataset card and the README):

1. A song pinned by the user (``split_pin``) goes to that split.
2. Every other song gets a score u = sha256("<salt>:<song_id>") mapped to
   [0, 1). u < validation_ratio -> validation; u < validation_ratio +
   test_ratio -> test; otherwise train. The score depends on nothing but the
   song id and the salt, so adding or removing songs never moves another song.
3. Small-set guarantee: if no song lands in validation (validation_ratio > 0
   and >= 2 unpinned songs), the unpinned train song with the lowest score is
   moved there; if no song lands in train (>= 1 unpinned song), the unpinned
   non-train song with the highest score is moved to train. This is
   the only case where an existing song can move when songs are added: the
   promoted song returns to train once another song scores into validation.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, Optional

from processing.config import BuildConfig

from .schema import SPLITS


class SplitError(ValueError):
    """A split pin or ratio cannot work; the message names the song."""


def song_score(song_id: str, salt: str) -> float:
    """Deterministic number in [0, 1) from the song id and the salt."""
    digest = hashlib.sha256(f"{salt}:{song_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(song_ids: Iterable[str], cfg: BuildConfig, pins: Optional[Mapping[str, Optional[str]]] = None) -> dict[str, str]:
    """Map each song id to "train", "validation" or "test" (see the module's rule)."""
    pins = dict(pins or {})
    ids = sorted(set(song_ids))
    val_ratio, test_ratio = float(cfg.validation_ratio), float(cfg.test_ratio)
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 - val_ratio):
        raise SplitError(f"validation_ratio={val_ratio} and test_ratio={test_ratio} must be >= 0 and sum to < 1")
    out: dict[str, str] = {}
    free: list[str] = []
    for sid in ids:
        pin = pins.get(sid)
        if pin:
            if pin not in SPLITS:
                raise SplitError(f"song {sid!r}: split_pin {pin!r} is not one of {', '.join(SPLITS)}")
            out[sid] = pin
            continue
        u = song_score(sid, cfg.split_salt)
        out[sid] = "validation" if u < val_ratio else "test" if u < val_ratio + test_ratio else "train"
        free.append(sid)

    by_score = sorted(free, key=lambda s: song_score(s, cfg.split_salt))
    if val_ratio > 0 and len(free) >= 2 and "validation" not in out.values():
        candidates = [s for s in by_score if out[s] == "train"]
        if candidates:
            out[candidates[0]] = "validation"
    if free and "train" not in out.values():
        out[by_score[-1]] = "train"
    return out
