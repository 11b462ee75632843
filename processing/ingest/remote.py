"""One ingest item run away from the driver (a Ray task on any node), the driver keeping the indexes.

The driver hands the task what its indexes know of the item (the download and playlist records of its URL,
an earlier failure); the task downloads, checks, hashes and fingerprints it exactly as ``stream._process``
does here, into the same download folder (a shared path), and hands back the outcome with the index records
it made (its *journal*), which the driver alone writes (``replay``): one writer for downloads.jsonl,
playlists.jsonl and the download archive, however many nodes download.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..config import IngestConfig
from ..types import Failure
from .download import INDEX, PLAYLISTS, DownloadStore
from .failures import FailureLog


@dataclass
class ItemState:
    """What the driver's indexes know of one item (plain data: it travels with the task)."""

    downloads: dict[str, dict]
    playlists: dict[str, dict]
    failed_before: Optional[Failure]


def item_state(item: Any, store: DownloadStore, failures: FailureLog) -> ItemState:
    url = item.url or item.spec.location
    known = {url: store.downloads[url]} if url in store.downloads else {}
    listed = {url: store.playlists[url]} if url in store.playlists else {}
    return ItemState(known, listed, failures.failed_before(item.display))


class JournalStore(DownloadStore):
    """The download index as one task sees it: the driver's records of its item, and every record the task
    makes, kept in ``journal`` instead of being written (the driver writes them, see ``replay``)."""

    def __init__(self, root: Path, state: ItemState):
        super().__init__(root, records=(state.downloads, state.playlists))
        self.journal: list[tuple[str, dict]] = []

    def _append(self, name: str, record: dict) -> None:
        self.journal.append((name, record))

    def forget(self, url: str) -> None:
        self.downloads.pop(url, None)
        self.journal.append(("forget", {"url": url}))


class _Earlier:
    """The driver's answer to ``FailureLog.failed_before`` for the task's one item."""

    def __init__(self, failure: Optional[Failure]):
        self.failure = failure

    def failed_before(self, _item: str) -> Optional[Failure]:
        return self.failure


def run_item(item: Any, cfg: IngestConfig, download_dir: Path, state: ItemState,
             fingerprints: Optional[Path]) -> tuple[Any, list[tuple[str, dict]]]:
    """``stream._process`` for one item, away from the driver: (outcome, the index records it made)."""
    from .stream import _process

    store = JournalStore(download_dir, state)
    try:
        return _process(item, cfg, store, _Earlier(state.failed_before), fingerprints), store.journal
    finally:
        store.close()


def replay(journal: list[tuple[str, dict]], store: DownloadStore) -> None:
    """Write a task's index records into the driver's index, in the order the task made them."""
    for name, record in journal:
        if name == "forget":
            store.forget(record["url"])
        elif name == INDEX:
            store.downloads[record["url"]] = record
            store._append(INDEX, record)
        elif name == PLAYLISTS:
            store.playlists[record["url"]] = record
            store._append(PLAYLISTS, record)
