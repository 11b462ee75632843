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
    ("[generic] x: Unable to download webpage: [Errno -3] Temporary failure in name resolution", "dns_unreachable"),
    ("[download] Got error: 300000 bytes read, 1018404 more expected", "incomplete"),  # '404' inside a count
    ("[download] Got error: HTTPConnectionPool(host='127.0.0.1', port=8): Read timed out.", "network"),
])
def test_network_failures_are_permanent_or_transient_by_kind(message, kind):
    from processing.ingest.failures import PERMANENT_KINDS, TRANSIENT_KINDS

    failure = classify_download_error(DownloadError(f"ERROR: {message}"))
    assert failure.kind == kind
    assert (kind in PERMANENT_KINDS) != (kind in TRANSIENT_KINDS)
    assert "caused by" not in failure.reason and "please report" not in failure.reason


DNS_DOWN = """
import json, sys, time
from pathlib import Path
from processing.config import IngestConfig
from processing.ingest.download import DownloadStore, download_item
from processing.ingest.failures import FailureLog, IngestFailure
from processing.types import Failure
root = Path(sys.argv[1])
cfg = IngestConfig(retries=3, retry_backoff_s=4.0, socket_timeout_s=5.0)
start = time.perf_counter()
try:
    download_item("http://songs.music-mixer.example/song.mp3", cfg, DownloadStore(root))
    out = {"kind": None}
except IngestFailure as exc:
    out = {"kind": exc.kind, "reason": exc.reason}
    log = FailureLog(root / "failures.jsonl")
    log.append(Failure(item="http://songs.music-mixer.example/song.mp3", stage="ingest", kind=exc.kind, reason=exc.reason))
    out["skipped_next_run"] = FailureLog(root / "failures.jsonl").failed_before("http://songs.music-mixer.example/song.mp3") is not None
out["elapsed"] = time.perf_counter() - start
print(json.dumps(out))
"""


def test_an_unreachable_dns_server_fails_at_once_and_is_tried_again_next_run(tmp_path):
    """A real resolver that cannot reach its DNS server: the download runs in a network namespace of its own
    (unshare: no interface is up, so /etc/resolv.conf's server is unreachable and getaddrinfo says EAI_AGAIN)."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode:
        pytest.skip("no unshare -rn here (user and network namespaces): cannot make the DNS server unreachable")
    repo = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(["unshare", "-rn", sys.executable, "-c", DNS_DOWN, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["kind"] == "dns_unreachable", out
    assert "no DNS server answered" in out["reason"] and "Temporary failure in name resolution" in out["reason"]
    assert out["elapsed"] < 4.0, out  # not 4 + 8 + 16 s of backoff: retrying cannot bring a resolver back
    assert out["skipped_next_run"] is False  # the next run tries it again (the network may be back)
