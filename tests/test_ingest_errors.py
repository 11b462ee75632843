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
