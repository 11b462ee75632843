"""The dataset card (markdown) of one build, written from its real numbers."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from processing.analyse.label_models import label_models
from processing.atomic import write_text_atomic

from . import plots
from .diversity import LABELS, UNDER_SHARE
from .schema import COLUMNS, SCHEMA_VERSION
from .splits import __doc__ as SPLIT_RULE


@dataclass
class CardInput:
    name: str
    version: str
    rows_by_split: dict[str, list[dict[str, Any]]]
    excluded: list[dict[str, Any]]
    config: dict[str, Any]  # PipelineConfig.to_dict()
    report: dict[str, Any]
    embed_audio: bool
    splits_present: tuple[str, ...] = ("train", "validation")
    diversity: dict[str, Any] = field(default_factory=dict)  # builders/diversity.py's report
    curation: Optional[dict[str, Any]] = None  # report.json's `curation` when scripts/curate.py made this build


def _separation_caveat(models) -> str:
    """A warning line for chunks separated by the weight-free (lower quality) or no separator."""
    notes = []
    if models.get("offline-repet"):
        notes.append(f"{models['offline-repet']} chunks were separated by the weight-free offline separator "
                     "(REPET-SIM soft masking), much lower quality than Demucs: expect vocal residue")
    if models.get("none"):
        notes.append(f"{models['none']} chunks were not separated: their sources were declared instrumental")
    return "".join(f"\n- {n}." for n in notes)


def _hours(rows: list[dict[str, Any]]) -> float:
    return sum(float(r["duration_s"] or 0) for r in rows) / 3600.0


def _counter(rows: list[dict[str, Any]], column: str) -> Counter:
    counts: Counter = Counter()
    for r in rows:
        value = r.get(column)
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if v not in (None, ""):
                counts[str(v)] += 1
    return counts


def write_plots(rows: list[dict[str, Any]], plot_dir: Path) -> dict[str, Optional[Path]]:
    """Every plot of the card; a missing analysis column gives None instead of a file."""
    return {
        "bpm": plots.histogram([r.get("bpm") for r in rows], plot_dir / "bpm.png", "Tempo", "BPM"),
        "key": plots.bars(_counter(rows, "key"), plot_dir / "key.png", "Key"),
        "genre": plots.bars(_counter(rows, "genre") or _counter(rows, "source_genre"), plot_dir / "genre.png", "Genre"),
        "mood": plots.bars(_counter(rows, "moods") or _counter(rows, "source_moods"), plot_dir / "mood.png", "Mood"),
        "instrument": plots.bars(_counter(rows, "instruments"), plot_dir / "instrument.png", "Instruments"),
        "duration": plots.histogram([r.get("duration_s") for r in rows], plot_dir / "duration.png", "Chunk duration", "seconds"),
    }


def _balance_fields(diversity: dict[str, Any], scope: str = "all") -> list[tuple[str, dict[str, Any]]]:
    fields = diversity.get("splits", {}).get(scope, {})
    return [(LABELS[name], fields[name]) for name in diversity.get("fields", []) if name in fields]


def balance_section(diversity: dict[str, Any], plot: Optional[Path], card_dir: Path) -> str:
    """The card's balance table (and plot): effective number of values per field and split, what to add."""
    if not diversity:
        return ""
    splits = [s for s in diversity.get("splits", {}) if s != "all"]
    weighting = diversity.get("weighting") or {}
    header = ["field", "values", "effective (all)", *[f"effective ({s})" for s in splits]]
    weighted = weighting.get("weighting") == "balanced"
    header += ["effective, weighted (train)"] if weighted else []
    header.append("under-represented (add songs of these)")
    lines = []
    for label, f in _balance_fields(diversity):
        name = f["field"]
        line = [label, f["categories"], f"{f['effective']:.2f}"]
        line += [f"{diversity['splits'][s][name]['effective']:.2f}" for s in splits]
        if weighted:
            w = diversity["splits"].get("train", {}).get(name, {}).get("weighted_effective")
            line.append("" if w is None else f"{w:.2f}")
        line.append(", ".join(f["under_represented"]) or "none")
        lines.append(line)
    how = (f"balanced on {' + '.join(weighting.get('balance_on', []))} (each value weighs the same in total, "
           f"no chunk more than {weighting.get('max_weight_ratio', '?'):g} times the median weight)"
           if weighted else "none (every chunk 1.0)")
    text = f"""## Balance

How evenly the chunks cover each field: the effective number of values is the exponential of the Shannon
entropy of their shares (it equals the number of values when all are equally common, and falls towards 1
as one value dominates). A value is under-represented when its share is below {UNDER_SHARE:g} / (number of
values); tempo bands and modes no chunk has count too. Mood and instrument count every label of a chunk.

{_table(header, lines)}

Sampling weights (the `weight` column, and `weight` in the audiocraft manifests): {how}.
Weights average 1.0 in each split; a trainer that samples by them (audiocraft's `sample_on_weight`,
`scripts/finetune_musicgen.py --weighted`) sees the weighted column above.
"""
    if plot is not None:
        text += f"\n![Balance]({plot.relative_to(card_dir).as_posix()})\n"
    return text


def curation_section(curation: Optional[dict[str, Any]]) -> str:
    """Where a curated build comes from: its parent version and the curation settings, the chain before it."""
    if not curation:
        return ""
    settings = curation.get("settings") or {}
    chain = curation.get("chain") or []
    removed = curation.get("removed") or {}
    return f"""## Curation

This version was curated from version `{curation.get("parent_version")}` of `{curation.get("parent_name")}` by
`scripts/curate.py`, from the parent's chunk files and facts (no audio decoded or analysed again; splits
kept per song). Settings: {", ".join(f"{k}={v}" for k, v in settings.items() if v not in (None, [], False)) or "none"}.
Chunks removed: {", ".join(f"{k} {v}" for k, v in removed.items()) or "none"}.
Lineage (oldest first): {" -> ".join(f"`{c.get('version')}`" for c in chain) or "none"}.
"""


def _configs_yaml(splits: tuple[str, ...]) -> str:
    """`configs:` front matter: lets `load_dataset(folder)` find the Parquet shards of each split."""
    lines = ["configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    return "\n".join(lines)


def _hub_licence(licences: Counter) -> str:
    """The Hub's licence id when every song shares one Creative Commons licence, else "other"."""
    if len(licences) != 1:
        return "other"
    m = re.fullmatch(r"(?:CC[- ])?(BY(?:[- ](?:NC|SA|ND)){0,2})[- ]?(\d\.\d)", next(iter(licences)).strip().upper())
    if m:
        return f"cc-{m.group(1).replace(' ', '-').lower()}-{m.group(2)}"
    return "cc0-1.0" if next(iter(licences)).strip().upper() in ("CC0", "CC0-1.0") else "other"


def _attribution(r: dict[str, Any]) -> str:
    title = r.get("source_title") or r.get("title") or r["song_id"]
    artist = r.get("source_artist") or r.get("artist") or "unknown artist"
    where = r.get("url") or Path(r.get("source_path") or "").name
    return f"- \"{title}\" by {artist}, {r.get('licence') or 'licence unknown'}" + (f" ({where})" if where else "")


def _nc_note(licences: Counter) -> str:
    nc = [k for k in licences if re.search(r"\bNC\b|NON-?COMMERCIAL", k.upper())]
    if not nc:
        return ""
    return f"Songs under a non-commercial licence ({', '.join(nc)}) restrict the whole dataset to non-commercial use."


def _models_table(models: list[dict[str, str]]) -> str:
    if not models:
        return "No analysis in this build: no labels from any model."
    return _table(["labels", "model", "licence"], [[m["labels"], m["model"], m["licence"]] for m in models])


def _table(header: list[str], lines: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in line) + " |" for line in lines]
    return "\n".join(out)


def _section(title: str, plot: Optional[Path], counts: Optional[Counter], missing: str, card_dir: Path) -> str:
    text = f"### {title}\n\n"
    if plot is None:
        return text + f"_{missing}_\n"
    text += f"![{title}]({plot.relative_to(card_dir).as_posix()})\n"
    if counts:
        text += "\n" + ", ".join(f"{k}: {v}" for k, v in counts.most_common(12)) + "\n"
    return text


def render(card: CardInput, card_dir: Path, plot_paths: dict[str, Optional[Path]]) -> str:
    rows = [r for split_rows in card.rows_by_split.values() for r in split_rows]
    cfg = card.config
    sep, chunk, conv = cfg.get("separate", {}), cfg.get("chunk", {}), cfg.get("convert", {})
    songs = {}
    for r in rows:
        songs.setdefault(r["song_id"], r)
    split_lines = []
    for split in dict.fromkeys(["train", "validation", *card.rows_by_split]):
        split_rows = card.rows_by_split.get(split, [])
        n_songs = len({r["song_id"] for r in split_rows})
        split_lines.append([split, n_songs, len(split_rows), f"{_hours(split_rows):.3f}"])
    split_lines.append(["**total**", len(songs), len(rows), f"{_hours(rows):.3f}"])
    src_lines = [
        [sid, r.get("source_title") or r.get("title") or "", r.get("source_artist") or r.get("artist") or "",
         r.get("licence") or "unknown", r.get("url") or Path(r.get("source_path") or "").name]
        for sid, r in sorted(songs.items())
    ]
    licences = Counter((r.get("licence") or "unknown") for r in songs.values())
    excluded = Counter((r.get("exclude_reason") or "unspecified") for r in card.excluded)
    failures = card.report.get("failures") or []
    bpms = [r["bpm"] for r in rows if r.get("bpm") is not None]
    sr = conv.get("sample_rate") or (rows[0]["sample_rate"] if rows else 32000)
    channels = conv.get("channels") or (rows[0]["channels"] if rows else 1)
    models = Counter(r.get("separation_model") or "unknown" for r in rows)

    md = f"""---
license: {_hub_licence(licences)}
{_configs_yaml(card.splits_present)}
task_categories:
- text-to-audio
tags:
- music
- musicgen
- audio
pretty_name: {card.name}
---

# {card.name} (version {card.version})

Instrumental music chunks with text descriptions, built by Music Mixer to fine-tune
Meta's MusicGen. Schema version {SCHEMA_VERSION}; audio is {sr} Hz, {channels} channel(s);
the Parquet files {'embed the audio bytes' if card.embed_audio else 'reference audio files relative to the build folder'}.

## Splits

{_table(["split", "songs", "chunks", "hours"], split_lines)}

Splits are assigned per song, never per chunk: no song appears in two splits.
{SPLIT_RULE.split("Rule (documented in the dataset card and the README):", 1)[-1].strip()}

## Sources and licences

Every song keeps its own licence; attribution travels with the dataset.
Licences: {", ".join(f"{k} ({v} song{'s' if v > 1 else ''})" for k, v in licences.most_common())}.
{_nc_note(licences)}

{_table(["song_id", "title", "artist", "licence", "source"], src_lines)}

Attribution (as the licences ask):

{chr(10).join(_attribution(r) for _, r in sorted(songs.items()))}

## Distributions

"""
    md += _section("Tempo (BPM)", plot_paths.get("bpm"), None, "No tempo analysis in this build (analyse stage disabled or failed).", card_dir)
    if bpms:
        md += f"\nmedian {sorted(bpms)[len(bpms) // 2]:.1f} BPM, range {min(bpms):.1f}-{max(bpms):.1f}\n"
    md += "\n" + _section("Key", plot_paths.get("key"), _counter(rows, "key"), "No key analysis in this build.", card_dir)
    md += "\n" + _section("Genre", plot_paths.get("genre"), _counter(rows, "genre") or _counter(rows, "source_genre"), "No genre labels in this build.", card_dir)
    md += "\n" + _section("Mood", plot_paths.get("mood"), _counter(rows, "moods") or _counter(rows, "source_moods"), "No mood labels in this build.", card_dir)
    md += "\n" + _section("Instruments", plot_paths.get("instrument"), _counter(rows, "instruments"), "No instrument analysis in this build.", card_dir)
    md += "\n" + _section("Chunk duration", plot_paths.get("duration"), None, "No chunks in this build.", card_dir)
    balance = balance_section(card.diversity, plot_paths.get("balance"), card_dir)
    md += ("\n" + balance) if balance else ""
    curated = curation_section(card.curation)
    md += ("\n" + curated) if curated else ""
    md += f"""
## Processing

- separation: {", ".join(f"{k} ({v} chunks)" for k, v in models.items()) or sep.get("model", "unknown")}
  (configured model `{sep.get("model", "unknown")}`, mode `{sep.get("instrumental_mode", "?")}`, shifts {sep.get("shifts", "?")})
- chunks: {chunk.get("chunk_s", "?")} s, tail policy `{chunk.get("tail_policy", "?")}` (min tail {chunk.get("min_tail_s", "?")} s,
  merged at most {chunk.get("max_merged_s", "?")} s), silent chunks below {chunk.get("silence_db", "?")} dBFS skipped
- format: {sr} Hz, {channels} channel(s), {conv.get("format", "wav")} {conv.get("subtype", "")}, peak limit {conv.get("peak_limit", "?")}
- analysis: {"enabled" if cfg.get("analyse", {}).get("enabled", True) else "disabled"}; descriptions: {"enabled" if cfg.get("describe", {}).get("enabled", True) else "disabled"}
- excluded chunks: {sum(excluded.values())}{" (" + ", ".join(f"{k}: {v}" for k, v in excluded.most_common()) + ")" if excluded else ""}
- failed items: {len(failures)}{"".join(chr(10) + f"  - `{f.get('item')}` ({f.get('stage')}): {f.get('reason')}" for f in failures[:20])}

## Labels: the models behind them, and their licences

{_models_table(label_models(cfg.get("analyse", {})))}

Music or not: a chunk is excluded as `non_music` only when the evidence agrees: a beat the network hears keeps
it; without one, a noise-like spectrum excludes it whatever the tagger says, a noisy one unless an instrument is
heard, and an instrument score below 0.1 unless the tagger is sure of a genre on a tonal spectrum
(`processing/analyse/musicness.py` gives every threshold with what it was checked on).

## Known limitations

- Vocals are removed by source separation; quiet vocal residue and separation artefacts can remain.{_separation_caveat(models)}
- Tempo, key, genre, mood and instruments come from automatic analysis and can be wrong;
  descriptions are generated from them and from the source metadata.
- Chunks of one song are correlated; with few songs the validation split is small and noisy.
- The songs' licences apply to this dataset; check them before any use.

## How to load

```python
# datasets >= 4 (and 3.x): the Hugging Face folder, no script
from datasets import load_dataset
ds = load_dataset("path/to/build/hf")            # or the Hub repo id
# datasets 3.6: the loading script
ds = load_dataset("music_mixer_dataset.py", data_dir="path/to/build", trust_remote_code=True)
```

audiocraft: copy `egs/{card.name}.yaml` to `audiocraft/config/dset/audio/` (manifests in `egs/<split>/data.jsonl`,
a MusicInfo `.json` beside each audio file).

## Columns

{_table(["column", "description"], [[c.name, c.doc] for c in COLUMNS])}
"""
    return md


def draw_plots(card: CardInput, plot_dir: Path) -> dict[str, Optional[Path]]:
    """The card's plots (distributions and balance) as PNG files in ``plot_dir``; None where there is nothing to plot."""
    rows = [r for split_rows in card.rows_by_split.values() for r in split_rows]
    plot_paths = write_plots(rows, plot_dir)
    plot_paths["balance"] = plots.balance(
        [(label, f["categories"], f["effective"], f["weighted_effective"]) for label, f in _balance_fields(card.diversity)],
        plot_dir / "balance.png", "Balance (all splits)") if card.diversity else None
    return plot_paths


def write_card(card: CardInput, card_path: Path, plot_paths: dict[str, Optional[Path]]) -> Path:
    """The card's markdown at ``card_path``, showing ``plot_paths`` (draw_plots') by their paths relative to it."""
    return write_text_atomic(card_path, render(card, card_path.parent, plot_paths))


def card_data(card: CardInput) -> dict[str, Any]:
    """The card's numbers as JSON (used by tests and the publish step)."""
    return {
        "name": card.name,
        "version": card.version,
        "schema_version": SCHEMA_VERSION,
        "splits": {
            s: {"songs": len({r["song_id"] for r in rows}), "chunks": len(rows), "hours": _hours(rows)}
            for s, rows in card.rows_by_split.items()
        },
        "label_models": label_models(card.config.get("analyse", {})),
    }

