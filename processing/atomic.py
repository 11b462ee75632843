"""Build files that readers never see half-written (a trainer reading a manifest, a publish, a killed rerun).

Each is written beside its target under a hidden ``.NAME.partial`` name and renamed over it; hidden files are
never published, and the next write replaces a partial left by a killed build. POSIX has no portable atomic
swap of two folders, so ``replaced_dir`` leaves the target missing for the instant between two renames.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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


@contextmanager
def replaced_dir(path: Path) -> Iterator[Path]:
    """A fresh hidden folder to fill; when the block ends without error it takes `path`'s place (the old
    folder is removed), and on error it is removed and `path` stays as it was."""
    path = Path(path)
    tmp = partial_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
