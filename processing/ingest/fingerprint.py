"""Acoustic fingerprints (Chromaprint) to catch the same recording under two URLs or encodings.

Fingerprints come from essentia's ``Chromaprinter``: the Chromaprint library
(the one ``fpcalc`` wraps, default algorithm) compiled into the essentia wheel
we already depend on, so no system package, no binary download and no root.
It returns Chromaprint's compressed fingerprint, the string ``fpcalc`` prints
without ``-raw``; ``decode_fingerprint`` turns it into the raw uint32 items
(what ``fpcalc -raw`` prints). Audio is decoded here (soundfile, or ffmpeg
for other formats), averaged to mono and fed at its own rate; Chromaprint
resamples to 11 kHz itself, so a 22 kHz mono re-encode and a 44.1 kHz stereo
original give near-identical fingerprints.

Comparing two fingerprints is hand-written here (pyacoustid only computes and
submits fingerprints; it has no compare): align them by the most common offset
of exactly equal items, then score 1 - bit error rate over the overlap.
Unrelated audio scores about 0.5, re-encodes of the same recording above 0.9.

``DuplicateIndex`` keeps an inverted index of fingerprint items, so each new
song is compared only with songs that share items with it (a 5,000-song list
costs 5,000 lookups, not 12.5 million pairwise comparisons).
"""
from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import soundfile as sf

from .. import audio_io

if TYPE_CHECKING:
    from .audio_check import Head

ITEM_S = 4096 / 11025 / 3  # seconds per fingerprint item (~0.124 s)
LENGTH_S = 120.0  # seconds fingerprinted from a song's start (fpcalc's default)
_MAX_NORMAL = 7  # Chromaprint's compression: a 3-bit value of 7 means "7 + the next 5-bit exception"


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


def _chromaprinter(rate: float, length_s: float):
    """essentia's Chromaprinter (without ``essentia.standard``: ``essentia_algorithms``), or None when essentia or
    its Chromaprint is missing. A new one per call: ingest fingerprints on several threads, and an essentia
    algorithm is not thread-safe."""
    try:
        from ..essentia_algorithms import algorithm

        return algorithm("Chromaprinter", sampleRate=float(rate), maxLength=float(length_s))
    except ImportError:
        return None
    except ValueError as exc:  # an essentia built without Chromaprint: "Identifier ... not found in registry"
        if "not found in registry" in str(exc):
            return None
        raise


def chromaprint_available() -> bool:
    """True when essentia is installed (a declared dependency), found without importing it (a rerun whose
    fingerprints are all cached never needs it). (A build of essentia without Chromaprint is caught at the first
    fingerprint computed, which then fails with that reason.)"""
    import importlib.util

    return importlib.util.find_spec("essentia") is not None


def _unpack(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` ``bits``-bit values packed little-endian (least significant bit first) in ``data``."""
    flat = np.unpackbits(data, bitorder="little")[: count * bits]
    return flat.reshape(-1, bits).astype(np.int64) @ (1 << np.arange(bits, dtype=np.int64))


def decode_fingerprint(compressed: str) -> tuple[int, np.ndarray]:
    """Chromaprint's compressed fingerprint (URL-safe base64) -> (algorithm, raw uint32 items).

    Hand-written because the only decoder is libchromaprint's C API (pyacoustid
    loads it from a system package). The format (Chromaprint's
    fingerprint_compressor.cpp): byte 0 the algorithm, bytes 1-3 the item
    count (big endian); then 3-bit values, one per set bit of each item XOR
    the previous item (the distance from the previous set bit, 1-based), 0
    ending the item, 7 meaning 7 plus the next 5-bit exception; the 5-bit
    exceptions follow from the next byte boundary.
    """
    try:
        raw = base64.urlsafe_b64decode(compressed + "=" * (-len(compressed) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a Chromaprint fingerprint (bad base64: {exc})") from None
    if len(raw) < 4:
        raise ValueError(f"not a Chromaprint fingerprint ({len(raw)} bytes, the header alone takes 4)")
    algorithm, size = raw[0], int.from_bytes(raw[1:4], "big")
    body = np.frombuffer(raw, dtype=np.uint8, offset=4)
    if size == 0:
        return algorithm, np.zeros(0, dtype=np.uint32)
    normal = _unpack(body, 3, body.size * 8 // 3)
    ends = np.flatnonzero(normal == 0)
    if ends.size < size:
        raise ValueError(f"truncated Chromaprint fingerprint: {ends.size} of {size} items present")
    ends = ends[:size]
    normal = normal[: ends[-1] + 1]
    big = np.flatnonzero(normal == _MAX_NORMAL)
    if big.size:
        exceptions = body[(normal.size * 3 + 7) // 8:]
        if exceptions.size * 8 < big.size * 5:
            raise ValueError(f"truncated Chromaprint fingerprint: {big.size} exceptions announced, "
                             f"{exceptions.size * 8 // 5} present")
        normal[big] += _unpack(exceptions, 5, big.size)
    item = np.concatenate([[0], np.cumsum(normal == 0)[:-1]])  # which item each value belongs to
    total = np.cumsum(normal)
    bit = total - np.concatenate([[0], total[ends[:-1]]])[item]  # 1-based bit position inside its item
    is_bit = normal != 0
    if is_bit.any() and bit[is_bit].max() > 32:
        raise ValueError("corrupt Chromaprint fingerprint: a bit position beyond 32")
    changes = np.zeros(size, dtype=np.uint64)
    np.add.at(changes, item[is_bit], np.left_shift(np.uint64(1), (bit[is_bit] - 1).astype(np.uint64)))
    return algorithm, np.bitwise_xor.accumulate(changes.astype(np.uint32))


def _read_mono(path: Path, length_s: float) -> tuple[np.ndarray, int, float]:
    """(mono float32 of the first ``length_s`` seconds (0 = all), rate, duration of the whole file)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            rate, total = fh.samplerate, fh.frames
            frames = min(total, int(round(length_s * rate))) if length_s > 0 else total
            data = fh.read(frames, dtype="float32", always_2d=True)
        duration = total / float(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError):  # a format libsndfile lacks: ffmpeg decodes it
        try:  # into a temporary file, of which only the first length_s seconds are read (a long song is not held)
            with audio_io.open_stream(path) as stream:
                rate, total = stream.sample_rate, stream.frames
                frames = min(total, int(round(length_s * rate))) if length_s > 0 else total
                blocks, got = [], 0
                for block in stream.blocks():
                    blocks.append(block[: frames - got])
                    got += len(blocks[-1])
                    if got >= frames:
                        break
                data = np.concatenate(blocks) if blocks else np.zeros((0, stream.channels), np.float32)
        except audio_io.AudioDecodeError as exc:
            raise FingerprintError(str(exc)) from None
        duration = total / float(rate)
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate), duration


def fingerprint_file(path: Path, length_s: float = LENGTH_S, head: Optional["Head"] = None) -> Fingerprint:
    """Chromaprint fingerprint of the first ``length_s`` seconds (0 = whole file); from ``head`` (those seconds as
    ``audio_check.check_audio_head`` decoded them) when given, without reading the file again."""
    if head is not None:
        mono, rate, duration = head.mono, head.rate, head.duration_s
    else:
        mono, rate, duration = _read_mono(Path(path), length_s)
    try:
        chromaprinter = _chromaprinter(rate, length_s)
    except (RuntimeError, ValueError) as exc:
        raise FingerprintError(f"{path}: Chromaprint failed ({exc})") from None
    if chromaprinter is None:
        raise FingerprintError("essentia's Chromaprinter is not available: pip install essentia "
                               "(a dependency of this project) or set ingest.dedup=false")
    if mono.size == 0:
        raise FingerprintError(f"{path}: no audio to fingerprint")
    try:
        compressed = chromaprinter(mono)
        _, items = decode_fingerprint(compressed)
    except (RuntimeError, ValueError) as exc:
        raise FingerprintError(f"{path}: Chromaprint failed ({exc})") from None
    # audio shorter than Chromaprint's ~3 s window gives no items: nothing to compare, as fpcalc's "Empty fingerprint"
    return Fingerprint(duration if items.size else 0.0, items)


def cached_fingerprint(path: Path, content_hash: str, cache_dir: Path, length_s: float = LENGTH_S,
                       head: Optional["Head"] = None) -> Fingerprint:
    """fingerprint_file (from ``head`` when given), kept in ``cache_dir/<hash[:2]>/<hash>-<length>.json`` so reruns
    skip decoding."""
    cache = Path(cache_dir) / content_hash[:2] / f"{content_hash}-{int(length_s)}.json"
    if cache.is_file():
        try:
            return Fingerprint.from_dict(json.loads(cache.read_text()))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    fp = fingerprint_file(path, length_s, head)
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
