#!/usr/bin/env python3
"""Compare two dataset versions: songs and chunks added and removed, facts changed, distributions moved.

    python scripts/diff.py OLD NEW                # a short table
    python scripts/diff.py OLD NEW --json         # everything, as JSON
    python scripts/diff.py s3://bucket/datasets/music_mixer/2026.11.24-ab12cd34 build --endpoint-url http://127.0.0.1:9000

Each side is a build folder (scripts/build.py, scripts/curate.py), a pulled version, or a published
version s3://bucket/prefix/<name>/<version|latest> (pulled and verified first). Chunks are compared by id;
the facts compared are bpm, key, scale, genre, moods, instruments, description, excluded and weight; each
distribution (genre, mood, instrument, tempo band, key, mode) is shown with its effective number of values
before and after. Exit status: 0 when the diff was made, whatever it holds; 2 when a side cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="the earlier version: a build folder or s3://bucket/prefix/<name>/<version>")
    p.add_argument("new", help="the later version: a build folder or s3://bucket/prefix/<name>/<version>")
    p.add_argument("--json", action="store_true", help="print the whole diff as JSON")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint for s3:// sides (MinIO, R2, ...)")
    p.add_argument("--pull-dest", type=Path, help="where s3:// sides are pulled (default: the pull cache)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from builders.diff import diff_versions
    from builders.table import BuildFolderError

    try:
        diff = diff_versions(args.old, args.new, args.endpoint_url, args.pull_dest)
    except BuildFolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(diff.to_dict(), indent=1, default=str) if args.json else diff.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
