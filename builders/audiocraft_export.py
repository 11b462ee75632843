"""Export for Meta's audiocraft: egs/<split>/data.jsonl manifests, .json sidecars, a dset YAML.

audiocraft (1.3.0) reads a manifest folder with `AudioDataset.from_meta`:
one JSON object per line with the AudioMeta fields (path, duration,
sample_rate, amplitude, weight, info_path); its MusicDataset then reads the
MusicInfo fields from `Path(meta.path).with_suffix(".json")`, i.e. a sidecar
beside each audio file, and by default (`info_fields_required=True`) expects
every MusicInfo field to be present (null allowed; only `keywords` optional).
Paths are absolute (audiocraft does not resolve relative ones without dora);
after moving or pulling a build folder, run `relocate(build_dir)`
(`python -m builders BUILD_DIR --relocate-audiocraft`) to rewrite them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from processing.atomic import write_text_atomic

# MusicInfo's own metadata fields, in audiocraft/data/music_dataset.py order.
MUSIC_INFO_FIELDS = ("title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name", "instrument")
AUDIO_META_FIELDS = ("path", "duration", "sample_rate", "amplitude", "weight", "info_path")


def music_info(row: dict[str, Any]) -> dict[str, Any]:
    """The sidecar content for one output row (schema columns -> MusicInfo fields).

    Fields the describe stage did not fill fall back to the source metadata
    (title, artist, genre, moods, keywords) so conditioning text is never empty
    when the user gave something.
    """
    fallback = {
        "title": row.get("source_title"),
        "artist": row.get("source_artist"),
        "genre": row.get("source_genre"),
        "moods": row.get("source_moods") or None,
        "keywords": row.get("source_keywords") or None,
        "name": row.get("song_id"),
    }
    info: dict[str, Any] = {}
    for f in MUSIC_INFO_FIELDS:
        value = row.get(f)
        if value is None or value == []:
            value = fallback.get(f)
        info[f] = value
    if isinstance(info["instrument"], list):
        info["instrument"] = ", ".join(info["instrument"])
    return info


def manifest_line(row: dict[str, Any], audio_file: Path) -> dict[str, Any]:
    return {
        "path": str(audio_file),
        "duration": float(row["duration_s"]),
        "sample_rate": int(row["sample_rate"]),
        "amplitude": None if row.get("peak") is None else float(row["peak"]),
        "weight": None if row.get("weight") is None else float(row["weight"]),  # sample_on_weight draws by it
        "info_path": None,  # audiocraft uses info_path only for zip archives (PathInZip)
    }


def write_audiocraft(
    build_dir: Path,
    rows_by_split: dict[str, list[dict[str, Any]]],
    audio_paths: dict[str, str],
    sample_rate: int,
    channels: int,
    name: str,
) -> dict[str, Path]:
    """Write sidecars beside the audio, egs/<split>/data.jsonl and egs/<name>.yaml; return the files."""
    build_dir = Path(build_dir).resolve()
    egs = build_dir / "egs"
    written: dict[str, Path] = {}
    for split, rows in rows_by_split.items():
        lines = []
        for row in rows:
            audio_file = build_dir / audio_paths[row["chunk_id"]]
            sidecar = audio_file.with_suffix(".json")
            write_text_atomic(sidecar, json.dumps(music_info(row), ensure_ascii=False, indent=1) + "\n")
            lines.append(json.dumps(manifest_line(row, audio_file), ensure_ascii=False))
        manifest = egs / split / "data.jsonl"
        write_text_atomic(manifest, "".join(line + "\n" for line in lines))
        written[split] = manifest
    written["yaml"] = write_dset_yaml(egs, rows_by_split, sample_rate, channels, name)
    return written


def write_dset_yaml(egs: Path, rows_by_split: dict[str, list], sample_rate: int, channels: int, name: str) -> Path:
    """A config for audiocraft's config/dset/audio/ folder (as its example.yaml is written)."""
    def folder(split: str) -> str:
        return str(egs / split)

    valid = "validation" if rows_by_split.get("validation") else "train"
    evaluate = "test" if rows_by_split.get("test") else valid
    text = (
        "# @package __global__\n"
        f"# Music Mixer build '{name}': copy to audiocraft/config/dset/audio/{name}.yaml and train with\n"
        f"#   dora run solver=musicgen/musicgen_base_32khz dset=audio/{name}\n"
        "datasource:\n"
        f"  max_sample_rate: {int(sample_rate)}\n"
        f"  max_channels: {int(channels)}\n\n"
        f"  train: {folder('train')}\n"
        f"  valid: {folder(valid)}\n"
        f"  evaluate: {folder(evaluate)}\n"
        f"  generate: {folder(evaluate)}\n"
    )
    path = egs / f"{name}.yaml"
    return write_text_atomic(path, text)


def relocate(build_dir: Path, root: Path | None = None) -> int:
    """Rewrite the absolute paths of a moved (or pulled) build's audiocraft export; return lines changed.

    ``root``: the folder the build is about to be moved to (default: where it is now)."""
    build_dir = Path(build_dir).resolve()
    target = Path(root).resolve() if root is not None else build_dir
    egs = build_dir / "egs"
    changed = 0
    for manifest in sorted(egs.glob("*/data.jsonl")):
        out = []
        for line in manifest.read_text().splitlines():
            if not line.strip():
                continue
            meta = json.loads(line)
            parts = Path(meta["path"]).parts
            if "audio" not in parts:
                raise ValueError(f"{manifest}: path {meta['path']!r} is not under an audio/ folder")
            rel = Path(*parts[len(parts) - 1 - parts[::-1].index("audio"):])
            new = str(target / rel)
            changed += new != meta["path"]
            meta["path"] = new
            out.append(json.dumps(meta, ensure_ascii=False))
        write_text_atomic(manifest, "".join(line + "\n" for line in out))
    for yaml_file in egs.glob("*.yaml"):
        lines = []
        for line in yaml_file.read_text().splitlines():
            key, sep, value = line.partition(": ")
            if sep and key.strip() in ("train", "valid", "evaluate", "generate"):
                line = f"{key}: {target / 'egs' / Path(value.strip()).name}"
            lines.append(line)
        write_text_atomic(yaml_file, "\n".join(lines) + "\n")
    return changed

