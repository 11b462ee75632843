"""Ingest of local files, folders and URL lists; duplicates by fingerprint; bad files (no network)."""
from __future__ import annotations

import base64
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import BIRD, DRUM_BASS, PIANO, SONG_WITH_VOCALS, SPEECH, VIBE_ACE, VIBE_ACE_LOWQ
from processing.ingest.audio_check import check_audio, check_audio_head
from processing.config import IngestConfig
from processing.ingest.failures import IngestFailure
from processing.ingest.fingerprint import (DuplicateIndex, cached_fingerprint, decode_fingerprint,
                                           fingerprint_file, similarity)
from processing.ingest.stream import Duplicate, ingest, iter_ingest
from processing.types import Failure, Song, SourceSpec

ALL_CLIPS = [SONG_WITH_VOCALS, VIBE_ACE, VIBE_ACE_LOWQ, DRUM_BASS, PIANO, SPEECH, BIRD]


@pytest.fixture(scope="module")
def prints(shared_audio):
    return {name: fingerprint_file(shared_audio / name) for name in ALL_CLIPS}


def test_vibe_ace_encodings_match_and_every_other_pair_does_not(prints):
    assert similarity(prints[VIBE_ACE], prints[VIBE_ACE_LOWQ]) > 0.98  # 0.995 measured
    for a, b in itertools.combinations(ALL_CLIPS, 2):
        if {a, b} == {VIBE_ACE, VIBE_ACE_LOWQ}:
            continue
        assert similarity(prints[a], prints[b]) < 0.65, (a, b)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _compress(items: list[int], algorithm: int = 1) -> str:
    """Chromaprint's compressor (fingerprint_compressor.cpp), written out plainly to check the decoder."""
    normal, exceptional, previous = [], [], 0
    for value in items:
        x, bit, last = value ^ previous, 1, 0
        while x:
            if x & 1:
                normal.append(min(bit - last, 7))
                if bit - last >= 7:
                    exceptional.append(bit - last - 7)
                last = bit
            x >>= 1
            bit += 1
        normal.append(0)
        previous = value

    def pack(values, width):
        bits = "".join(format(v, f"0{width}b")[::-1] for v in values)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8][::-1], 2) for i in range(0, len(bits), 8))

    header = bytes([algorithm]) + len(items).to_bytes(3, "big")
    return _b64(header + pack(normal, 3) + pack(exceptional, 5))


def test_compressed_fingerprints_decode_to_raw_items():
    # Chromaprint's own decompressor test vectors (tests/test_fingerprint_decompressor.cpp)
    for expected, data in [([1], [0, 0, 0, 1, 1]), ([7], [0, 0, 0, 1, 73, 0]), ([1 << 6], [0, 0, 0, 1, 7, 0]),
                           ([1 << 8], [0, 0, 0, 1, 7, 2]), ([1, 0], [0, 0, 0, 2, 65, 0]), ([1, 1], [0, 0, 0, 2, 1, 0])]:
        algorithm, items = decode_fingerprint(_b64(bytes(data)))
        assert algorithm == 0 and items.tolist() == expected
    rng = np.random.default_rng(7)
    items = rng.integers(0, 2**32, 300, dtype=np.uint64).tolist() + [0, 0, 2**31, 2**31 + 1, 2**32 - 1]
    algorithm, decoded = decode_fingerprint(_compress(items))
    assert algorithm == 1 and decoded.dtype == np.uint32 and decoded.tolist() == items
    assert decode_fingerprint("AQAAAA")[1].size == 0  # what Chromaprint gives for audio under ~3 s
    with pytest.raises(ValueError, match="truncated"):
        decode_fingerprint(_compress(items)[:200])


def test_short_clip_has_an_empty_print_and_fingerprints_are_cached(prints, shared_audio, tmp_path):
    assert prints[BIRD].items.size == 0  # 2.7 s: shorter than Chromaprint's window
    assert 470 <= prints[VIBE_ACE].items.size <= 480  # 61.5 s at ~8 items per second
    fp = cached_fingerprint(shared_audio / VIBE_ACE, "ab" * 32, tmp_path)
    assert np.array_equal(fp.items, prints[VIBE_ACE].items)
    again = cached_fingerprint(tmp_path / "gone.ogg", "ab" * 32, tmp_path)  # from the cache: the file is not read
    assert np.array_equal(again.items, fp.items) and again.duration_s == pytest.approx(61.46, abs=0.01)


def _formats(shared_audio: Path, folder: Path) -> list[Path]:
    """Real clips (Ogg Vorbis: a 133 s stereo song, longer than the 120 s fingerprinted; 22 kHz mono; 2.7 s), and
    excerpts of the song as 16-bit WAV (125 s), 24-bit FLAC, 6-channel float WAV and MP3."""
    audio, rate = sf.read(str(shared_audio / SONG_WITH_VOCALS), dtype="float32", always_2d=True)
    paths = [shared_audio / name for name in (SONG_WITH_VOCALS, VIBE_ACE_LOWQ, BIRD)]
    for name, data, subtype in (("s16.wav", audio[5 * rate: 130 * rate], "PCM_16"),
                                ("s24.flac", audio[30 * rate: 60 * rate], "PCM_24"),
                                ("six.wav", np.tile(audio[40 * rate: 60 * rate] * 0.5, 3), "FLOAT"),
                                ("clip.mp3", audio[50 * rate: 62 * rate], None)):
        paths.append(folder / name)
        sf.write(str(paths[-1]), data, rate, subtype=subtype)
    return paths


def test_the_check_keeps_the_head_the_fingerprint_would_read_so_a_file_is_decoded_once(shared_audio, tmp_path,
                                                                                      monkeypatch):
    from processing.ingest import fingerprint

    paths = _formats(shared_audio, tmp_path)
    heads = {}
    for path in paths:
        _, head = heads[path] = check_audio_head(path, fingerprint.LENGTH_S)
        mono, rate, duration = fingerprint._read_mono(path, fingerprint.LENGTH_S)
        assert head is not None and head.mono.dtype == np.float32 and head.mono.flags["C_CONTIGUOUS"], path.name
        assert np.array_equal(head.mono.view(np.uint32), mono.view(np.uint32)), path.name  # bit for bit
        assert (head.rate, head.duration_s) == (rate, duration), path.name
    assert check_audio_head(paths[0], 0.0) == (check_audio(paths[0]), None)  # no head asked: none kept
    from_head = fingerprint.fingerprint_file(paths[0], head=heads[paths[0]][1])
    from_file = fingerprint.fingerprint_file(paths[0])
    assert from_head.items.size > 900 and np.array_equal(from_head.items, from_file.items)  # 120 s of 133
    assert from_head.duration_s == from_file.duration_s

    # ingest fingerprints every file from its check's head: the fingerprint reads no file itself
    monkeypatch.setattr(fingerprint, "_read_mono", lambda *a: pytest.fail(f"read again: {a[0]}"))
    result = ingest([SourceSpec(str(p)) for p in paths[-4:]] + [SourceSpec(str(shared_audio / VIBE_ACE_LOWQ))],
                    IngestConfig(), tmp_path / "dl")
    assert not result.failures and len(result.songs) == 2  # the four excerpts of one song are one recording
    assert [Path(d.item).name for d in result.duplicate_items] == ["s24.flac", "six.wav", "clip.mp3"]


def test_duplicate_index_finds_first_kept_song_and_survives_a_shift(prints):
    index = DuplicateIndex(threshold=0.9)
    for name in (SONG_WITH_VOCALS, VIBE_ACE, PIANO):
        assert index.match(prints[name]) is None
        index.add(name, prints[name])
    kept, score = index.match(prints[VIBE_ACE_LOWQ])
    assert kept == VIBE_ACE and score > 0.95
    shifted = type(prints[VIBE_ACE_LOWQ])(0.0, prints[VIBE_ACE_LOWQ].items[37:])  # 4.6 s cut from the start
    assert index.match(shifted)[0] == VIBE_ACE
    assert index.match(prints[DRUM_BASS]) is None


def _link(folder: Path, name: str, target: Path) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def test_local_folder_expands_recursively_in_order_and_catches_the_reencode(shared_audio, tmp_path):
    lib = tmp_path / "library"
    _link(lib, "a/01.ogg", shared_audio / VIBE_ACE)
    _link(lib, "a/02.OGG", shared_audio / PIANO)
    _link(lib, "b/deeper/03.ogg", shared_audio / VIBE_ACE_LOWQ)
    _link(lib, "b/04.ogg", shared_audio / BIRD)
    _link(lib, "c.ogg", shared_audio / DRUM_BASS)
    (lib / "notes.txt").write_text("not a song")
    (lib / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    result = ingest([SourceSpec(str(lib), genre="jazz")], IngestConfig(concurrency=2), tmp_path / "dl")

    assert [Path(s.audio_path).name for s in result.songs] == ["01.ogg", "02.OGG", "c.ogg"]
    assert all(s.metadata.genre == "jazz" for s in result.songs)
    assert [(f.kind, Path(f.item).name) for f in result.failures] == [("too_short", "04.ogg")]
    assert "2.7 s < min_duration_s" in result.failures[0].reason
    (dup,) = result.duplicate_items
    assert Path(dup.item).name == "03.ogg" and dup.kept_song_id == result.songs[0].song_id and dup.similarity > 0.95
    assert result.duplicates == {dup.song_id: result.songs[0].song_id}
    # ids are content hashes: a second run gives the same ids
    again = ingest([SourceSpec(str(lib))], IngestConfig(), tmp_path / "dl")
    assert [s.song_id for s in again.songs] == [s.song_id for s in result.songs]


def test_first_in_source_order_is_kept_and_same_id_twice_is_a_duplicate(shared_audio, tmp_path):
    sources = [SourceSpec(str(shared_audio / VIBE_ACE_LOWQ), song_id="low", artist="Kevin MacLeod"),
               SourceSpec(str(shared_audio / VIBE_ACE), song_id="high"),
               SourceSpec(str(shared_audio / DRUM_BASS), song_id="low")]
    result = ingest(sources, IngestConfig(), tmp_path / "dl")
    assert [s.song_id for s in result.songs] == ["low"]
    assert result.songs[0].metadata.artist == "Kevin MacLeod" and result.songs[0].channels == 1
    assert [(d.song_id, d.kept_song_id) for d in result.duplicate_items] == [("high", "low"), ("low", "low")]
    assert result.duplicate_items[1].similarity == 1.0


def test_dedup_off_keeps_both_encodings(shared_audio, tmp_path):
    sources = [SourceSpec(str(shared_audio / VIBE_ACE)), SourceSpec(str(shared_audio / VIBE_ACE_LOWQ))]
    result = ingest(sources, IngestConfig(dedup=False), tmp_path / "dl")
    assert len(result.songs) == 2 and not result.duplicate_items


def test_bad_files_fail_with_specific_reasons_and_the_rest_goes_on(shared_audio, tmp_path):
    truncated = tmp_path / "cut.ogg"
    truncated.write_bytes((shared_audio / VIBE_ACE).read_bytes()[:600_000])
    fake = tmp_path / "fake.mp3"
    fake.write_bytes(b"<html>definitely not an mp3</html>" * 200)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    x = (np.random.default_rng(0).standard_normal((44100 * 8, 2)) * 0.1).astype(np.float32)
    sf.write(tmp_path / "full.wav", x, 44100, subtype="PCM_16")
    cut_wav = tmp_path / "cut.wav"
    cut_wav.write_bytes((tmp_path / "full.wav").read_bytes()[: 44 + 4 * 44100 * 3])
    sources = [SourceSpec(str(p)) for p in (truncated, fake, empty, cut_wav, tmp_path / "missing.ogg")]
    sources.append(SourceSpec(str(tmp_path / "full.wav")))
    result = ingest(sources, IngestConfig(), tmp_path / "dl")
    kinds = {Path(f.item).name: f.kind for f in result.failures}
    assert kinds == {"cut.ogg": "truncated", "fake.mp3": "not_audio", "empty.wav": "empty",
                     "cut.wav": "truncated", "missing.ogg": "missing"}
    reasons = {Path(f.item).name: f.reason for f in result.failures}
    assert "no end-of-stream page" in reasons["cut.ogg"] and "cut.ogg" in reasons["cut.ogg"]
    assert "declares 8.0 s, only 3.0 s present" in reasons["cut.wav"]
    assert [Path(s.audio_path).name for s in result.songs] == ["full.wav"]
    assert result.songs[0].duration_s == pytest.approx(8.0)
    # failures are logged for the report and for reruns
    logged = [json.loads(line) for line in (tmp_path / "dl" / "failures.jsonl").read_text().splitlines()]
    assert {Path(r["item"]).name for r in logged} == set(kinds) and all(r["stage"] == "ingest" for r in logged)


def test_every_real_clip_passes_the_completeness_check(shared_audio):
    for name in ALL_CLIPS:
        duration, rate, channels = check_audio(shared_audio / name)
        assert duration > 2.0
    with pytest.raises(IngestFailure) as err:
        check_audio(shared_audio / "nope.ogg")
    assert err.value.kind == "missing"


def test_limits_and_licences(shared_audio, tmp_path):
    cfg = IngestConfig(max_duration_s=100.0, allowed_licences=["CC-BY-4.0"])
    sources = [SourceSpec(str(shared_audio / SONG_WITH_VOCALS), licence="CC-BY-4.0"),
               SourceSpec(str(shared_audio / PIANO), licence="CC-BY-NC-3.0"),
               SourceSpec(str(shared_audio / DRUM_BASS), licence="CC-BY-4.0")]
    result = ingest(sources, cfg, tmp_path / "dl")
    assert [(f.kind, Path(f.item).name) for f in result.failures] == [("too_long", SONG_WITH_VOCALS), ("licence", PIANO)]
    assert "133.0 s > max_duration_s 100 s" in result.failures[0].reason
    assert [s.duration_s for s in result.songs] == [pytest.approx(25.03, abs=0.01)]


def test_url_list_file_and_streaming_order(shared_audio, tmp_path):
    listing = tmp_path / "songs.txt"
    listing.write_text(f"# my list\n{shared_audio / PIANO}\n\n{shared_audio / DRUM_BASS}\n{shared_audio / VIBE_ACE}\n")
    items = list(iter_ingest([SourceSpec(str(listing), licence="CC-BY"), SourceSpec(str(shared_audio / BIRD))],
                             IngestConfig(concurrency=3), tmp_path / "dl"))
    songs = [i for i in items if isinstance(i, Song)]
    assert [Path(s.audio_path).name for s in songs] == [PIANO, DRUM_BASS, VIBE_ACE]
    assert all(s.metadata.licence == "CC-BY" for s in songs)
    assert [type(i) for i in items].count(Failure) == 1 and not any(isinstance(i, Duplicate) for i in items)


def test_empty_folder_and_empty_list_fail_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no songs here")
    (tmp_path / "none.txt").write_text("# nothing yet\n")
    result = ingest([SourceSpec(str(tmp_path / "empty")), SourceSpec(str(tmp_path / "none.txt"))], IngestConfig(),
                    tmp_path / "dl")
    assert [(Path(f.item).name, f.kind) for f in result.failures] == [("empty", "no_audio"), ("none.txt", "no_audio")]
    assert ".ogg" in result.failures[0].reason and not result.songs


def test_titles_from_file_names_keep_their_dots(shared_audio, tmp_path):
    lib = tmp_path / "library"
    _link(lib, "Mr. Blue Sky.ogg", shared_audio / VIBE_ACE)
    _link(lib, "E.L.O._-_Mr._Blue_Sky.hq.ogg", shared_audio / PIANO)
    _link(lib, "Kevin_MacLeod_-_Vibe_Ace.lowq-22k-mono.ogg", shared_audio / DRUM_BASS)
    result = ingest([SourceSpec(str(lib))], IngestConfig(dedup=False), tmp_path / "dl")
    assert [(s.metadata.artist, s.metadata.title) for s in result.songs] == [
        ("E.L.O.", "Mr. Blue Sky"), ("Kevin MacLeod", "Vibe Ace"), (None, "Mr. Blue Sky")]


def _m4a(tmp_path: Path, faststart: bool) -> Path:
    import subprocess

    from processing import audio_io

    t = np.arange(44100 * 6) / 44100
    sf.write(tmp_path / "src.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    whole = tmp_path / "whole.m4a"
    extra = ["-movflags", "+faststart"] if faststart else []
    subprocess.run([audio_io.ffmpeg_exe(), "-v", "error", "-y", "-i", str(tmp_path / "src.wav"), "-c:a", "aac", *extra,
                    str(whole)], check=True)
    assert check_audio(whole)[0] == pytest.approx(6.0, abs=0.1)  # the whole file is fine
    return whole


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
def test_a_truncated_m4a_is_reported_as_truncated(tmp_path, faststart):
    whole = _m4a(tmp_path, faststart)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 55 // 100])  # a download cut off at 55 %
    with pytest.raises(IngestFailure) as err:
        check_audio(cut)
    assert err.value.kind == "truncated", err.value.reason
    assert "cut.m4a: truncated MP4/M4A: its 'mdat' box declares" in err.value.reason


def test_an_m4a_cut_where_its_index_starts_is_truncated(tmp_path):
    data = _m4a(tmp_path, faststart=False).read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(data[: data.rfind(b"moov") - 4])  # every box whole, the index gone
    with pytest.raises(IngestFailure, match=r"cut\.m4a: truncated MP4/M4A: it has no 'moov' box") as err:
        check_audio(cut)
    assert err.value.kind == "truncated"
