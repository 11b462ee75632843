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
from pathlib import Path
from typing import Optional

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


def _read_with_ffmpeg(path: Path) -> AudioData:
    with tempfile.TemporaryDirectory(prefix="mm-decode-") as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(path), "-vn", "-map", "0:a:0", "-c:a", "pcm_f32le", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr or "").strip().splitlines()
            reason = detail[-1] if detail else f"ffmpeg exit code {proc.returncode}"
            raise AudioDecodeError(f"{path}: not decodable as audio ({reason})")
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


def write(path: Path, audio: AudioData, subtype: str = "FLOAT") -> Path:
    """Write audio atomically (a temp file renamed into place); format from the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: only .wav and .flac are written")
    if fmt == "FLAC" and subtype == "FLOAT":
        subtype = "PCM_24"
    sf.write(str(tmp), audio.samples.T, audio.sample_rate, format=fmt, subtype=subtype)
    os.replace(tmp, path)
    return path


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(block), b""):
            digest.update(piece)
    return digest.hexdigest()


def info(path: Path) -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) without decoding when soundfile can read the header."""
    try:
        meta = sf.info(str(path))
        return meta.frames / float(meta.samplerate), int(meta.samplerate), int(meta.channels)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        audio = decode(path)
        return audio.duration_s, audio.sample_rate, audio.channels
