"""Imported once by the local executor's fork server, so that the worker processes forked from it start
warm: the first analysis in a fresh process spends ~8 s on lazy imports (librosa's submodules,
pyloudnorm, essentia) and first calls; done here once, every worker shares the result.

It imports the stages the pipeline's tasks run, not ``processing.pipeline`` itself: the pipeline
chooses an executor, so importing it from here would close a circle (a worker imports the pipeline,
which costs milliseconds once these are loaded, when its first task arrives)."""
from __future__ import annotations

import logging
import os

from .local import WARM_ENV  # (this module warms up when imported: only the fork server imports it)


def warm_up(what: str = "all") -> None:
    try:
        import numpy as np  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from .. import outputs, report  # noqa: F401
        from ..chunk import stage  # noqa: F401
        from ..describe import describe  # noqa: F401
        from ..separate import stage as separate_stage  # noqa: F401

        if what == "stages":
            return
        import scipy.fft  # noqa: F401  (the beat network's spectra)
        import torch  # noqa: F401  (the networks and the stem levels; ~2 s, which the build's driver no longer pays)

        from ..analyse import analyse  # noqa: F401
        from ..analyse.features import measure
        from ..types import AudioData

        t = np.arange(3 * 44100) / 44100.0
        measure(AudioData((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100))
    except Exception:  # a worker that starts cold still works
        logging.getLogger("music_mixer").debug("worker warm-up failed", exc_info=True)


warm_up(os.environ.get(WARM_ENV, "all"))
