"""Build files that readers never see half-written (a trainer reading a manifest, a publish, a killed rerun).

Each is written beside its target under a hidden ``.NAME.partial`` name and renamed over it; hidden files are
never published, and the next write replaces a partial left by a killed build. A folder (``replaced_dir``) is
exchanged with its new version in one system call (Linux ``renameat2(RENAME_EXCHANGE)``, macOS
``renamex_np(RENAME_SWAP)``), so a reader always finds the old folder or the new one; only where the system or
the file system has no such call (Windows, NFS) is it two renames, with an instant between them.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 2  # macOS sys/stdio.h


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def write_bytes_atomic(path: Path, body: bytes) -> Path:
    """Write `body` to `path`: the old content stays whole until the new one is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        tmp.write_bytes(body)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path`, as ``write_bytes_atomic``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (each name then holds what the other held); False, with nothing
    changed, where the system or the file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
            call = libc.renameat2
            call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            done = call(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
        elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
            call = libc.renamex_np
            call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            done = call(os.fsencode(a), os.fsencode(b), _RENAME_SWAP) == 0
        else:
            return False
    except (OSError, AttributeError):  # no C library to call (a static or unusual Python)
        return False
    return done


@contextmanager
def replaced_dir(path: Path) -> Iterator[Path]:
    """A fresh hidden folder to fill; when the block ends without error it takes `path`'s place in one step
    (``exchange``; the old folder is removed), and on error it is removed and `path` stays as it was."""
    path = Path(path)
    tmp = partial_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.is_dir() and not path.is_symlink() and exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # it holds the old folder now
        return
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
