"""Torch's thread count for one inference call, put back afterwards (analysis runs one worker process per
core, so its networks use ``analyse.tagger_threads``, 1 by default)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional


@contextlib.contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads and threads != before:
            torch.set_num_threads(before)
