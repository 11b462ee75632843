"""PNG plots of the dataset's distributions (matplotlib, Agg backend).

Each PNG carries a digest of what it was drawn from (its values and labels, this module's PLOTS_VERSION and
matplotlib's version) in its metadata; a plot whose file already holds the same digest is kept as it is.
A rerun or a curation pass with the same rows then draws nothing (7 plots: ~1.5 s with matplotlib's
import), and its files stay byte for byte the same."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

from processing.atomic import partial_path
from processing.cache import stable_hash

PLOTS_VERSION = "2"  # bump when a plot is drawn differently: every plot is drawn again (2: margins from label sizes)
INPUTS_KEY = "music_mixer_inputs"  # the PNG text chunk holding the digest
DPI = 80
PAD_IN = 0.12  # inches between a label and the figure's edge or the axes
FONT_PT = 10.0  # matplotlib's default size of tick labels (titles: 12 pt)


@lru_cache(maxsize=1)
def _matplotlib_version() -> str:
    """matplotlib's version, read from its metadata once (not once per plot)."""
    from importlib.metadata import version

    return version("matplotlib")


def inputs_digest(kind: str, *inputs: Any) -> str:
    """The digest of one plot's inputs (and of how it is drawn)."""
    return stable_hash(kind, PLOTS_VERSION, _matplotlib_version(), inputs)


def drawn_from(path: Path, digest: str) -> bool:
    """Whether the PNG at ``path`` was drawn from the inputs of ``digest`` (then it need not be drawn again)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.info.get(INPUTS_KEY) == digest
    except (OSError, ValueError, SyntaxError):  # missing, or not a readable PNG: drawn again
        return False


def _text_width_in(labels: Sequence[str], size_pt: float = FONT_PT) -> float:
    """The widest of ``labels`` in inches, as the Agg renderer sets them."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, font = RendererAgg(1, 1, DPI), FontProperties(size=size_pt)
    widths = [renderer.get_text_width_height_descent(str(s), font, ismath=False)[0] for s in labels]
    return max(widths, default=0.0) / DPI


def _figure(width_in: float, height_in: float, left_labels: Sequence[str], y_label: bool = False):
    """A matplotlib Figure and its one axes, with margins that fit a title, an x label, y tick labels as wide
    as the widest of ``left_labels`` and (``y_label``) a y label beside them. No pyplot (no global figure
    state), and margins set from measured label widths rather than by tight_layout, which lays a figure out by
    drawing it an extra time (30-40 % of a plot's cost, measured)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    left = 2 * PAD_IN + 0.05 + _text_width_in(left_labels)  # tick marks are 3.5 pt (0.05 in) long
    left += 0.22 if y_label else 0.0  # a 10 pt line of text on its side, and its pad
    top, bottom = 0.32, 0.55  # a 12 pt title; 10 pt x tick labels above a 10 pt x label
    fig.subplots_adjust(left=left / width_in, right=1 - PAD_IN / width_in, top=1 - top / height_in,
                        bottom=bottom / height_in)
    return fig, fig.add_subplot()


def _save(fig, path: Path, digest: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    fig.savefig(tmp, dpi=DPI, format="png", metadata={INPUTS_KEY: digest})
    tmp.replace(path)
    return path


def _count_labels(counts: Sequence[float]) -> list[str]:
    """The widest y tick label of a count axis: about the largest count, written out."""
    return [f"{max(counts, default=0) * 1.05:.1f}"]


def histogram(values: Sequence[float], path: Path, title: str, xlabel: str, bins: int = 20) -> Optional[Path]:
    """A histogram, or None when there is nothing to plot."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    digest = inputs_digest("histogram", values, title, xlabel, bins)
    if drawn_from(path, digest):
        return path
    import numpy as np

    heights = np.histogram(values, bins=bins)[0]
    fig, ax = _figure(6, 3.2, _count_labels(heights.tolist()), y_label=True)
    ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("chunks")
    return _save(fig, path, digest)


def bars(counts: Counter, path: Path, title: str, top: int = 25) -> Optional[Path]:
    """Horizontal bars of the most common labels, or None when there are none."""
    if not counts:
        return None
    items = counts.most_common(top)[::-1]
    digest = inputs_digest("bars", [[str(k), v] for k, v in items], title)
    if drawn_from(path, digest):
        return path
    fig, ax = _figure(6, 0.8 + 0.28 * len(items), [str(k) for k, _ in items])
    ax.barh([str(k) for k, _ in items], [v for _, v in items], color="#55a868")
    ax.set_title(title)
    ax.set_xlabel("chunks")
    return _save(fig, path, digest)


def balance(fields: list[tuple[str, int, float, Optional[float]]], path: Path, title: str = "Balance") -> Optional[Path]:
    """Per field: values seen, the effective number of values, and the effective number under weighted
    sampling (None: no weights); None when no field has values."""
    fields = [f for f in fields if f[1]]
    if not fields:
        return None
    digest = inputs_digest("balance", [list(f) for f in fields], title)
    if drawn_from(path, digest):
        return path
    import numpy as np

    y = np.arange(len(fields))[::-1]
    fig, ax = _figure(6, 0.9 + 0.55 * len(fields), [f[0] for f in fields])
    ax.barh(y + 0.27, [f[1] for f in fields], height=0.27, color="#c8c8c8", label="values seen")
    ax.barh(y, [f[2] for f in fields], height=0.27, color="#4c72b0", label="effective (chunks)")
    if any(f[3] is not None for f in fields):
        ax.barh(y - 0.27, [f[3] or 0.0 for f in fields], height=0.27, color="#55a868", label="effective (weighted)")
    ax.set_yticks(y, [f[0] for f in fields])
    ax.set_title(title)
    ax.set_xlabel("number of values")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path, digest)
