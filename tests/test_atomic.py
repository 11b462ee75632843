"""Folders replaced in one step: a reader of a build's hf/ export always finds the old folder or the new one."""
from __future__ import annotations

import os
from pathlib import Path

from processing.atomic import exchange, replaced_dir


def _fill(folder: Path, version: int) -> None:
    (folder / "data").mkdir()
    (folder / "data" / "train.parquet").write_text(f"rows of version {version}")
    (folder / "README.md").write_text(f"version {version}")


def test_replacing_a_folder_never_leaves_its_name_missing(tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    with replaced_dir(hf) as staging:  # the first export: nothing to replace yet
        _fill(staging, 0)
    seen = []  # after every rename the swap makes: is hf/ there?
    for name in ("replace", "rename"):
        real = getattr(os, name)

        def watched(src, dst, *a, _real=real, **kw):
            result = _real(src, dst, *a, **kw)
            seen.append(hf.is_dir() and (hf / "README.md").is_file())
            return result
        monkeypatch.setattr(os, name, watched)
    for version in (1, 2):
        with replaced_dir(hf) as staging:
            _fill(staging, version)
    monkeypatch.undo()
    assert all(seen), f"hf/ was missing after {seen.count(False)} of {len(seen)} renames"
    assert (hf / "README.md").read_text() == "version 2" and (hf / "data" / "train.parquet").read_text() == "rows of version 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no old or partial folder left


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert exchange(a, b) is True  # Linux and macOS, on the local file systems builds use
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
