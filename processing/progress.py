"""Progress of a build on the terminal: songs done (of those known), chunks, audio hours per hour, ETA."""
from __future__ import annotations

import sys
import time
from typing import Optional

from tqdm import tqdm


class BuildProgress:
    """A tqdm bar over songs. The total is the number of sources until ingest has expanded playlists and
    folders; tqdm's ETA follows from the songs' pace. ``enabled=False`` prints nothing."""

    def __init__(self, sources: int, label: str, enabled: bool = True):
        self.started = time.perf_counter()
        self.audio_s = 0.0
        self.chunks = 0
        self.taken = 0
        self.ingest_done = False
        self.nodes: dict[str, int] = {}  # host -> songs done there
        self.bar: Optional[tqdm] = tqdm(total=max(1, sources), desc=label, unit="song", file=sys.stderr,
                                        dynamic_ncols=True, leave=False) if enabled else None

    def song_taken(self) -> None:
        self.taken += 1
        if self.bar is not None and self.taken > self.bar.total:
            self.bar.total = self.taken
            self.bar.refresh()

    def ingest_finished(self, songs: int) -> None:
        """Ingest's stream is over: the songs it gave are all there is."""
        self.ingest_done = True
        if self.bar is not None:
            self.bar.total = max(1, songs)
            self.bar.refresh()

    def song_done(self, chunks: int, audio_s: float, worker: str = "") -> None:
        """A song is done; ``worker`` (host:pid) counts it for its node (shown when there are several)."""
        self.chunks += chunks
        self.audio_s += audio_s
        if worker:
            node = worker.rsplit(":", 1)[0]
            self.nodes[node] = self.nodes.get(node, 0) + 1
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.update()

    def postfix(self) -> str:
        """Cluster totals (chunks, audio hours per hour) and, on several nodes, the songs each has done."""
        hours = (time.perf_counter() - self.started) / 3600.0
        text = f"{self.chunks} chunks, {self.audio_s / 3600.0 / max(hours, 1e-9):.0f} audio h/h"
        if len(self.nodes) > 1:
            text += "; songs per node: " + ", ".join(f"{n} {c}" for n, c in sorted(self.nodes.items()))
        return text

    def skipped(self) -> None:
        """A source that will not become a song (failed or duplicate) still counts towards the total."""
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
