"""Acoustic fingerprints (Chromaprint) to catch the same recording under two URLs or encodings.

Fingerprints come from Chromaprint's ``fpcalc`` (Debian/Ubuntu package
``libchromaprint-tools``), which decodes any format itself and resamples to
11 kHz mono, so a 22 kHz mono re-encode and a 44.1 kHz stereo original give
near-identical fingerprints. Comparing two fingerprints is hand-written here
(pyacoustid only computes and submits fingerprints; it has no compare): align
them by the most common offset of exactly equal items, then score
1 - bit error rate over the overlap. Unrelated audio scores about 0.5,
re-encodes of the same recording above 0.9.

``DuplicateIndex`` keeps an inverted index of fingerprint items, so each new
song is compared only with songs that share items with it (a 5,000-song list
costs 5,000 lookups, not 12.5 million pairwise comparisons).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

ITEM_S = 4096 / 11025 / 3  # seconds per fingerprint item (~0.124 s)


class FingerprintError(RuntimeError):
    """A fingerprint could not be computed; the message names the file and why."""


@dataclass
class Fingerprint:
    duration_s: float
    items: np.ndarray  # uint32, one per ~0.124 s of audio

    def to_dict(self) -> dict:
        return {"duration_s": self.duration_s, "items": self.items.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Fingerprint":
        return cls(float(data["duration_s"]), np.asarray(data["items"], dtype=np.uint32))


def fpcalc_exe() -> Optional[str]:
    return shutil.which("fpcalc")


def fingerprint_file(path: Path, length_s: float = 120.0) -> Fingerprint:
    """Chromaprint fingerprint of the first ``length_s`` seconds (0 = whole file)."""
    exe = fpcalc_exe()
    if exe is None:
        raise FingerprintError("fpcalc not found: install Chromaprint (apt-get install libchromaprint-tools) "
                               "or set ingest.dedup=false")
    cmd = [exe, "-raw", "-json", "-length", str(int(length_s)), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if "Empty fingerprint" in (proc.stderr or ""):  # audio shorter than Chromaprint's ~3 s window
        return Fingerprint(0.0, np.zeros(0, dtype=np.uint32))
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        detail = (proc.stderr or "").strip().splitlines()
        raise FingerprintError(f"{path}: fpcalc failed ({detail[-1] if detail else f'exit {proc.returncode}'})") from None
    items = np.asarray(data.get("fingerprint") or [], dtype=np.uint32)
    if items.size == 0:
        raise FingerprintError(f"{path}: fpcalc found no audio to fingerprint")
    return Fingerprint(float(data.get("duration") or 0.0), items)


def cached_fingerprint(path: Path, content_hash: str, cache_dir: Path, length_s: float = 120.0) -> Fingerprint:
    """fingerprint_file, kept in ``cache_dir/<hash[:2]>/<hash>.json`` so reruns skip fpcalc."""
    cache = Path(cache_dir) / content_hash[:2] / f"{content_hash}-{int(length_s)}.json"
    if cache.is_file():
        try:
            return Fingerprint.from_dict(json.loads(cache.read_text()))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    fp = fingerprint_file(path, length_s)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{threading.get_ident()}.partial")
    tmp.write_text(json.dumps(fp.to_dict()))
    tmp.replace(cache)
    return fp


def _popcount(x: np.ndarray) -> int:
    return int(np.unpackbits(x.view(np.uint8)).sum())


def _offset_votes(a: np.ndarray, b: np.ndarray) -> Counter:
    """Offsets (index in a - index in b) at which exactly equal items occur."""
    positions: dict[int, list[int]] = {}
    for i, v in enumerate(b.tolist()):
        positions.setdefault(v, []).append(i)
    votes: Counter = Counter()
    for i, v in enumerate(a.tolist()):
        for j in positions.get(v, ()):
            votes[i - j] += 1
    return votes


def similarity(a: Fingerprint, b: Fingerprint, min_overlap: int = 40) -> float:
    """1 - bit error rate at the best alignment (1.0 identical, ~0.5 unrelated)."""
    x, y = a.items, b.items
    if x.size == 0 or y.size == 0:
        return 0.0
    offsets = [o for o, _ in _offset_votes(x, y).most_common(3)] or [0]
    best = 0.0
    for off in offsets:
        xs, ys = (x[off:], y) if off >= 0 else (x, y[-off:])
        n = min(len(xs), len(ys))
        if n < min(min_overlap, len(x), len(y)) or n == 0:
            continue
        errors = _popcount(np.bitwise_xor(xs[:n], ys[:n]))
        best = max(best, 1.0 - errors / (32.0 * n))
    return best


class DuplicateIndex:
    """Songs seen so far; ``match`` returns the first kept song a new fingerprint duplicates.

    The inverted index is a few sorted numpy segments of (item value, song
    number), merged like an LSM tree (a segment is merged with the one before
    it once it is at least half its size): 8 bytes per fingerprint item, ~40 MB
    for 5,000 two-minute songs, O(log n) segments to search per query.
    """

    def __init__(self, threshold: float = 0.9, min_shared: int = 8, max_songs_per_item: int = 200) -> None:
        self.threshold = threshold
        self.min_shared = min_shared  # exactly equal items needed before a full comparison
        self.max_songs_per_item = max_songs_per_item  # items this common (silence, tones) carry no evidence
        self._ids: list[str] = []
        self._prints: list[Fingerprint] = []
        self._segments: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, song numbers)

    def _candidates(self, query: np.ndarray) -> np.ndarray:
        """Song numbers sharing items with the query, once per shared item."""
        found = [np.zeros(0, dtype=np.uint32)]
        for keys, songs in self._segments:
            lo = np.searchsorted(keys, query, side="left")
            counts = np.searchsorted(keys, query, side="right") - lo
            keep = (counts > 0) & (counts <= self.max_songs_per_item)
            lo, counts = lo[keep], counts[keep]
            if counts.size:
                starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
                found.append(songs[starts + np.arange(int(counts.sum()))])
        return np.concatenate(found)

    def match(self, fp: Fingerprint) -> Optional[tuple[str, float]]:
        if fp.items.size == 0 or not self._ids:
            return None
        shared = np.bincount(self._candidates(np.unique(fp.items)), minlength=len(self._ids))
        for number in np.flatnonzero(shared >= self.min_shared):  # ascending = first kept song first
            score = similarity(fp, self._prints[number])
            if score >= self.threshold:
                return self._ids[number], score
        return None

    def add(self, song_id: str, fp: Fingerprint) -> None:
        number = len(self._ids)
        self._ids.append(song_id)
        self._prints.append(Fingerprint(fp.duration_s, fp.items))
        if not fp.items.size:
            return
        items = np.unique(fp.items)
        self._segments.append((items, np.full(items.size, number, dtype=np.uint32)))
        while len(self._segments) > 1 and self._segments[-1][0].size * 2 >= self._segments[-2][0].size:
            (k2, s2), (k1, s1) = self._segments.pop(), self._segments.pop()
            keys, songs = np.concatenate([k1, k2]), np.concatenate([s1, s2])
            order = np.argsort(keys, kind="stable")
            self._segments.append((keys[order], songs[order]))

    def __len__(self) -> int:
        return len(self._ids)
