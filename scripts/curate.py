#!/usr/bin/env python3
"""Curate a new dataset version from an existing build, without recomputing anything.

    python scripts/curate.py BUILD --out NEW --min-seconds 15                 # drop chunks shorter than 15 s
    python scripts/curate.py BUILD --out NEW --exclude-genre "hip hop" --max-chunks-per-song 8
    python scripts/curate.py BUILD --out NEW --include-flagged residual_vocals # bring back chunks excluded for it
    python scripts/curate.py BUILD --out NEW --weighting balanced --balance-on genre,mood
    python scripts/curate.py s3://bucket/datasets/music_mixer/latest --out NEW --min-seconds 15   # pulled first

NEW gets every export a build writes (chunks.parquet, data/, hf/, egs/ with sidecars, the card with its
plots, report.json with the balance report under `diversity`), its chunk files hard-linked from BUILD
(copied across file systems). No audio is decoded, separated or analysed again; each song keeps its
split. NEW's build_info.json names the parent version and the settings; publish it with
scripts/publish.py like any build. BUILD may be a build folder, a pulled version, or an s3:// version.
Exit status: 0 done, 2 bad input (nothing is written).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from processing.config import WEIGHTINGS, ConfigError  # noqa: E402


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build", help="a build folder, a pulled version, or s3://bucket/prefix/<name>/<version|latest>")
    p.add_argument("--out", type=Path, required=True, help="the new build's folder (missing or empty)")
    p.add_argument("--min-seconds", type=float, metavar="S", help="keep only chunks of at least S seconds")
    p.add_argument("--exclude-genre", action="append", default=[], metavar="G", help="drop chunks of genre G (repeatable)")
    p.add_argument("--only-split", choices=["train", "validation", "test"], help="keep only this split's songs")
    p.add_argument("--max-chunks-per-song", type=int, metavar="N", help="keep at most the first N chunks of each song")
    p.add_argument("--include-flagged", action="append", default=[], metavar="FLAG",
                   help="bring back chunks the analysis excluded only for this flag, e.g. residual_vocals (repeatable)")
    p.add_argument("--weighting", choices=WEIGHTINGS, help="sampling weights (default: the parent's curate.weighting)")
    p.add_argument("--balance-on", metavar="FIELDS", help="fields to balance, comma-separated: genre, mood, instrument, "
                                                          "tempo, key, mode (default: the parent's curate.balance_on)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting of the parent's config, e.g. curate.max_weight_ratio=5 (repeatable)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint for an s3:// BUILD (MinIO, R2, ...)")
    p.add_argument("--pull-dest", type=Path, help="where an s3:// BUILD is pulled (default: the pull cache)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from builders.curate import CurateError, CurationSettings, curate
    from builders.table import BuildFolderError

    overrides = list(args.overrides)
    if args.weighting:
        overrides.append(f"curate.weighting={args.weighting}")
    if args.balance_on is not None:
        overrides.append(f"curate.balance_on=[{args.balance_on}]")
    settings = CurationSettings(min_seconds=args.min_seconds, exclude_genres=args.exclude_genre, only_split=args.only_split,
                                max_chunks_per_song=args.max_chunks_per_song, include_flagged=args.include_flagged)
    try:
        result = curate(args.build, args.out, settings, overrides, args.endpoint_url, args.pull_dest)
    except (ConfigError, CurateError, BuildFolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    art = result.artifacts
    print(f"Curated {result.parent} (version {result.parent_version}) into {result.out} (version {result.version})")
    print(f"  chunks: {result.kept} in the dataset ({art.total_hours * 60:.1f} min), removed: "
          + (", ".join(f"{n} {why}" for why, n in result.removed.items()) or "none")
          + (f", {result.re_included} brought back" if result.re_included else ""))
    print("  splits: " + ", ".join(f"{s} {st.songs} songs / {st.chunks} chunks" for s, st in art.splits.items()))
    print(f"  balance: {art.diversity['summary']}")
    print(f"  files: {result.linked} hard-linked, {result.copied} copied; {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
