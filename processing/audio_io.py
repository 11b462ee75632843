"""Decode any common audio format to float32 and write audio files.

soundfile (libsndfile) reads wav/flac/ogg/mp3 itself; everything else (m4a,
opus, aac, webm, ...) goes through an ffmpeg binary: the system's if there is
one, otherwise the one the ``imageio-ffmpeg`` wheel ships.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import soundfile as sf

from .types import AudioData


class AudioDecodeError(RuntimeError):
    """A file could not be decoded as audio; the message names the file and why."""


def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: $MUSIC_MIXER_FFMPEG, the system's, or imageio-ffmpeg's."""
    explicit = os.environ.get("MUSIC_MIXER_FFMPEG")
    if explicit:
        return explicit
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise AudioDecodeError("no ffmpeg found: install ffmpeg or `pip install imageio-ffmpeg`") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _read_with_soundfile(path: Path) -> Optional[AudioData]:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    return AudioData(np.ascontiguousarray(data.T), int(rate))


def _ffmpeg_to_wav(path: Path, out: Path) -> Path:
    """Decode ``path`` with ffmpeg into a float32 WAV file ``out``."""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(path), "-vn", "-map", "0:a:0", "-c:a", "pcm_f32le", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        detail = (proc.stderr or "").strip().splitlines()
        reason = detail[-1] if detail else f"ffmpeg exit code {proc.returncode}"
        raise AudioDecodeError(f"{path}: not decodable as audio ({reason})")
    return out


def _read_with_ffmpeg(path: Path) -> AudioData:
    with tempfile.TemporaryDirectory(prefix="mm-decode-") as tmp:
        out = _ffmpeg_to_wav(path, Path(tmp) / "decoded.wav")
        decoded = _read_with_soundfile(out)
        if decoded is None:
            raise AudioDecodeError(f"{path}: ffmpeg produced no readable audio")
        return decoded


def decode(path: Path) -> AudioData:
    """Decode an audio file at its own rate and channel count.

    Raises AudioDecodeError (naming the file and the reason) for missing,
    empty, truncated-to-nothing or non-audio files.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty")
    audio = _read_with_soundfile(path) or _read_with_ffmpeg(path)
    if audio.num_frames == 0:
        raise AudioDecodeError(f"{path}: contains no audio samples")
    if not np.isfinite(audio.samples).all():
        raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
    return audio


BLOCK_FRAMES = 1 << 18  # frames per block when streaming (~6 s at 44.1 kHz: 2 MB of stereo float32)


class AudioStream:
    """An open audio file read block by block (see ``open_stream``): its rate, channel count and header's frame
    count (an estimate for some MP3s; ``blocks`` reads to the real end)."""

    def __init__(self, fh: sf.SoundFile, path: Path):
        self._fh, self.path = fh, path
        self.sample_rate, self.channels, self.frames = int(fh.samplerate), int(fh.channels), int(fh.frames)

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The samples from the start, as float32 blocks of shape (frames, channels); checked as ``decode``
        checks them (no NaN or infinity, at least one frame)."""
        self._fh.seek(0)
        total = 0
        while True:
            try:
                block = self._fh.read(frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioDecodeError(f"{self.path}: decoding failed at {total / self.sample_rate:.1f} s ({exc})") from None
            if not len(block):
                break
            if not np.isfinite(block).all():
                raise AudioDecodeError(f"{self.path}: decoded samples contain NaN or infinity")
            total += len(block)
            yield block
        if total == 0:
            raise AudioDecodeError(f"{self.path}: contains no audio samples")


@contextmanager
def open_stream(path: Path) -> Iterator[AudioStream]:
    """``decode`` block by block, for songs too long to hold whole: libsndfile reads wav/flac/ogg/mp3 in
    blocks; other formats are decoded by ffmpeg into a temporary float32 WAV file, read in blocks."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty")
    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        fh = None
    if fh is not None:
        with fh:
            yield AudioStream(fh, path)
        return
    with tempfile.TemporaryDirectory(prefix="mm-decode-") as tmp:
        out = _ffmpeg_to_wav(path, Path(tmp) / "decoded.wav")
        try:
            fh = sf.SoundFile(str(out))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            raise AudioDecodeError(f"{path}: ffmpeg produced no readable audio") from None
        with fh:
            yield AudioStream(fh, path)


def write(path: Path, audio: AudioData, subtype: str = "FLOAT") -> Path:
    """Write audio atomically (a temp file renamed into place); format from the suffix."""
    return write_blocks(path, [audio.samples.T], audio.sample_rate, audio.channels, subtype)


def write_blocks(path: Path, blocks: Iterable[np.ndarray], sample_rate: int, channels: int,
                 subtype: str = "FLOAT") -> Path:
    """``write`` for audio given as (frames, channels) blocks, so that a long song is never held whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: only .wav and .flac are written")
    if fmt == "FLAC" and subtype == "FLOAT":
        subtype = "PCM_24"
    try:
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=channels, format=fmt, subtype=subtype) as fh:
            for block in blocks:
                fh.write(block)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(block), b""):
            digest.update(piece)
    return digest.hexdigest()


def info(path: Path) -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) without decoding when soundfile can read the header; otherwise decoded
    into a temporary file, never into memory whole."""
    try:
        meta = sf.info(str(path))
        return meta.frames / float(meta.samplerate), int(meta.samplerate), int(meta.channels)
    except (sf.LibsndfileError, RuntimeError, TypeError):  # ffmpeg decodes it into a WAV, whose header is exact
        with open_stream(path) as stream:
            return stream.frames / float(stream.sample_rate), stream.sample_rate, stream.channels
