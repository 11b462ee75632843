"""The manifest of a published build version: every file with its size and
sha256, the build's settings and the code version that made it.

A version is published when its ``manifest.json`` exists; the manifest is
written last, so a half-done upload is never mistaken for a version. The same
manifest verifies a pulled copy file by file.

Hidden paths (any component starting with ".", e.g. ``DIR/.cache/``) are never
part of a build's manifest.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional

from ..atomic import write_text_atomic
from ..audio_io import file_sha256

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "music-mixer-manifest"
MANIFEST_FORMAT_VERSION = 1
HASH_CACHE = Path(".cache") / "publish_hashes.json"  # hidden: never uploaded


class ManifestError(ValueError):
    """A manifest or a build folder is malformed; the message names the file."""


@dataclass(frozen=True)
class ManifestFile:
    path: str  # POSIX path relative to the build folder
    size: int
    sha256: str


@dataclass
class Manifest:
    name: str
    version: str
    files: list[ManifestFile]
    created_at: str = ""
    code_version: Optional[str] = None
    git_commit: Optional[str] = None
    build_config: Optional[dict[str, Any]] = None
    format: str = MANIFEST_FORMAT
    format_version: int = MANIFEST_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}

    def same_content(self, other: "Manifest") -> bool:
        """True when both list exactly the same files with the same bytes."""
        return self.by_path() == other.by_path()

    def differences(self, other: "Manifest") -> list[str]:
        """Paths that are added, removed or changed between self and other."""
        mine, theirs = self.by_path(), other.by_path()
        return sorted(p for p in set(mine) | set(theirs) if mine.get(p) != theirs.get(p))

    def to_json(self) -> bytes:
        data = asdict(self)
        data["file_count"] = len(self.files)
        data["total_bytes"] = self.total_bytes
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, blob: bytes | str, where: str = "manifest") -> "Manifest":
        try:
            data = json.loads(blob)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"{where}: not a {MANIFEST_FORMAT} file")
        if int(data.get("format_version", 0)) > MANIFEST_FORMAT_VERSION:
            raise ManifestError(f"{where}: format_version {data['format_version']} is newer than this code understands")
        try:
            files = [ManifestFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"]]
            manifest = cls(
                name=str(data["name"]),
                version=str(data["version"]),
                files=files,
                created_at=str(data.get("created_at", "")),
                code_version=data.get("code_version"),
                git_commit=data.get("git_commit"),
                build_config=data.get("build_config"),
                format_version=int(data.get("format_version", MANIFEST_FORMAT_VERSION)),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: missing or malformed field ({exc!r})") from None
        check_entries(files, where)
        return manifest


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_entries(files: list[ManifestFile], where: str = "manifest") -> None:
    """Refuse a manifest a pull could not follow safely, naming the entry: a path that escapes the
    destination or is hidden (a published build has none), a path listed twice, a path that is a
    file and a folder at once, a negative size, a sha256 that is not 64 hex digits."""
    seen: set[str] = set()
    for f in files:
        check_relative_path(f.path, where)
        if is_hidden(PurePosixPath(f.path)):
            raise ManifestError(f"{where}: hidden path {f.path!r} (publishing never includes hidden files)")
        if f.path in seen:
            raise ManifestError(f"{where}: duplicate path {f.path!r} (listed twice)")
        seen.add(f.path)
        if f.size < 0:
            raise ManifestError(f"{where}: {f.path!r}: negative size {f.size}")
        if not _SHA256.match(f.sha256):
            raise ManifestError(f"{where}: {f.path!r}: sha256 {f.sha256!r} is not 64 lowercase hex digits")
    folders = {str(parent) for path in seen for parent in PurePosixPath(path).parents if str(parent) != "."}
    clash = sorted(seen & folders)
    if clash:
        raise ManifestError(f"{where}: {clash[0]!r} is listed as a file and is also a folder of other entries")


def check_relative_path(path: str, where: str = "manifest") -> str:
    """Refuse paths that could escape the destination folder (absolute, '..', backslashes)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or "\\" in path or any(part in ("..", ".", "") for part in path.split("/")):
        raise ManifestError(f"{where}: unsafe file path {path!r}")
    return path


def is_hidden(rel: PurePosixPath) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def is_publish_manifest(path: Path) -> bool:
    """A manifest.json left by a previous pull (it is rewritten, never uploaded as data)."""
    try:
        return json.loads(path.read_text()).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def list_build_files(build_dir: Path) -> list[Path]:
    """The files of a build, sorted, without hidden paths or a pulled manifest.json."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise ManifestError(f"{build_dir}: build folder does not exist")
    found: list[Path] = []
    for root, dirs, files in os.walk(build_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.is_file():
                found.append(path)
    top = build_dir / MANIFEST_NAME
    if top in found:
        if not is_publish_manifest(top):
            raise ManifestError(f"{top}: the name {MANIFEST_NAME} at the top of a build is reserved for the publish manifest")
        found.remove(top)
    return sorted(found, key=lambda p: p.relative_to(build_dir).as_posix())


def _load_hash_cache(build_dir: Path) -> dict[str, list]:
    try:
        return json.loads((build_dir / HASH_CACHE).read_text())
    except (OSError, ValueError):
        return {}


def _save_hash_cache(build_dir: Path, cache: dict[str, list]) -> None:
    path = build_dir / HASH_CACHE
    try:  # a read-only build folder only loses the speed-up
        write_text_atomic(path, json.dumps(cache))
    except OSError:
        pass


def scan_build(build_dir: Path, progress: Optional[Callable[[int], None]] = None) -> list[ManifestFile]:
    """Size and sha256 of every (non-hidden) file of a build.

    Hashes are remembered in ``DIR/.cache/publish_hashes.json`` keyed by
    (size, mtime_ns), so re-publishing a large unchanged build does not read it again.
    """
    build_dir = Path(build_dir)
    cache = _load_hash_cache(build_dir)
    fresh: dict[str, list] = {}
    out: list[ManifestFile] = []
    for path in list_build_files(build_dir):
        rel = path.relative_to(build_dir).as_posix()
        check_relative_path(rel, str(build_dir))
        st = path.stat()
        hit = cache.get(rel)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            digest = hit[2]
        else:
            digest = file_sha256(path)
        fresh[rel] = [st.st_size, st.st_mtime_ns, digest]
        out.append(ManifestFile(rel, st.st_size, digest))
        if progress:
            progress(st.st_size)
    if fresh != cache:
        _save_hash_cache(build_dir, fresh)
    return out


def git_commit(repo_dir: Optional[Path] = None) -> Optional[str]:
    """The commit of the code that runs (with "-dirty" if it has local changes), or None."""
    repo_dir = repo_dir or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_dir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def read_build_config(build_dir: Path) -> Optional[dict[str, Any]]:
    path = Path(build_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None


def build_manifest(
    build_dir: Path, name: str, version: str, progress: Optional[Callable[[int], None]] = None
) -> Manifest:
    """Scan a build folder into a Manifest (files, settings from DIR/config.json, code version)."""
    from .. import __version__

    files = scan_build(build_dir, progress)
    if not files:
        raise ManifestError(f"{build_dir}: build folder holds no files to publish")
    return Manifest(
        name=name,
        version=version,
        files=files,
        created_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        code_version=__version__,
        git_commit=git_commit(),
        build_config=read_build_config(build_dir),
    )


@dataclass
class FileProblem:
    path: str
    reason: str  # "missing", "size 12 != 34", "sha256 ab.. != cd.."


def verify_file(path: Path, expected: ManifestFile) -> Optional[FileProblem]:
    if not path.is_file():
        return FileProblem(expected.path, "missing")
    size = path.stat().st_size
    if size != expected.size:
        return FileProblem(expected.path, f"size {size} bytes, manifest says {expected.size}")
    digest = file_sha256(path)
    if digest != expected.sha256:
        return FileProblem(expected.path, f"sha256 {digest}, manifest says {expected.sha256}")
    return None


def verify_folder(folder: Path, manifest: Manifest) -> list[FileProblem]:
    """Every manifest file checked in ``folder`` (size, then sha256); empty list = intact."""
    problems = []
    for entry in manifest.files:
        problem = verify_file(Path(folder) / entry.path, entry)
        if problem:
            problems.append(problem)
    return problems
