#!/usr/bin/env python3
"""Pull a published dataset version from S3 and verify every file against its manifest.

    python scripts/pull.py s3://bucket/datasets/music_mixer/latest              # -> ~/.cache/music_mixer/pulls/...
    python scripts/pull.py s3://bucket/datasets/music_mixer/2026.11.24 --dest ./mm
    python scripts/pull.py s3://bucket/datasets/music_mixer --list              # the published versions
    python scripts/pull.py s3://bucket/datasets/music_mixer/latest --endpoint-url http://127.0.0.1:9000

Files already present with the right sha256 are kept (an interrupted pull resumes).
A file whose bytes differ from the manifest is reported by name and the exit status is 1.
Without AWS credentials the requests are sent unsigned (public buckets).
Prints the local folder on success.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from processing.publish.publish import PublishError, list_versions, pull_version  # noqa: E402


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("uri", help="s3://bucket/prefix/<name>/<version or latest> (with --list: s3://bucket/prefix/<name>)")
    p.add_argument("--dest", type=Path, help="local folder (default: ~/.cache/music_mixer/pulls/<bucket>/<prefix>/<name>/<version>)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint URL (MinIO, R2, moto); default: AWS or $AWS_ENDPOINT_URL")
    p.add_argument("--region", help="S3 region")
    p.add_argument("--max-concurrency", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--list", action="store_true", help="list the published versions instead of pulling")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            for version in list_versions(args.uri, args.endpoint_url, args.region):
                print(version)
            return 0
        folder = pull_version(args.uri, args.dest, args.endpoint_url, region=args.region,
                              max_concurrency=args.max_concurrency, progress=not args.no_progress)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
