"""PNG plots of the dataset's distributions (matplotlib, Agg backend)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

from processing.atomic import partial_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = partial_path(path)
    fig.savefig(tmp, dpi=80, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    tmp.replace(path)
    return path


def histogram(values: Sequence[float], path: Path, title: str, xlabel: str, bins: int = 20) -> Optional[Path]:
    """A histogram, or None when there is nothing to plot."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("chunks")
    return _save(fig, path)


def bars(counts: Counter, path: Path, title: str, top: int = 25) -> Optional[Path]:
    """Horizontal bars of the most common labels, or None when there are none."""
    if not counts:
        return None
    items = counts.most_common(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.28 * len(items)))
    ax.barh([str(k) for k, _ in items], [v for _, v in items], color="#55a868")
    ax.set_title(title)
    ax.set_xlabel("chunks")
    return _save(fig, path)
