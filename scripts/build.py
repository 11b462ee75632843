#!/usr/bin/env python3
"""Build a MusicGen fine-tuning dataset from a list of songs.

    python scripts/build.py --demo                      # offline demo, no network, no model download
    python scripts/build.py sources.yaml --out DIR      # your songs (YAML, CSV or a .txt of URLs/paths)
    python scripts/build.py sources.yaml --out DIR --config build.yaml --set chunk.tail_policy=pad
    python scripts/build.py sources.yaml --out s3://bucket/builds/x --executor ray --ray-address auto

Every option of the typed config can be set with --set section.key=value
(sections: ingest, separate, chunk, convert, analyse, describe, build, publish);
the named flags below are shortcuts for the common ones.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from processing.config import ConfigError, apply_override, config_from_dict, read_config_file  # noqa: E402
from processing.executors.choose import make_executor  # noqa: E402
from processing.storage import is_remote, local_side  # noqa: E402
from processing.ingest.sources import SourcesError, read_sources  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="?", type=Path, help="sources file: .yaml/.yml, .csv or .txt")
    p.add_argument("--demo", action="store_true", help="build the embedded offline demo (synthetic songs)")
    p.add_argument("--out", help="output folder, or s3://bucket/prefix (default: build, or demo_build with --demo)")
    p.add_argument("--config", type=Path, help="YAML config file (same keys as --set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set convert.sample_rate=16000 (repeatable)")
    p.add_argument("--cache-dir", help="stage cache: a folder or s3://bucket/prefix (default: OUT/.cache)")
    p.add_argument("--model", help="separation: htdemucs (default), any demucs model, offline, or none")
    p.add_argument("--tagger", help="genre/mood/instrument/vocal tagger: musicnn (default), none, essentia-tf, python:module:factory")
    p.add_argument("--tempo", choices=["rnn", "essentia"],
                   help="tempo and beats: rnn (default; madmom's trained beat network, models CC BY-NC-SA 4.0) or essentia")
    p.add_argument("--weights", type=Path, help="separation weights: a file or a folder")
    p.add_argument("--offline", action="store_true",
                   help="never download weights (as HF_HUB_OFFLINE=1); missing ones stop the build with instructions")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, help="CPU worker processes (default: one per CPU core; local executor)")
    p.add_argument("--executor", choices=["local", "ray"],
                   help="local (default: this machine's cores and GPU) or ray (a Ray cluster; pip install -e '.[ray]')")
    p.add_argument("--ray-address", help="with --executor ray: the cluster to join (auto, or HEAD_IP:6379 from a cluster node); "
                                         "default: start a local one")
    p.add_argument("--keep-stems", action="store_true", help="also write each stem of every chunk")
    p.add_argument("--chunk-seconds", type=float, help="chunk length in seconds (default 30)")
    p.add_argument("--tail-policy", choices=["drop", "pad", "merge"], help="what to do with a short last chunk")
    p.add_argument("--sample-rate", type=int, help="output rate (default 32000, MusicGen's EnCodec rate)")
    p.add_argument("--channels", type=int, choices=[1, 2], help="1 = mono (default), 2 = stereo")
    p.add_argument("--format", choices=["wav", "flac"], help="chunk file format (default wav)")
    p.add_argument("--no-analyse", action="store_true", help="skip analysis and descriptions")
    p.add_argument("--retry-failed", action="store_true", help="try again items that failed in an earlier run")
    p.add_argument("--publish", metavar="S3_URI", help="after the build, publish it to s3://bucket/prefix")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, R2, ...) of an s3:// --out/--cache-dir and of --publish")
    p.add_argument("--hub-repo", help="after the build, push it to this Hugging Face dataset repo")
    p.add_argument("--version", dest="build_version", help="dataset version (default: date-based)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit with code 3 when any item failed")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, embedded: dict) -> dict:
    data: dict = read_config_file(args.config) if args.config else {}
    for key, value in (embedded or {}).items():  # config: block of the sources file
        data.setdefault(key, value)
    flags = {
        "separate.model": args.model, "separate.weights": args.weights, "separate.device": args.device,
        "analyse.tagger": args.tagger, "analyse.tempo": args.tempo,
        "chunk.chunk_s": args.chunk_seconds, "chunk.tail_policy": args.tail_policy,
        "convert.sample_rate": args.sample_rate, "convert.channels": args.channels, "convert.format": args.format,
        "publish.s3_uri": args.publish, "publish.endpoint_url": args.endpoint_url, "publish.hub_repo": args.hub_repo,
        "build.endpoint_url": args.endpoint_url,
        "build.version": args.build_version, "cache_dir": args.cache_dir, "workers": args.workers,
        "build.executor": args.executor, "build.ray_address": args.ray_address,
    }
    if args.demo:
        data.setdefault("separate", {}).setdefault("model", "offline")
        data.setdefault("out_dir", "demo_build")
    if args.out:
        data["out_dir"] = str(args.out)
    for dotted, value in flags.items():
        if value is not None:
            apply_override(data, f"{dotted}={value}")
    if args.keep_stems:
        apply_override(data, "separate.keep_stems=true")
    if args.offline:
        apply_override(data, "separate.offline=true")
    if args.no_analyse:
        apply_override(data, "analyse.enabled=false")
    if args.retry_failed:
        apply_override(data, "ingest.retry_failed=true")
    if args.no_progress:
        apply_override(data, "progress=false")
    for item in args.overrides:
        apply_override(data, item)
    return data


def publish_after_build(cfg, result) -> bool:
    """Publish the finished build where the config asks; return True when a publish failed."""
    version = result.report.settings["version"]
    failed = False
    if cfg.publish.s3_uri:
        from processing.publish.publish import PublishError, publish_build

        try:
            pub = publish_build(result.out_dir, cfg.publish, cfg.build.name, version, progress=cfg.progress)
            print(f"\nPublished {cfg.build.name} {version} to {cfg.publish.s3_uri}: {pub}")
        except PublishError as exc:
            print(f"error: publishing to {cfg.publish.s3_uri} failed: {exc}", file=sys.stderr)
            failed = True
    if cfg.publish.hub_repo:
        from processing.publish.publish_hub import push_to_hub

        try:
            plan = push_to_hub(result.out_dir / "hf", cfg.publish.hub_repo, version,
                               private=cfg.publish.hub_private, dry_run=cfg.publish.dry_run)
            print(f"\nHub: {plan}")
        except Exception as exc:  # the Hub client raises many kinds; the build itself is done
            print(f"error: pushing to the Hub repo {cfg.publish.hub_repo} failed: {exc}", file=sys.stderr)
            failed = True
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        embedded: dict = {}
        if args.demo:
            from processing.demo.demo import write_demo_sources

            sources = None
        elif args.sources:
            sources, embedded = read_sources(args.sources)
        else:
            print("error: give a sources file, or --demo for the offline demo (see --help)", file=sys.stderr)
            return 2
        cfg = config_from_dict(build_config(args, embedded))
        cfg.validate()
        executor = make_executor(cfg, only_build=True)  # e.g. --executor ray without Ray installed: stop before any work
        if args.demo:
            cache = cfg.resolved_cache_dir
            local = local_side(cache, "cache") if is_remote(cache) else Path(cache)  # demo songs: local files
            sources = write_demo_sources(local / "demo_songs")
    except (ConfigError, SourcesError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from processing.analyse.features import AnalysisError
    from processing.analyse.tagger import TaggerUnavailable
    from processing.pipeline import run_build
    from processing.separate.base import SeparatorError

    try:
        result = run_build(cfg, sources, executor)
    except (SeparatorError, ConfigError, TaggerUnavailable, AnalysisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = result.report
    print(report.summary())

    failed = publish_after_build(cfg, result)
    print(f"\nDataset written to {result.location or result.out_dir}")
    print(f"  table:  {result.table_path}")
    print(f"  report: {result.report_path}")
    if failed:
        return 4
    if args.strict and report.failures:
        return 3
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
