"""The Hugging Face Hub as downloads see it: the endpoint, the offline switch, and a quick reachability check.

Read from the environment at each call (huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, at
import), so a setting made after import still counts.
"""
from __future__ import annotations

import os
from typing import Optional

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 10.0  # one metadata request: an endpoint that does not answer fails this soon


def hub_offline(offline: bool = False) -> bool:
    """An explicit offline flag, or huggingface_hub's own switch."""
    return offline or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def error_words(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def unreachable(repo_id: str, filename: str, revision: Optional[str] = None) -> Optional[str]:
    """Why ``filename`` of ``repo_id`` cannot be fetched from the endpoint (None when it can), asked in one
    request without huggingface_hub's backoff, which spends ~25 s on a dead endpoint before giving up."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = hub_endpoint()
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=CONNECT_TIMEOUT_S, endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, unknown host, an HTTP error from the Hub
        return f"{endpoint} cannot be reached or refused {url}: {error_words(exc)}"
    return None
