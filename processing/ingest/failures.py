"""Ingest failures: one exception type with a short kind, a classifier for yt-dlp
errors, and the ``failures.jsonl`` log that lets a rerun skip items that failed before.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Optional

from ..types import Failure

# Kinds whose outcome depends on the configuration (limits) or on this machine's network, not on the remote
# item: a rerun always re-checks them, so changing a limit (or the network coming back) takes effect.
CONFIG_DEPENDENT_KINDS = frozenset({"too_short", "too_long", "licence", "dns_unreachable"})
# Kinds worth trying again after a pause within one run (ingest.retries times, exponential backoff).
TRANSIENT_KINDS = frozenset({"rate_limited", "server_error", "network", "incomplete"})
# Kinds that another attempt will not change: they fail at once, never after a backoff. A host that
# refuses connections or does not resolve is dead for this run (a playlist of dead links must not
# cost minutes each); 404/410 and 401/403 are the server's answer, not an accident.
# No DNS server answering (EAI_AGAIN, "Temporary failure in name resolution") fails every host alike: waiting
# minutes per item of a playlist would not bring it back, so it fails at once too, and the next run tries again.
PERMANENT_KINDS = frozenset({"connection_refused", "unknown_host", "dns_unreachable", "unavailable", "forbidden"})


EARLIER_RUN = "failed in an earlier run, not retried (set ingest.retry_failed to retry): "


class IngestFailure(Exception):
    """An item cannot be ingested: ``kind`` is short and machine-readable, ``reason`` says why in words."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status behind a yt-dlp error, if any (yt-dlp keeps the cause in exc_info / cause)."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        status = getattr(e, "status", None) or getattr(e, "code", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
        info = getattr(e, "exc_info", None)
        if info and len(info) > 1 and isinstance(info[1], BaseException):
            todo.append(info[1])
        todo.extend(x for x in (getattr(e, "cause", None), e.__cause__, e.__context__) if isinstance(x, BaseException))
    return None


_PATTERNS: list[tuple[str, tuple[str, ...]]] = [
    ("private", ("private video", "this video is private", "is private", "members-only", "members only")),
    ("geo_blocked", ("not available in your country", "geo restrict", "geo-restrict", "geoblock", "from your location")),
    ("age_gated", ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users", "age_limit")),
    ("live", ("live event will begin", "is a live stream", "premieres in")),
    ("unsupported", ("unsupported url",)),
    ("no_audio", ("requested format is not available", "no video formats found", "no audio")),
    ("unavailable", ("video unavailable", "not available", "has been removed", "does not exist", "no longer available",
                     "account has been terminated", "404", "not found")),
    ("incomplete", ("content too short", "did not get any data", "incomplete read", "incompleteread",
                    "more expected")),  # ContentTooShortError: "N bytes read, M more expected"
    ("connection_refused", ("connection refused", "errno 111]", "errno 61]", "winerror 10061")),
    # EAI_NONAME / EAI_NODATA: the name does not exist
    ("unknown_host", ("name or service not known", "nodename nor servname", "no address associated with hostname",
                      "getaddrinfo failed", "errno -2]", "errno -5]")),
    # EAI_AGAIN: no DNS server answered (an unreachable resolver, no network)
    ("dns_unreachable", ("temporary failure in name resolution", "errno -3]", "eai_again")),
    ("network", ("timed out", "timeout", "connection reset", "temporary failure",
                 "network is unreachable", "remote end closed", "urlopen error", "connection aborted",
                 "transporterror")),
]

_REASON_PREFIX = {
    "connection_refused": "connection refused (nothing listens at that address; not retried)",
    "unknown_host": "unknown host (the name does not resolve; not retried)",
    "dns_unreachable": ("no DNS server answered (name resolution failed for now; not retried in this run, "
                        "tried again by the next run)"),
    "network": "network error",
    "incomplete": "transfer cut off before the end",
}


def classify_download_error(exc: BaseException) -> IngestFailure:
    """Turn a yt-dlp DownloadError (or any exception from it) into an IngestFailure with a specific kind."""
    import re

    message = re.sub(r"^ERROR:\s*", "", str(exc)).strip() or type(exc).__name__
    # yt-dlp appends its bug-report boilerplate, and repeats the cause: "(caused by <...>)" / "(caused by X(...))"
    message = re.sub(r";?\s*please report this issue on .*$", "", message, flags=re.S | re.I)
    message = re.sub(r"\s*\(caused by (<[^>]*>|\w+\(.*\))\)\s*$", "", message, flags=re.S)
    status = _http_status(exc)
    cause = (getattr(exc, "exc_info", None) or (None, None))[1]  # None when raised without exc_info
    cls_names = {c.__name__ for c in type(cause or exc).__mro__}
    if "GeoRestrictedError" in cls_names:
        return IngestFailure("geo_blocked", message)
    if status == 429:
        return IngestFailure("rate_limited", f"HTTP 429 Too Many Requests: {message}")
    if status is not None and status >= 500:
        return IngestFailure("server_error", f"HTTP {status} server error: {message}")
    if status in (404, 410):
        return IngestFailure("unavailable", f"HTTP {status} not found: {message}")
    if status in (401, 403):
        return IngestFailure("forbidden", f"HTTP {status} access denied: {message}")
    low = message.lower()
    for kind, needles in _PATTERNS:
        if any(re.search(rf"(?<!\d){n}(?!\d)", low) if n.isdigit() else n in low for n in needles):
            prefix = _REASON_PREFIX.get(kind)
            return IngestFailure(kind, f"{prefix}: {message}" if prefix else message)
    return IngestFailure("download", message)


class FailureLog:
    """Append-only ``failures.jsonl``; the last record of an item is the one that counts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.previous: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                if isinstance(record, dict) and "item" in record:
                    self.previous[record["item"]] = record

    def failed_before(self, item: str) -> Optional[Failure]:
        record = self.previous.get(item)
        if record is None or record.get("kind") in CONFIG_DEPENDENT_KINDS:
            return None
        return Failure(item=item, stage="ingest", kind=record.get("kind", "error"),
                       reason=f"{EARLIER_RUN}{record.get('reason')}")

    def append(self, failure: Failure) -> None:
        record = dict(failure.to_dict(), time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
