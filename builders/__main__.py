"""Re-run only the build step on an existing build folder.

    python -m builders BUILD_DIR [--config cfg.yaml] [--set build.embed_audio=true ...]
    python -m builders BUILD_DIR --relocate-audiocraft   # only fix egs/ paths after a move or a pull

Without --config, the folder's own config.json (the pipeline's settings) is used;
--set overrides apply on top. Prints what was written as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from processing.config import ConfigError, apply_override, config_from_dict, load_config

from .dataset import build_dataset
from .table import BuildFolderError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builders", description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--config", type=Path, help="a pipeline YAML config (default: BUILD_DIR/config.json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--relocate-audiocraft", action="store_true", help="only rewrite the audiocraft manifests' paths")
    args = parser.parse_args(argv)
    if args.relocate_audiocraft:
        from .audiocraft_export import relocate

        print(f"{relocate(args.build_dir)} manifest paths rewritten under {args.build_dir.resolve()}")
        return 0
    try:
        if args.config:
            cfg = load_config(args.config, args.overrides)
        else:
            saved = args.build_dir / "config.json"
            data = json.loads(saved.read_text()) if saved.is_file() else {}
            for item in args.overrides:
                apply_override(data, item)
            cfg = config_from_dict(data)
        cfg.validate()
        art = build_dataset(args.build_dir, cfg)
    except (ConfigError, BuildFolderError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(art.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
