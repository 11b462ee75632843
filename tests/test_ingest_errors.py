"""yt-dlp's own error types and messages (as its extractors raise them) map to specific failure kinds."""
from __future__ import annotations

import pytest
from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError

from processing.ingest.failures import classify_download_error


def _as_download_error(exc: Exception) -> DownloadError:
    """Wrap an extractor error the way YoutubeDL.report_error does."""
    try:
        raise exc
    except Exception:
        import sys

        return DownloadError(f"ERROR: {exc}", sys.exc_info())


@pytest.mark.parametrize("exc, kind", [
    (ExtractorError("[youtube] abc: Private video. Sign in if you've been granted access to this video", expected=True), "private"),
    (GeoRestrictedError("The uploader has not made this video available in your country."), "geo_blocked"),
    (ExtractorError("[youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.", expected=True), "age_gated"),
    (ExtractorError("[youtube] abc: Video unavailable. This video has been removed by the uploader", expected=True), "unavailable"),
    (ExtractorError("[youtube] abc: This live event will begin in a few moments.", expected=True), "live"),
    (ExtractorError("Unsupported URL: https://example.com/page", expected=True), "unsupported"),
    (ExtractorError("[youtube] abc: Requested format is not available. Use --list-formats", expected=True), "no_audio"),
    (ExtractorError("[generic] x: Unable to download webpage: The read operation timed out"), "network"),
])
def test_kinds(exc, kind):
    failure = classify_download_error(_as_download_error(exc))
    assert failure.kind == kind
    assert failure.reason and not failure.reason.startswith("ERROR")


@pytest.mark.parametrize("message, kind", [
    ("[generic] x: Unable to download webpage: HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new "
     "connection: [Errno 111] Connection refused (caused by TransportError(\"...\"))", "connection_refused"),
    ("[generic] x: Unable to download webpage: HTTPConnection(host='a.invalid', port=80): Failed to resolve "
     "'a.invalid' ([Errno -2] Name or service not known)", "unknown_host"),
    ("[generic] x: Unable to download webpage: [Errno -3] Temporary failure in name resolution", "network"),
    ("[download] Got error: 300000 bytes read, 1018404 more expected", "incomplete"),  # '404' inside a count
    ("[download] Got error: HTTPConnectionPool(host='127.0.0.1', port=8): Read timed out.", "network"),
])
def test_network_failures_are_permanent_or_transient_by_kind(message, kind):
    from processing.ingest.failures import PERMANENT_KINDS, TRANSIENT_KINDS

    failure = classify_download_error(DownloadError(f"ERROR: {message}"))
    assert failure.kind == kind
    assert (kind in PERMANENT_KINDS) != (kind in TRANSIENT_KINDS)
    assert "caused by" not in failure.reason and "please report" not in failure.reason
