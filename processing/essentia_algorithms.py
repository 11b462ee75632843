"""essentia's algorithms one at a time, without importing ``essentia.standard``.

Importing ``essentia.standard`` builds a Python class for each of essentia's ~280 algorithms: 1.1 s in every
process that uses one (a build's driver for the fingerprints, each worker for the analysis; on a 2-core machine
that is a second of every build's start). A build uses four. ``algorithm`` wraps only the one asked for, with
the conversions ``essentia.standard``'s wrapper applies to it: ``essentia.common.convertData`` on each parameter
and input to the type the algorithm declares, float64 arrays narrowed to float32, non-contiguous arrays copied;
its result is the algorithm's own. Hand-written because essentia offers no way to load one algorithm; where its
low-level interface is missing, ``essentia.standard`` is used. ``tests/test_analyse.py`` checks every algorithm
a build uses, output for output, against ``essentia.standard``'s on real clips.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _quiet_essentia() -> Any:
    """essentia, with its INFO chatter (printed at import and by some algorithms) switched off."""
    import essentia

    essentia.log.infoActive = False
    return essentia


def _as_input(value: Any) -> Any:
    """What ``essentia.standard`` does to a NumPy argument before converting it."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        if not value.flags["C_CONTIGUOUS"]:
            value = value.copy()
    return value


def algorithm(name: str, **params: Any) -> Callable[..., Any]:
    """essentia's algorithm ``name`` configured with ``params``: called with its inputs, it returns its outputs (one
    value, or a tuple of several), as ``getattr(essentia.standard, name)(**params)`` does. Not thread-safe (as
    essentia's algorithms): one per thread."""
    _quiet_essentia()
    try:
        from essentia import _essentia, common

        algo = _essentia.Algorithm(name)
        types = [common.Edt(algo.inputType(n)) for n in algo.inputNames()]
        algo.__configure__(**{k: common.convertData(_as_input(v), algo.paramType(k)) for k, v in params.items()})
    except (ImportError, AttributeError):  # an essentia without this interface
        import essentia.standard

        return getattr(essentia.standard, name)(**params)

    def compute(*args: Any) -> Any:
        if len(args) != len(types):
            raise ValueError(f"{name} takes {len(types)} input(s), {len(args)} given")
        return algo.__compute__(*[common.convertData(_as_input(a), t) for a, t in zip(args, types)])

    return compute
