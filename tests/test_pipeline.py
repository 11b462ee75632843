"""The whole build on real clips: chunk counts, format, failures that don't stop it, and the cache."""
from __future__ import annotations

import functools
import http.server
import json
import threading

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from processing.config import load_config
from processing.pipeline import run_build
from processing.types import SourceSpec

from conftest import DRUM_BASS, SONG_WITH_VOCALS


def make_cfg(tmp_path, *overrides):
    base = [f"out_dir={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}", "separate.model=none",
            "analyse.enabled=false", "build.exports=[]", "progress=false"]
    return load_config(None, base + list(overrides))


@pytest.fixture()
def sources(shared_audio, tmp_path):
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes((shared_audio / DRUM_BASS).read_bytes()[:2000])  # a truncated download
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio at all\n" * 50)
    return [
        SourceSpec(str(shared_audio / SONG_WITH_VOCALS), artist="Karissa Hobbs", licence="CC-BY-4.0"),
        SourceSpec(str(shared_audio / DRUM_BASS), genre="hip hop"),
        SourceSpec(str(corrupt)),
        SourceSpec(str(text)),
        SourceSpec(str(tmp_path / "missing.wav")),
    ]


def test_build_writes_32k_mono_chunks_a_table_and_reports_every_failure(tmp_path, sources):
    result = run_build(make_cfg(tmp_path), sources)
    rows = pq.read_table(result.table_path).to_pylist()
    by_song: dict[str, list] = {}
    for row in rows:
        by_song.setdefault(row["source_title"], []).append(row)
    karissa = sorted(by_song["Lets Go Fishin"], key=lambda r: r["chunk_index"])
    assert [(r["start_s"], r["end_s"]) for r in karissa] == [(0, 30), (30, 60), (60, 90), (90, 120)]
    assert karissa[0]["source_artist"] == "Karissa Hobbs" and karissa[0]["licence"] == "CC-BY-4.0"
    [drums] = by_song["Choice - Drum-bass"]
    assert drums["duration_s"] == pytest.approx(25.0, abs=0.05) and drums["source_genre"] == "hip hop"
    for row in rows:
        info = sf.info(str(result.out_dir / row["audio_path"]))
        assert (info.samplerate, info.channels) == (32000, 1)
        assert info.frames == round(row["duration_s"] * 32000)
        assert row["separation_model"] == "none" and row["sample_rate"] == 32000
    failures = {f["item"].rsplit("/", 1)[-1]: f for f in json.loads(result.report_path.read_text())["failures"]}
    assert set(failures) == {"corrupt.ogg", "notes.mp3", "missing.wav"}
    assert "no such file" in failures["missing.wav"]["reason"]
    assert "not decodable" in failures["notes.mp3"]["reason"] or "Invalid data" in failures["notes.mp3"]["reason"]
    lines = (result.out_dir / "failures.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert "FAILURES (3)" in result.report.summary()


def test_rerun_reuses_every_stage_and_a_changed_rate_redoes_only_chunking(tmp_path, shared_audio):
    sources = [SourceSpec(str(shared_audio / DRUM_BASS))]
    first = run_build(make_cfg(tmp_path), sources)
    assert first.report.cache_misses == {"separate": 1, "chunk": 1}
    second = run_build(make_cfg(tmp_path), sources)
    assert second.report.cache_misses == {}
    assert second.report.cache_hits == {"separate": 1, "chunk": 1}
    assert [r["audio_sha256"] for r in second.rows] == [r["audio_sha256"] for r in first.rows]
    third = run_build(make_cfg(tmp_path, "convert.sample_rate=16000"), sources)
    assert third.report.cache_hits == {"separate": 1} and third.report.cache_misses == {"chunk": 1}
    assert sf.info(str(third.out_dir / third.rows[0]["audio_path"])).samplerate == 16000


def test_tail_policy_pad_on_the_real_133s_song(tmp_path, shared_audio):
    result = run_build(make_cfg(tmp_path, "chunk.tail_policy=pad"), [SourceSpec(str(shared_audio / SONG_WITH_VOCALS))])
    assert len(result.rows) == 5
    last = result.rows[-1]
    assert last["start_s"] == 120 and last["padded_s"] == pytest.approx(17.0, abs=0.05)
    assert sf.info(str(result.out_dir / last["audio_path"])).frames == 30 * 32000


@pytest.fixture()
def http_server(shared_audio):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_audio))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_sources_are_downloaded_with_yt_dlp_from_a_local_server(tmp_path, http_server):
    url = f"{http_server}/{DRUM_BASS}"
    result = run_build(make_cfg(tmp_path), [SourceSpec(url, title="Choice"), SourceSpec(f"{http_server}/nope.ogg")])
    assert len(result.rows) == 1
    assert result.rows[0]["url"] == url and result.rows[0]["source_title"] == "Choice"
    [failure] = result.report.failures
    assert failure.item.endswith("/nope.ogg") and failure.stage == "ingest" and "404" in failure.reason


def test_a_build_where_every_song_fails_says_so_instead_of_exporting_nothing(tmp_path):
    result = run_build(load_config(None, [f"out_dir={tmp_path / 'out'}", "separate.model=none", "progress=false"]),
                       [SourceSpec(str(tmp_path / "missing.wav"))])
    kinds = {(f.stage, f.kind) for f in result.report.failures}
    assert kinds == {("ingest", "missing"), ("build", "empty")}
    assert "no song gave a chunk" in result.report.summary()
    assert not (result.out_dir / "data").exists()
