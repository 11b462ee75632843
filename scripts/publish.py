#!/usr/bin/env python3
"""Publish an existing build to S3 (any S3-compatible store) and/or the Hugging Face Hub.

    python scripts/publish.py DIR --s3 s3://bucket/datasets                  # DIR -> s3://bucket/datasets/<name>/<version>/
    python scripts/publish.py DIR --s3 s3://bucket/datasets --endpoint-url http://127.0.0.1:9000   # MinIO, R2, ...
    python scripts/publish.py DIR --hub user/my-musicgen-set --dry-run       # show the Hub commits, send nothing
    python scripts/publish.py DIR --s3 s3://b/p --set publish.max_concurrency=8 --config build.yaml

The dataset name and version default to those the build recorded (DIR/report.json,
DIR/build_info.json, DIR/config.json). A version is immutable: publishing it again
with the same content does nothing, with different content is refused. Credentials
come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
an IAM role) and, for the Hub, from --hub-token, HF_TOKEN or `hf auth login`.
Exit status: 0 done, 1 a publish failed, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from builders.source import recorded_name_version  # noqa: E402
from processing.config import ConfigError, PipelineConfig, load_config  # noqa: E402


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build_dir", type=Path, help="a finished build folder (scripts/build.py --out)")
    p.add_argument("--s3", metavar="S3_URI", help="publish to s3://bucket/prefix (default: publish.s3_uri)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint URL (MinIO, R2, moto)")
    p.add_argument("--region", help="S3 region")
    p.add_argument("--hub", metavar="REPO_ID", help="push DIR/hf to this Hugging Face dataset repo (default: publish.hub_repo)")
    p.add_argument("--hub-public", action="store_true", help="create the Hub repo public (default private)")
    p.add_argument("--hub-token", help="Hugging Face token (default: HF_TOKEN or the stored login)")
    p.add_argument("--name", help="dataset name (default: the build's)")
    p.add_argument("--version", help="version to publish as (default: the build's)")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent; write nothing")
    p.add_argument("--max-concurrency", type=int, help="parallel transfers (default 4)")
    p.add_argument("--config", type=Path, help="YAML config file (its publish section is used)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set publish.multipart_chunksize_mb=32 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[PipelineConfig, str, str]:
    cfg = load_config(args.config, args.overrides)
    pub = cfg.publish
    pub.s3_uri = args.s3 or pub.s3_uri
    pub.endpoint_url = args.endpoint_url or pub.endpoint_url
    pub.region = args.region or pub.region
    pub.hub_repo = args.hub or pub.hub_repo
    pub.hub_private = pub.hub_private and not args.hub_public
    pub.dry_run = pub.dry_run or args.dry_run
    if args.max_concurrency is not None:
        pub.max_concurrency = args.max_concurrency
    cfg.progress = cfg.progress and not args.no_progress
    name, version = recorded_name_version(args.build_dir)
    name = args.name or name or cfg.build.name
    version = args.version or version or cfg.build.version
    if not version:
        raise ConfigError(f"{args.build_dir}: the build records no version: give --version")
    if not (pub.s3_uri or pub.hub_repo):
        raise ConfigError("nothing to do: give --s3 s3://bucket/prefix and/or --hub user/repo")
    return cfg, name, version


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        cfg, name, version = resolve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.build_dir.is_dir():
        print(f"error: {args.build_dir}: build folder does not exist", file=sys.stderr)
        return 2

    from processing.publish.publish import PublishError, publish_build
    from processing.publish.publish_hub import push_to_hub

    failed = False
    pub = cfg.publish
    if pub.s3_uri:
        try:
            report = publish_build(args.build_dir, pub, name, version, progress=cfg.progress)
            print(report.summary())
            if report.dry_run:
                for path in report.uploaded:
                    print(f"  upload {path}")
                for path in report.copied:
                    print(f"  copy   {path}")
                for path in report.stale_removed:
                    print(f"  remove {path}")
        except PublishError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    if pub.hub_repo:
        try:
            plan = push_to_hub(args.build_dir / "hf", pub.hub_repo, version, token=args.hub_token, private=pub.hub_private,
                               dry_run=pub.dry_run, max_commit_mb=pub.hub_commit_max_mb, max_commit_files=pub.hub_commit_max_files)
            print(plan.describe() if plan.dry_run else str(plan))
        except PublishError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
