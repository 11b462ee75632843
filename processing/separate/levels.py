"""Per-window stem energies: what analysis needs of the stems, measured where the stems are.

Instrument presence (a stem's energy against the mix's over a chunk) and residual-vocal QC (the
instrumental's projection on the vocal stem, 0.5 s window by window) only need sums over windows.
Measuring them right after separation, on the GPU when the model ran there, lets the cache keep the
instrumental and a few kilobytes of levels instead of every stem as full-rate audio. Works on torch
tensors (any device) and numpy arrays alike.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

from ..types import StemLevels

if TYPE_CHECKING:  # torch is imported where levels are measured: a build's driver need not import it (~2 s)
    import torch

WINDOW_S = 0.5  # the residual-vocal projection's window; chunk lengths that are multiples of it sum exactly
VOCAL_STEMS = ("vocals",)

Array = Union[np.ndarray, "torch.Tensor"]


def _windows(x: Array, window: int, count: int) -> torch.Tensor:
    """Channel average of (channels, frames) or (frames,), zero-padded and cut into (count, window), float64."""
    import torch

    x = torch.as_tensor(x)
    mono = x.to(torch.float64).mean(dim=0) if x.dim() == 2 else x.to(torch.float64)
    return torch.nn.functional.pad(mono, (0, count * window - mono.shape[-1])).view(count, window)


def levels_on_device(mix: Array, stems: dict[str, Array], instrumental: Array, sample_rate: int,
                     window_s: float = WINDOW_S) -> tuple[list[str], "torch.Tensor", tuple[int, int, int]]:
    """The levels as one (rows, windows) float64 tensor on the arrays' device, with the rows' names and
    (rate, window, frames): a single small copy brings them to the host, whenever the caller wants."""
    import torch

    frames = int(torch.as_tensor(mix).shape[-1])
    window = max(1, int(round(window_s * sample_rate)))
    count = max(1, -(-frames // window))
    inst = _windows(instrumental, window, count)
    names, rows = ["mix", "instrumental"], [_windows(mix, window, count), inst]
    rows = [(w * w).sum(dim=1) for w in rows]
    for name, audio in stems.items():
        w = _windows(audio, window, count)
        names.append(f"stem:{name}")
        rows.append((w * w).sum(dim=1))
        if name in VOCAL_STEMS:
            names.append("vocal_dot")
            rows.append((inst * w).sum(dim=1))
    return names, torch.stack(rows), (int(sample_rate), window, frames)


def levels_from_host(names: list[str], rows: np.ndarray, meta: tuple[int, int, int]) -> StemLevels:
    by_name = {n: np.asarray(r, dtype=np.float64) for n, r in zip(names, rows)}
    stems = {n.split(":", 1)[1]: r for n, r in by_name.items() if n.startswith("stem:")}
    rate, window, frames = meta
    return StemLevels(rate, window, frames, by_name["mix"], stems, by_name["instrumental"], by_name.get("vocal_dot"))


def stem_levels(mix: Array, stems: dict[str, Array], instrumental: Array, sample_rate: int,
                window_s: float = WINDOW_S) -> StemLevels:
    """Levels of one separated song; arrays are (channels, frames) at ``sample_rate``, on one device."""
    names, rows, meta = levels_on_device(mix, stems, instrumental, sample_rate, window_s)
    return levels_from_host(names, rows.cpu().numpy(), meta)
