"""Imported once by the local executor's fork server, so that the worker processes forked from it start
warm: the first analysis in a fresh process spends ~8 s on lazy imports (librosa's submodules,
pyloudnorm, essentia) and first calls; done here once, every worker shares the result."""
from __future__ import annotations

import logging


def warm_up() -> None:
    try:
        import numpy as np

        from .. import pipeline  # noqa: F401
        from ..analyse import analyse  # noqa: F401
        from ..analyse.features import measure
        from ..chunk import stage  # noqa: F401
        from ..describe import describe  # noqa: F401
        from ..types import AudioData

        t = np.arange(3 * 44100) / 44100.0
        measure(AudioData((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100))
    except Exception:  # a worker that starts cold still works
        logging.getLogger("music_mixer").debug("worker warm-up failed", exc_info=True)


warm_up()
