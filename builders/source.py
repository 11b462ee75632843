"""Where a build comes from: a local folder (a build, a curation, a pulled version) or a published version.

``local_build`` turns ``s3://bucket/prefix/<name>/<version|latest>`` into a pulled, verified folder
(processing.publish.publish.pull_version) and checks that a folder is a build; ``recorded_name_version``
reads the dataset name and version a build recorded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from processing.config import is_uri

from .table import BuildFolderError


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; {} when it is missing or not an object."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def local_build(source: str | Path, pull_dest: Optional[Path] = None, endpoint_url: Optional[str] = None,
                progress: bool = False) -> Path:
    """A build folder for ``source``: a local folder as is, an s3:// version pulled (and verified) first.

    Raises BuildFolderError naming the source when it cannot be pulled or is not a build."""
    if is_uri(str(source)):
        from processing.publish.publish import PublishError, pull_version

        try:
            return Path(pull_version(str(source), pull_dest, endpoint_url, progress=progress))
        except PublishError as exc:
            raise BuildFolderError(f"cannot pull {source}: {exc}") from exc
    folder = Path(source)
    if not folder.is_dir():
        raise BuildFolderError(f"{folder}: no such build folder (give a folder written by scripts/build.py or "
                               "scripts/curate.py, or a published version s3://bucket/prefix/<name>/<version>)")
    if not (folder / "chunks.parquet").is_file():
        raise BuildFolderError(f"{folder}: not a Music Mixer build: it has no chunks.parquet (give a folder written by "
                               "scripts/build.py or scripts/curate.py, or a pulled version)")
    return folder


def recorded_name_version(build_dir: Path) -> tuple[Optional[str], Optional[str]]:
    """The dataset name and version a build recorded, looking in report.json, build_info.json, config.json."""
    report = read_json(build_dir / "report.json")
    info = read_json(build_dir / "build_info.json")
    config = read_json(build_dir / "config.json").get("build") or {}
    settings = report.get("settings") if isinstance(report.get("settings"), dict) else {}
    name = settings.get("name") or (settings.get("build") or {}).get("name") or info.get("name") or config.get("name")
    version = settings.get("version") or info.get("version") or config.get("version")
    return (str(name) if name else None), (str(version) if version else None)
