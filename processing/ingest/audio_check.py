"""Check that a file is complete, decodable audio before it enters the pipeline.

Header readers (soundfile) happily report a cut-off Ogg file as a shorter,
valid song, so completeness is checked per container: Ogg streams must end
with an end-of-stream page that fills the file exactly (hand-parsed: no
library exposes the EOS flag); WAV/FLAC/AIFF must decode as many frames as
their header declares, and so must an MP3 whose Xing/Info/VBRI header states
its length (without one an MP3 has no declared length to compare with);
an MP4/M4A must hold every byte its top-level boxes declare, and its index ('moov'); anything else is
decoded in full by ffmpeg and any decode error counts.

What libsndfile decodes is also scanned, block by block, for samples no
stage can use: NaN or infinity (a broken float WAV) and digital silence
(every sample exactly 0). ``check_audio_head`` also keeps the mono mix of the
first seconds that scan decoded, for the fingerprint: one decode per song
instead of two.
"""
from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from .. import audio_io
from .failures import IngestFailure


def _ogg_complete(path: Path) -> bool:
    """True when the last Ogg page carries the end-of-stream flag and ends exactly at the end of the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 70000))  # an Ogg page is at most 65,307 bytes
        tail = fh.read()
    base = size - len(tail)
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        if len(tail) - pos >= 27 and tail[pos + 4] == 0:
            flags = tail[pos + 5]
            nseg = tail[pos + 26]
            if len(tail) - pos >= 27 + nseg:
                body = sum(tail[pos + 27: pos + 27 + nseg])
                end = base + pos + 27 + nseg + body
                return end == size and bool(flags & 0x04)
        pos = tail.rfind(b"OggS", 0, pos)
    return False


def _is_ogg(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"OggS"


@dataclass
class _Scan:
    frames: int = 0  # frames decoded before the end or the first error
    peak: float = 0.0  # largest finite |sample|
    first_bad_frame: Optional[int] = None  # first frame holding NaN or infinity
    error: Optional[str] = None  # libsndfile's message when decoding stopped early
    head: list = field(default_factory=list)  # mono float32 blocks of the first `head_frames` frames


def _scan(path: Path, head_frames: int = 0) -> _Scan:
    """Decode the whole file with libsndfile in blocks: frame count, peak, first non-finite frame; and the mono mix
    (the channels' mean) of its first ``head_frames`` frames."""
    scan = _Scan()
    try:
        with sf.SoundFile(str(path)) as fh:
            # read() until empty, not blocks(): blocks() trusts the header's frame count and pads
            # a cut-off MP3 to it, hiding the truncation
            while len(block := fh.read(1 << 16, dtype="float32", always_2d=True)):
                if scan.frames < head_frames:
                    scan.head.append(block[: head_frames - scan.frames].mean(axis=1))
                finite = np.isfinite(block)
                if scan.first_bad_frame is None and not finite.all():
                    scan.first_bad_frame = scan.frames + int(np.argmin(finite.all(axis=1)))
                if block.size:
                    scan.peak = max(scan.peak, float(np.abs(np.where(finite, block, 0.0)).max()))
                scan.frames += len(block)
    except (sf.LibsndfileError, RuntimeError) as exc:
        scan.error = str(exc)
    return scan


def _mp3_declares_length(path: Path) -> bool:
    """True when the first MPEG frame carries a Xing/Info (LAME) or VBRI header, i.e. an exact length."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        start = 0
        if len(head) == 10 and head[:3] == b"ID3":  # skip an ID3v2 tag (syncsafe size)
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        fh.seek(start)
        frame = fh.read(4096)
    sync = next((i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    first = frame[sync: sync + 200]  # Xing/Info sits after the side info (<= 36 bytes), VBRI at 36
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _mp4_cut(path: Path) -> Optional[str]:
    """How an MP4/M4A (ISO base media: an 'ftyp' box first) was cut off, or None when it is whole or not an MP4.

    Its top-level boxes (4-byte big-endian size, 4-byte type; size 1: a 64-bit size follows; 0: to the end)
    must tile the file exactly, and one of them must be the 'moov' index, which encoders write last unless
    the file is made for streaming: a download cut short loses it, and ffmpeg then calls the file not audio.
    """
    size = path.stat().st_size
    kinds = []
    with open(path, "rb") as fh:
        if fh.read(8)[4:8] != b"ftyp":
            return None
        pos = 0
        while pos < size:
            fh.seek(pos)
            header = fh.read(16)
            if len(header) < 8:
                return f"a box header is cut at byte {pos} of {size}"
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:
                if len(header) < 16:
                    return f"a box header is cut at byte {pos} of {size}"
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:
                length = size - pos
            name = kind.decode("latin-1")
            if length < 8:
                return None  # not a box: a broken file, for the decoder to name
            if pos + length > size:
                return f"its '{name}' box declares {length} bytes from byte {pos}, the file ends {size - pos} bytes after it"
            kinds.append(name)
            pos += length
    return None if "moov" in kinds else f"it has no 'moov' box (the index an encoder writes at the end; boxes: {', '.join(kinds)})"


def _check_samples(path: Path, scan: _Scan, rate: int) -> None:
    if scan.first_bad_frame is not None:
        raise IngestFailure("corrupt", f"{path}: samples are NaN or infinite (first at "
                                       f"{scan.first_bad_frame / rate:.2f} s): a broken float file")
    if scan.error is None and scan.frames and scan.peak == 0.0:
        raise IngestFailure("silent", f"{path}: digital silence: every sample of its "
                                      f"{scan.frames / rate:.1f} s is 0")


def _riff_data_declared(path: Path) -> int | None:
    """Bytes the WAV 'data' chunk declares (None if not a plain RIFF/WAVE)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return csize if csize not in (0, 0xFFFFFFFF) else None
            fh.seek(csize + (csize & 1), 1)


def check_audio(path: Path) -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) of a complete audio file, or IngestFailure naming what is wrong."""
    return check_audio_head(path, 0.0)[0]


@dataclass(frozen=True)
class Head:
    """The mono mix (float32, the channels' mean) of a file's first seconds, as ``fingerprint._read_mono`` reads it:
    ``rate`` and ``duration_s`` (the whole file's, from its header) as libsndfile reports them."""

    mono: np.ndarray
    rate: int
    duration_s: float


def check_audio_head(path: Path, head_s: float) -> tuple[tuple[float, int, int], Optional[Head]]:
    """``check_audio``, and the first ``head_s`` seconds of the file as its check decoded them, when it did (the
    formats libsndfile reads, decoded in full to find a truncation); else None. Its fingerprint then needs no
    second decode."""
    path = Path(path)
    if not path.is_file():
        raise IngestFailure("missing", f"{path}: no such file")
    if path.stat().st_size == 0:
        raise IngestFailure("empty", f"{path}: file is empty")
    cut = _mp4_cut(path)
    if cut is not None:
        raise IngestFailure("truncated", f"{path}: truncated MP4/M4A: {cut} (the download or copy was cut off)")
    try:
        duration, rate, channels = audio_io.info(path)
    except audio_io.AudioDecodeError as exc:
        raise IngestFailure("not_audio", f"not an audio file: {exc}") from None
    if duration <= 0:
        raise IngestFailure("not_audio", f"{path}: contains no audio samples")
    try:
        meta = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        meta = None
    head_frames = min(meta.frames, int(round(head_s * meta.samplerate))) if meta is not None and head_s > 0 else 0

    def head(scan: _Scan) -> Optional[Head]:
        if not head_frames:
            return None
        mono = np.concatenate(scan.head) if scan.head else np.zeros(0, np.float32)
        sr = int(meta.samplerate)
        return Head(np.ascontiguousarray(mono, dtype=np.float32), sr, meta.frames / float(sr))

    if _is_ogg(path):
        if not _ogg_complete(path):
            raise IngestFailure("truncated", f"{path}: truncated Ogg stream (no end-of-stream page; "
                                             f"the download or copy was cut off after {duration:.1f} s)")
        if meta is not None:
            scan = _scan(path, head_frames)
            if scan.error is not None:
                raise IngestFailure("corrupt", f"{path}: decoding failed at {scan.frames / rate:.1f} s ({scan.error})")
            _check_samples(path, scan, rate)
            return (duration, rate, channels), head(scan)
        return (duration, rate, channels), None
    if meta is not None and meta.format in ("WAV", "FLAC", "AIFF", "WAVEX", "W64", "MPEG", "MP3"):
        declared: Optional[int] = meta.frames
        if meta.format in ("WAV", "WAVEX"):
            riff = _riff_data_declared(path)
            if riff is not None:
                frame_bytes = meta.channels * _bytes_per_sample(meta.subtype)
                declared = max(meta.frames, riff // frame_bytes)
        elif meta.format in ("MPEG", "MP3") and not _mp3_declares_length(path):
            declared = None  # a bare MP3 stream: its length is whatever decodes
        scan = _scan(path, head_frames)
        slack = 2 * 1152 if meta.format in ("MPEG", "MP3") else 0  # encoder delay/padding: at most a frame or two
        if declared is not None and scan.frames + slack < declared:
            cause = f"; decoder: {scan.error}" if scan.error else ""
            raise IngestFailure("truncated", f"{path}: truncated: header declares {declared / rate:.1f} s, "
                                             f"only {scan.frames / rate:.1f} s present{cause}")
        if scan.error is not None:
            raise IngestFailure("corrupt", f"{path}: decoding failed at {scan.frames / rate:.1f} s ({scan.error})")
        _check_samples(path, scan, rate)
        return (duration, rate, channels), head(scan)
    cmd = [audio_io.ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-map", "0:a:0", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    errors = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
    if proc.returncode != 0 or errors:
        detail = errors[-1] if errors else f"ffmpeg exit code {proc.returncode}"
        raise IngestFailure("corrupt", f"{path}: corrupt or truncated audio ({detail})")
    return (duration, rate, channels), None


def _bytes_per_sample(subtype: str) -> int:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype, 2)
