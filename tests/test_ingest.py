"""Ingest of URLs: real yt-dlp against a real HTTP server on 127.0.0.1 serving the real clips."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import BIRD, DRUM_BASS, PIANO, REPO, SPEECH, VIBE_ACE, VIBE_ACE_LOWQ
from http_fixtures import FixtureServer, rss_feed, wait_for
from processing.config import IngestConfig
from processing.ingest.stream import ingest, ingest_one
from processing.types import SourceSpec


@pytest.fixture()
def server():
    srv = FixtureServer().start()
    yield srv
    srv.stop()


def fast_cfg(**kw) -> IngestConfig:
    base = dict(retries=2, retry_backoff_s=0.05, socket_timeout_s=5.0, concurrency=3)
    base.update(kw)
    return IngestConfig(**base)


def test_direct_audio_url_downloads_with_its_info_json(server, shared_audio, tmp_path):
    url = server.add_audio("/music/vibe-ace.ogg", shared_audio / VIBE_ACE)
    result = ingest([SourceSpec(url, genre="jazz")], fast_cfg(), tmp_path)
    (song,) = result.songs
    assert song.song_id == "generic-vibe-ace"
    assert song.audio_path == tmp_path / "generic-vibe-ace.ogg"
    assert song.audio_path.read_bytes() == (shared_audio / VIBE_ACE).read_bytes()
    assert song.duration_s == pytest.approx(61.46, abs=0.01) and song.sample_rate == 44100
    assert song.metadata.url == url and song.metadata.extractor == "Generic" and song.metadata.genre == "jazz"
    info = json.loads((tmp_path / "generic-vibe-ace.info.json").read_text())
    assert info["id"] == "vibe-ace"
    assert "generic vibe-ace" in (tmp_path / "archive.txt").read_text().splitlines()
    assert not [p for p in (tmp_path / ".partial").rglob("*") if p.is_file()]  # nothing left half-done


def test_rerun_needs_no_network_and_the_archive_alone_prevents_refetching(server, shared_audio, tmp_path):
    urls = [server.add_audio("/m/drums.ogg", shared_audio / DRUM_BASS), server.add_audio("/m/piano.ogg", shared_audio / PIANO)]
    first = ingest([SourceSpec(u) for u in urls], fast_cfg(), tmp_path)
    hits = dict(server.hits)
    assert hits == {"/m/drums.ogg": 2, "/m/piano.ogg": 2}  # one extraction request + one download each
    again = ingest([SourceSpec(u) for u in urls], fast_cfg(), tmp_path)
    assert server.hits == hits  # found on disk with its metadata: not one request
    assert [s.song_id for s in again.songs] == [s.song_id for s in first.songs]
    assert [s.metadata.title for s in again.songs] == ["drums", "piano"]
    # without our index, yt-dlp's download archive still stops the download (only the extraction request is made)
    (tmp_path / "downloads.jsonl").unlink()
    third = ingest([SourceSpec(u) for u in urls], fast_cfg(), tmp_path)
    assert server.hits == {k: v + 1 for k, v in hits.items()}
    assert [s.content_hash for s in third.songs] == [s.content_hash for s in first.songs]


def test_rss_feed_expands_to_entries_in_order_with_a_limit(server, shared_audio, tmp_path):
    entries = [server.add_audio(f"/ep/{i}.ogg", shared_audio / name) for i, name in enumerate((PIANO, DRUM_BASS, SPEECH))]
    feed = server.add("/feed.rss", rss_feed("Show", [(f"ep-{i}", f"Episode {i}", u) for i, u in enumerate(entries)]),
                      "application/rss+xml")
    result = ingest([SourceSpec(feed, licence="CC-BY-4.0")], fast_cfg(playlist_limit=2), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-ep-0", "generic-ep-1"]
    assert [s.metadata.title for s in result.songs] == ["Episode 0", "Episode 1"]
    assert all(s.metadata.licence == "CC-BY-4.0" for s in result.songs)
    assert [s.metadata.url for s in result.songs] == entries[:2]
    assert "/ep/2.ogg" not in server.hits
    # the expansion is kept: a rerun makes no request, not even for the feed
    hits = dict(server.hits)
    ingest([SourceSpec(feed)], fast_cfg(playlist_limit=2), tmp_path)
    assert server.hits == hits


def test_feed_durations_reject_items_before_any_request(server, shared_audio, tmp_path):
    ok = server.add_audio("/ep/ok.ogg", shared_audio / DRUM_BASS)
    long_ = server.add_audio("/ep/long.ogg", shared_audio / PIANO)
    feed = server.add("/f.rss", rss_feed("Show", [("a", "ok", ok, 25), ("b", "long", long_, 4000)]), "application/rss+xml")
    result = ingest([SourceSpec(feed)], fast_cfg(max_duration_s=600), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-a"]
    (failure,) = result.failures
    assert failure.kind == "too_long" and failure.item == long_ and "4000.0 s > max_duration_s 600 s" in failure.reason
    assert "/ep/long.ogg" not in server.hits


def test_404_fails_with_a_reason_is_logged_and_skipped_on_rerun(server, shared_audio, tmp_path):
    good = server.add_audio("/ok.ogg", shared_audio / DRUM_BASS)
    missing = server.url("/gone.ogg")
    result = ingest([SourceSpec(missing), SourceSpec(good)], fast_cfg(), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-ok"]
    (failure,) = result.failures
    assert (failure.item, failure.stage, failure.kind) == (missing, "ingest", "unavailable")
    assert "HTTP 404" in failure.reason
    assert server.hits["/gone.ogg"] == 1  # a 404 is not retried
    logged = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [(r["item"], r["kind"]) for r in logged] == [(missing, "unavailable")]

    again = ingest([SourceSpec(missing), SourceSpec(good)], fast_cfg(), tmp_path)
    assert server.hits["/gone.ogg"] == 1 and again.failures[0].kind == "unavailable"
    assert "earlier run" in again.failures[0].reason
    server.add_audio("/gone.ogg", shared_audio / PIANO)  # it came back
    third = ingest([SourceSpec(missing), SourceSpec(good)], fast_cfg(retry_failed=True), tmp_path)
    assert [s.song_id for s in third.songs] == ["generic-gone", "generic-ok"] and not third.failures


def test_429_and_503_are_retried_with_backoff(server, shared_audio, tmp_path):
    url = server.add_audio("/busy.ogg", shared_audio / DRUM_BASS, fail_first=[429, 503])
    result = ingest([SourceSpec(url)], fast_cfg(retries=3), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-busy"] and not result.failures
    assert server.hits["/busy.ogg"] == 4  # 429, 503, then extraction and download


def test_retries_run_out_with_a_clear_reason(server, shared_audio, tmp_path):
    url = server.add_audio("/down.ogg", shared_audio / DRUM_BASS, fail_first=[503] * 10)
    result = ingest([SourceSpec(url)], fast_cfg(retries=2), tmp_path)
    (failure,) = result.failures
    assert failure.kind == "server_error" and "HTTP 503" in failure.reason and "after 3 attempts" in failure.reason
    assert server.hits["/down.ogg"] == 3


def test_truncated_and_non_audio_urls_fail_with_reasons(server, shared_audio, tmp_path):
    cut = server.add("/cut.ogg", (shared_audio / VIBE_ACE).read_bytes()[:400_000], "audio/ogg")
    text = server.add("/readme.txt", b"these are not the songs you are looking for\n" * 50, "text/plain")
    page = server.add("/page.html", b"<html><head><title>x</title></head><body>no media</body></html>", "text/html")
    good = server.add_audio("/good.ogg", shared_audio / DRUM_BASS)
    result = ingest([SourceSpec(u) for u in (cut, text, page, good)], fast_cfg(), tmp_path)
    kinds = {f.item: f.kind for f in result.failures}
    assert kinds == {cut: "truncated", text: "not_audio", page: "unsupported"}
    reasons = {f.item: f.reason for f in result.failures}
    assert "truncated Ogg stream" in reasons[cut]
    assert "not an audio file" in reasons[text]
    assert [s.song_id for s in result.songs] == ["generic-good"]
    assert not (tmp_path / "generic-cut.ogg").exists()  # a bad download is not kept for reuse


def test_ingest_one_downloads_a_single_url(server, shared_audio, tmp_path):
    url = server.add_audio("/one.ogg", shared_audio / SPEECH)
    song = ingest_one(SourceSpec(url, song_id="mine"), fast_cfg(), tmp_path)
    assert song.song_id == "mine" and song.sample_rate == 16000 and song.channels == 1


def test_vibe_ace_from_two_urls_is_one_song(server, shared_audio, tmp_path):
    urls = [server.add_audio("/hq.ogg", shared_audio / VIBE_ACE), server.add_audio("/lq.ogg", shared_audio / VIBE_ACE_LOWQ),
            server.add_audio("/bird.ogg", shared_audio / BIRD)]
    result = ingest([SourceSpec(u) for u in urls], fast_cfg(min_duration_s=1.0), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-hq", "generic-bird"]
    (dup,) = result.duplicate_items
    assert (dup.song_id, dup.kept_song_id, dup.item) == ("generic-lq", "generic-hq", urls[1]) and dup.similarity > 0.95


_CHILD = """
import sys, json
sys.path.insert(0, {repo!r})
from pathlib import Path
from processing.config import IngestConfig
from processing.ingest.stream import ingest
from processing.types import SourceSpec
urls = json.loads(sys.argv[1])
ingest([SourceSpec(u) for u in urls], IngestConfig(concurrency=3, socket_timeout_s=60, retries=0), Path(sys.argv[2]))
"""


def test_killed_build_resumes_without_refetching_complete_downloads(server, shared_audio, tmp_path):
    urls = [server.add_audio("/k/a.ogg", shared_audio / DRUM_BASS),
            server.add_audio("/k/slow.ogg", shared_audio / PIANO, stall_after=200_000),
            server.add_audio("/k/c.ogg", shared_audio / SPEECH)]
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO)), json.dumps(urls), str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=open(tmp_path / "child.err", "w"), start_new_session=True)
    try:
        def quick_ones_recorded() -> bool:  # the index record is written last, after the file is in place
            index = tmp_path / "downloads.jsonl"
            text = index.read_text() if index.is_file() else ""
            return (f'"{urls[0]}"' in text and f'"{urls[2]}"' in text
                    and any((tmp_path / ".partial").glob("generic-slow*.part")))

        done = wait_for(quick_ones_recorded, timeout=30)
        assert done, ("the two quick downloads did not finish while the slow one stalled: "
                      + (tmp_path / "child.err").read_text()[-2000:])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not (tmp_path / "generic-slow.ogg").exists()  # the stalled one never reached its final place
    hits = dict(server.hits)
    server.release()
    result = ingest([SourceSpec(u) for u in urls], fast_cfg(), tmp_path)
    assert [s.song_id for s in result.songs] == ["generic-a", "generic-slow", "generic-c"]
    assert result.songs[1].audio_path.read_bytes() == (shared_audio / PIANO).read_bytes()
    assert server.hits["/k/a.ogg"] == hits["/k/a.ogg"] and server.hits["/k/c.ogg"] == hits["/k/c.ogg"]
    assert server.hits["/k/slow.ogg"] > hits["/k/slow.ogg"]


def test_proxy_and_cookies_are_passed_to_yt_dlp(server, shared_audio, tmp_path):
    # the fixture server doubles as an HTTP proxy: a proxied request names the full URL as its path
    server.add_audio("http://music.invalid/via-proxy.ogg", shared_audio / DRUM_BASS)
    result = ingest([SourceSpec("http://music.invalid/via-proxy.ogg")], fast_cfg(proxy=server.base), tmp_path / "p")
    assert [s.song_id for s in result.songs] == ["generic-via-proxy"]

    url = server.add_audio("/members/song.ogg", shared_audio / DRUM_BASS, require_cookie="session=s3cret")
    refused = ingest([SourceSpec(url)], fast_cfg(), tmp_path / "c1")
    assert [f.kind for f in refused.failures] == ["forbidden"] and "HTTP 403" in refused.failures[0].reason
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\ts3cret\n")
    allowed = ingest([SourceSpec(url)], fast_cfg(cookies_file=cookies, rate_limit="50M", sleep_interval_s=0.01),
                     tmp_path / "c2")
    assert [s.song_id for s in allowed.songs] == ["generic-song"]


def test_bad_ingest_settings_are_refused_before_any_download(tmp_path):
    from processing.config import ConfigError

    for bad, word in ((dict(rate_limit="fast"), "rate_limit"), (dict(cookies_file=tmp_path / "none.txt"), "cookies_file"),
                      (dict(concurrency=0), "concurrency"), (dict(min_duration_s=10, max_duration_s=5), "min_duration_s")):
        with pytest.raises(ConfigError, match=word):
            ingest([SourceSpec("http://127.0.0.1:9/x.ogg")], fast_cfg(**bad), tmp_path)


def test_iter_ingest_yields_a_song_while_a_later_download_is_still_running(server, shared_audio, tmp_path):
    from processing.ingest.stream import iter_ingest
    from processing.types import Song

    fast = server.add_audio("/s/fast.ogg", shared_audio / DRUM_BASS)
    slow = server.add_audio("/s/slow.ogg", shared_audio / PIANO, stall_after=100_000)
    items = iter_ingest([SourceSpec(fast), SourceSpec(slow)], fast_cfg(), tmp_path)
    first = next(items)
    assert isinstance(first, Song) and first.song_id == "generic-fast"
    assert not (tmp_path / "generic-slow.ogg").exists()  # still stalled: separation could already start on `first`
    server.release()  # the stalled transfer is cut; yt-dlp retries it and completes
    rest = list(items)
    assert [s.song_id for s in rest] == ["generic-slow"]
    assert rest[0].audio_path.read_bytes() == (shared_audio / PIANO).read_bytes()


def test_info_files_written_before_the_cookie_fix_are_scrubbed_on_the_next_run(shared_audio, tmp_path):
    import secrets
    from pathlib import Path

    import yt_dlp

    from processing.ingest.download import ydl_options

    cookie = "members-" + secrets.token_hex(12)
    server = FixtureServer().start()
    try:
        url = server.add_audio("/members/song.ogg", shared_audio / VIBE_ACE, require_cookie=f"session={cookie}")
        cookies = tmp_path / "cookies.txt"
        cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{cookie}\n")
        cfg = IngestConfig(cookies_file=cookies, retries=0)
        dl = tmp_path / "dl"
        # what a download did before the fix: yt-dlp wrote its own info json, and it carries the cookies
        with yt_dlp.YoutubeDL(dict(ydl_options(cfg, dl), writeinfojson=True)) as ydl:
            info = ydl.extract_info(url, download=True)
            audio = Path(info["requested_downloads"][0]["filepath"])
            info_json = Path(ydl.prepare_filename(info, "infojson"))
        record = {"url": url, "file": audio.name, "info_json": info_json.name, "id": info["id"], "extractor": "generic"}
        (dl / "downloads.jsonl").write_text(json.dumps(record) + "\n")
        assert cookie in info_json.read_text()  # the old file really holds it
        fetched = server.hits["/members/song.ogg"]

        result = ingest([SourceSpec(url)], cfg, dl)
        assert [s.metadata.url for s in result.songs] == [url] and not result.failures
        assert server.hits["/members/song.ogg"] == fetched  # found on disk: no request
        assert json.loads(info_json.read_text())["id"] == info["id"]  # still the item's info
        holding = [str(p) for p in dl.rglob("*") if p.is_file() and cookie.encode() in p.read_bytes()]
        assert holding == []
    finally:
        server.stop()
