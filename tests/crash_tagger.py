"""A plug-in tagger (analyse.tagger=python:crash_tagger:factory) that kills its own worker process on
audio of one length: how a song that crashes its worker (a segfault in a native library, the
out-of-memory killer) looks to the executor. Importable by the worker processes because tests/ is on
sys.path before the first pool starts."""
from __future__ import annotations

import os
import signal

KILL_SECONDS = (24.5, 25.5)  # the drum-bass clip (25.0 s)


def factory(weights):
    def tag(audio):
        if KILL_SECONDS[0] <= audio.duration_s <= KILL_SECONDS[1]:
            os.kill(os.getpid(), signal.SIGKILL)
        return {}

    return tag
