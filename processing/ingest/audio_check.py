"""Check that a file is complete, decodable audio before it enters the pipeline.

Header readers (soundfile) happily report a cut-off Ogg file as a shorter,
valid song, so completeness is checked per container: Ogg streams must end
with an end-of-stream page that fills the file exactly (hand-parsed: no
library exposes the EOS flag); WAV/FLAC/AIFF must decode as many frames as
their header declares; anything else is decoded in full by ffmpeg and any
decode error counts.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

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


def _frames_decodable(path: Path) -> int:
    count = 0
    with sf.SoundFile(str(path)) as fh:
        for block in fh.blocks(blocksize=1 << 16, dtype="float32"):
            count += len(block)
    return count


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
    path = Path(path)
    if not path.is_file():
        raise IngestFailure("missing", f"{path}: no such file")
    if path.stat().st_size == 0:
        raise IngestFailure("empty", f"{path}: file is empty")
    try:
        duration, rate, channels = audio_io.info(path)
    except audio_io.AudioDecodeError as exc:
        raise IngestFailure("not_audio", f"not an audio file: {exc}") from None
    if duration <= 0:
        raise IngestFailure("not_audio", f"{path}: contains no audio samples")
    if _is_ogg(path):
        if not _ogg_complete(path):
            raise IngestFailure("truncated", f"{path}: truncated Ogg stream (no end-of-stream page; "
                                             f"the download or copy was cut off after {duration:.1f} s)")
        return duration, rate, channels
    try:
        meta = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        meta = None
    if meta is not None and meta.format in ("WAV", "FLAC", "AIFF", "WAVEX", "W64"):
        declared = meta.frames
        riff = _riff_data_declared(path) if meta.format in ("WAV", "WAVEX") else None
        if riff is not None:
            frame_bytes = meta.channels * _bytes_per_sample(meta.subtype)
            declared = max(declared, riff // frame_bytes)
        try:
            got = _frames_decodable(path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise IngestFailure("corrupt", f"{path}: decoding failed after part of the file ({exc})") from None
        if got < declared:
            raise IngestFailure("truncated", f"{path}: truncated: header declares {declared / rate:.1f} s, "
                                             f"only {got / rate:.1f} s present")
        return duration, rate, channels
    cmd = [audio_io.ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-map", "0:a:0", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    errors = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
    if proc.returncode != 0 or errors:
        detail = errors[-1] if errors else f"ffmpeg exit code {proc.returncode}"
        raise IngestFailure("corrupt", f"{path}: corrupt or truncated audio ({detail})")
    return duration, rate, channels


def _bytes_per_sample(subtype: str) -> int:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype, 2)
