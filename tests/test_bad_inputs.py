"""The bad-input corpus: every kind of broken, odd or hostile input a user can hand the builder,
generated here, built beside good songs in one build, each with the outcome it must get.

One build (``corpus``) holds two good songs and every per-item kind below; a second build
(``baseline``) holds only the good songs. Each kind must end as exactly what its row says:
``handled`` (its song is in the dataset, analysed), a failure of that ``kind`` whose reason
matches ``message`` and names the item, or a duplicate. The good songs must come out of both
builds byte for byte and value for value the same. Download failures are checked for their retry
policy too: permanent ones (refused connection, unknown host, 404, 403) are tried once, transient
ones (429, 5xx, a hanging server, a cut or stalled transfer) are retried with backoff.

Kinds that stop a build before any work (a YAML syntax error, an unknown config key, impossible
numbers, an empty sources file) are run through ``scripts/build.py``: exit status 2, a message
naming the file or key, nothing written.

Everything is synthetic and short (9 s songs, 8 s chunks, ``separate.model=none``), HTTP is a
real server on 127.0.0.1 driven by real yt-dlp.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import REPO
from http_fixtures import FixtureServer
from processing import audio_io
from processing.config import IngestConfig, load_config
from processing.demo.synth import synth_song
from processing.ingest.stream import ingest
from processing.pipeline import run_build
from processing.types import SourceSpec

SONG_S = 9.0  # every synthetic song: one 8 s chunk, its 1 s tail dropped
RETRIES = 2  # ingest.retries in the corpus build: a transient failure is tried 3 times
BUILD_SETTINGS = ["separate.model=none", "progress=false", "chunk.chunk_s=8", "ingest.min_duration_s=3",
                  f"ingest.retries={RETRIES}", "ingest.retry_backoff_s=0.05", "ingest.socket_timeout_s=1",
                  "ingest.concurrency=4", "describe.seed=7"]


# ----------------------------------------------------------------------------- making inputs

class Corpus:
    """Where the inputs are written and served; every song it makes is a different piece of music
    (own tempo, key, seed), so no handled kind can be mistaken for a duplicate of another."""

    def __init__(self, root: Path, server: FixtureServer):
        self.root, self.server = root, server
        self.root.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def music(self, rate: int = 44100, channels: int = 2, seconds: float = SONG_S) -> np.ndarray:
        """(frames, channels) float32: a synthetic instrumental with a clear beat."""
        self._n += 1
        keys = ["C", "D", "E", "F", "G", "A", "B", "C#", "D#", "F#", "G#", "A#"]
        song = synth_song(bpm=90.0 + 7 * self._n, key=keys[self._n % 12], scale="minor" if self._n % 2 else "major",
                          duration_s=seconds, sample_rate=rate, vocals=False, seed=self._n)
        mix = song.mix.samples  # (2, frames)
        if channels > 2:  # every channel a differently weighted copy: real multichannel content
            mix = np.stack([mix[c % 2] * (1.0 - 0.08 * c) for c in range(channels)])
        return np.ascontiguousarray(mix.T[:, :channels] if channels <= 2 else mix.T, dtype=np.float32)

    def write(self, name: str, samples: np.ndarray, rate: int = 44100, subtype: str = "PCM_16") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), samples, rate, subtype=subtype)
        return path

    def file(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def encode(self, name: str, codec: str) -> Path:
        """A real encoding (ffmpeg) of a fresh song."""
        wav = self.write(f"src-{name}.wav", self.music())
        path = self.root / name
        subprocess.run([audio_io.ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-c:a", codec, str(path)], check=True)
        wav.unlink()
        return path

    def truncated(self, name: str, codec: str) -> Path:
        full = self.encode(f"full-{name}", codec)
        data = full.read_bytes()
        full.unlink()
        path = self.root / name
        path.write_bytes(data[: len(data) * 55 // 100])  # a download cut off at 55 %
        return path

    def serve(self, route: str, body: bytes | Path, content_type: str = "audio/wav", **kw) -> str:
        return self.server.add(route, body, content_type, **kw)


@dataclass
class Case:
    name: str
    make: Callable[[Corpus], SourceSpec]
    outcome: str  # "handled", "duplicate", or the failure kind
    message: str = ""  # regex the failure reason must match
    attempts: Optional[int] = None  # HTTP: requests the route must have seen (None: not checked)
    route: Optional[str] = None
    title: Optional[str] = None  # handled: the source title the row must keep, verbatim
    spec: Optional[SourceSpec] = field(default=None, repr=False)


def _spec(path: Path | str, **kw) -> SourceSpec:
    return SourceSpec(str(path), **kw)


def _nan(c: Corpus) -> SourceSpec:
    x = c.music()
    x[4410:4420, 1] = np.nan
    return _spec(c.write("nan.wav", x, subtype="FLOAT"))


def _inf(c: Corpus) -> SourceSpec:
    x = c.music()
    x[22050, 0] = np.inf
    return _spec(c.write("inf.wav", x, subtype="FLOAT"))


def _symlink_loop(c: Corpus) -> SourceSpec:
    a, b = c.root / "loop-a.wav", c.root / "loop-b.wav"
    os.symlink(b, a)
    os.symlink(a, b)
    return _spec(a)


def _folder_named_wav(c: Corpus) -> SourceSpec:
    (c.root / "song.wav").mkdir()
    (c.root / "song.wav" / "notes.txt").write_text("not a song\n")
    return _spec(c.root / "song.wav")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wav_bytes(c: Corpus) -> bytes:
    return c.write(f"served-{c._n}.wav", c.music()).read_bytes()


WEIRD_TITLE = "Ünïcødé 日本語 \"double\" 'single' `tick` $HOME; rm -rf / \\ back\nsecond line\ttab"
DOTDOT_TITLE = "../../../etc/passwd / AC/DC / ..\\..\\windows"
LONG_TITLE = ("a long title " * 80)[:1000]

CASES: list[Case] = [
    # --- files that are not (complete) audio
    Case("zero-byte file", lambda c: _spec(c.file("empty.wav", b"")), "empty", r"empty\.wav: file is empty"),
    Case("text named .mp3", lambda c: _spec(c.file("notes.mp3", b"la la la\n" * 200)), "not_audio",
         r"not an audio file: .*notes\.mp3"),
    Case("RIFF header then garbage", lambda c: _spec(c.file("garbage.wav", b"RIFF\x24\x00\x01\x00WAVEfmt " + bytes(range(256)) * 40)),
         "not_audio", r"not an audio file"),
    Case("truncated ogg", lambda c: _spec(c.truncated("cut.ogg", "libvorbis")), "truncated", r"cut\.ogg: truncated Ogg stream"),
    Case("truncated flac", lambda c: _spec(c.truncated("cut.flac", "flac")), "truncated",
         r"cut\.flac: truncated: header declares 9\.0 s, only \d\.\d s present"),
    Case("truncated wav", lambda c: _spec(c.truncated("cut.wav", "pcm_s16le")), "truncated",
         r"cut\.wav: truncated: header declares 9\.0 s, only 4\.9 s present"),
    Case("truncated mp3", lambda c: _spec(c.truncated("cut.mp3", "libmp3lame")), "truncated",
         r"cut\.mp3: truncated: header declares 9\.0 s, only [45]\.\d s present"),
    Case("NaN samples", _nan, "corrupt", r"nan\.wav: samples are NaN or infinite \(first at 0\.10 s\)"),
    Case("infinite samples", _inf, "corrupt", r"inf\.wav: samples are NaN or infinite \(first at 0\.50 s\)"),
    Case("digital silence", lambda c: _spec(c.write("silence.wav", np.zeros((int(SONG_S * 44100), 2), np.float32))),
         "silent", r"silence\.wav: digital silence: every sample of its 9\.0 s is 0"),
    Case("a 1 s file", lambda c: _spec(c.write("one-second.wav", c.music(seconds=1.0))),
         "too_short", r"too short: 1\.0 s < min_duration_s 3 s"),
    # --- odd but valid audio: must be in the dataset, analysed
    Case("3 channels", lambda c: _spec(c.write("three.wav", c.music(channels=3))), "handled"),
    Case("6 channels (5.1)", lambda c: _spec(c.write("six.wav", c.music(channels=6))), "handled"),
    Case("8 channels (7.1)", lambda c: _spec(c.write("eight.wav", c.music(channels=8))), "handled"),
    Case("8 kHz", lambda c: _spec(c.write("8k.wav", c.music(rate=8000), rate=8000)), "handled"),
    Case("192 kHz", lambda c: _spec(c.write("192k.wav", c.music(rate=192000), rate=192000)), "handled"),
    Case("8-bit wav", lambda c: _spec(c.write("u8.wav", c.music(), subtype="PCM_U8")), "handled"),
    Case("24-bit wav", lambda c: _spec(c.write("s24.wav", c.music(), subtype="PCM_24")), "handled"),
    Case("float wav", lambda c: _spec(c.write("float.wav", c.music(), subtype="FLOAT")), "handled"),
    Case("ogg named .wav", lambda c: _spec(c.encode("really-ogg.ogg", "libvorbis").rename(c.root / "really-ogg.wav")), "handled"),
    # --- paths and names
    Case("folder named song.wav", _folder_named_wav, "no_audio", r"song\.wav: folder holds no files ending in \.wav"),
    Case("symlink loop", _symlink_loop, "symlink_loop", r"loop-a\.wav: symbolic link loop"),
    Case("missing file", lambda c: _spec(c.root / "never-was.flac"), "missing", r"never-was\.flac: no such file"),
    Case("unicode path", lambda c: _spec(c.write("Ünïcødé 日本語 ♫.flac", c.music())), "handled", title="Ünïcødé 日本語 ♫"),
    Case("spaces and quotes in path", lambda c: _spec(c.write("it's a \"quoted\" song.wav", c.music())), "handled",
         title="it's a \"quoted\" song"),
    Case("newline in path", lambda c: _spec(c.write("first\nsecond.wav", c.music())), "handled", title="first\nsecond"),
    Case("unicode, quotes, newline in title", lambda c: _spec(c.write("t-weird.wav", c.music()), title=WEIRD_TITLE),
         "handled", title=WEIRD_TITLE),
    Case("title with ../ and /", lambda c: _spec(c.write("t-dotdot.wav", c.music()), title=DOTDOT_TITLE, artist="../..",
                                                  genre="../x"), "handled", title=DOTDOT_TITLE),
    Case("1,000-character title", lambda c: _spec(c.write("t-long.wav", c.music()), title=LONG_TITLE), "handled",
         title=LONG_TITLE),
    Case("song_id with ../", lambda c: _spec(c.write("t-id.wav", c.music()), song_id="../../outside"),
         "bad_song_id", r"song_id '\.\./\.\./outside' cannot name the song's files"),
    Case("same song listed twice", lambda c: _spec(c.root / "good-1.wav"), "duplicate"),
    # --- over HTTP (real yt-dlp, real server on 127.0.0.1)
    Case("HTTP 404", lambda c: _spec(c.server.url("/gone.wav")), "unavailable", r"^HTTP 404 not found", attempts=1,
         route="/gone.wav"),
    Case("HTTP 403", lambda c: _spec(c.serve("/private.wav", b"x", fail_first=[403] * 10)), "forbidden",
         r"^HTTP 403 access denied", attempts=1, route="/private.wav"),
    Case("HTTP 429 then success", lambda c: _spec(c.serve("/busy.wav", _wav_bytes(c), fail_first=[429])), "handled",
         attempts=3, route="/busy.wav"),
    Case("HTTP 500 then success", lambda c: _spec(c.serve("/flaky.wav", _wav_bytes(c), fail_first=[500])), "handled",
         attempts=3, route="/flaky.wav"),
    Case("HTML page served as audio", lambda c: _spec(c.serve("/page.mp3", b"<!doctype html><html><body>" + b"<p>hi</p>" * 500
                                                              + b"</body></html>", "audio/mpeg")),
         "not_audio", r"not an audio file"),
    Case("server that hangs", lambda c: _spec(c.serve("/hang.wav", b"", hang=True)), "network",
         rf"network error: .*timed out.* \(after {RETRIES + 1} attempts\)", attempts=RETRIES + 1, route="/hang.wav"),
    Case("Content-Length that never arrives", lambda c: _spec(c.serve("/stall.wav", _wav_bytes(c), stall_after=20_000)),
         "network", rf"network error: .*timed out.* \(after {RETRIES + 1} attempts\)", attempts=1 + RETRIES + 1,
         route="/stall.wav"),
    Case("transfer cut short", lambda c: _spec(c.serve("/cut.wav", _wav_bytes(c), cut_after=30_000)), "incomplete",
         rf"transfer cut off before the end: .*30000 bytes read.* \(after {RETRIES + 1} attempts\)",
         attempts=1 + RETRIES + 1, route="/cut.wav"),
    Case("refused connection", lambda c: _spec(f"http://127.0.0.1:{_free_port()}/song.wav"), "connection_refused",
         r"^connection refused \(nothing listens at that address; not retried\)"),
    Case("unresolvable host", lambda c: _spec("http://no-such-host.invalid/song.wav"), "unknown_host",
         r"^unknown host \(the name does not resolve; not retried\).*no-such-host\.invalid"),
]


# ----------------------------------------------------------------------------- the two builds

@dataclass
class Built:
    out: Path
    rows: list[dict]
    report: dict
    failures: dict[str, dict]  # item -> failure record
    duplicates: dict[str, dict]  # item -> duplicate record
    elapsed_s: float


def _run(cfg_dir: Path, specs: list[SourceSpec]) -> Built:
    cfg = load_config(None, [f"out_dir={cfg_dir}", *BUILD_SETTINGS])
    started = time.monotonic()
    result = run_build(cfg, specs)
    elapsed = time.monotonic() - started
    report = json.loads(result.report_path.read_text())
    return Built(result.out_dir, pq.read_table(result.table_path).to_pylist(), report,
                 {f["item"]: f for f in report["failures"]}, {d["item"]: d for d in report["duplicates"]}, elapsed)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    server = FixtureServer().start()
    c = Corpus(root / "inputs", server)
    good = [_spec(c.write("good-1.wav", c.music()), artist="Good Band", genre="jazz"),
            _spec(c.serve("/good-2.wav", _wav_bytes(c)), title="Good Two", licence="CC-BY-4.0")]
    for case in CASES:
        case.spec = case.make(c)
    outside_before = sorted(p.name for p in root.iterdir())
    baseline = _run(root / "baseline", good)
    hits_before = dict(server.hits)
    built = _run(root / "build", [good[0], *[case.spec for case in CASES[:15]], good[1],
                                  *[case.spec for case in CASES[15:]]])
    hits = {k: v - hits_before.get(k, 0) for k, v in server.hits.items()}
    server.stop()
    yield dict(good=good, baseline=baseline, built=built, hits=hits, root=root, outside_before=outside_before)


def _song_rows(built: Built, spec: SourceSpec) -> list[dict]:
    key = "url" if spec.is_url else "source_path"
    return [r for r in built.rows if r[key] == spec.location]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_input_gets_its_outcome(corpus, case):
    built: Built = corpus["built"]
    item = case.spec.location
    if case.outcome == "handled":
        assert item not in built.failures, built.failures.get(item)
        rows = _song_rows(built, case.spec)
        assert len(rows) == 1, f"{case.name}: expected its one chunk in the dataset, got {len(rows)}"
        row = rows[0]
        assert not row["excluded"], f"{case.name}: excluded ({row['exclude_reason']})"
        assert row["sample_rate"] == 32000 and row["channels"] == 1 and row["duration_s"] == pytest.approx(8.0)
        info = sf.info(str(built.out / row["audio_path"]))
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, 8 * 32000)
        # analysed like any song: every measure present and finite (8 channels included: loudness downmixes)
        for column in ("bpm", "loudness_lufs", "song_loudness_lufs", "song_peak_db", "danceability", "brightness_hz"):
            assert row[column] is not None and math.isfinite(row[column]), f"{case.name}: {column} = {row[column]}"
        assert row["bpm"] > 0 and -70 < row["song_loudness_lufs"] < 0 and row["description"]
        if case.title is not None:
            assert row["source_title"] == case.title
        assert (built.out / row["audio_path"]).resolve().is_relative_to(built.out)
    elif case.outcome == "duplicate":
        dup = built.duplicates[item]
        kept = _song_rows(built, case.spec)
        assert item not in built.failures and len(kept) == 1 and dup["duplicate_of"] == kept[0]["song_id"]
    else:
        failure = built.failures.get(item)
        assert failure is not None, f"{case.name}: no failure reported for {item!r}"
        assert (failure["stage"], failure["kind"]) == ("ingest", case.outcome), failure
        assert re.search(case.message, failure["reason"], flags=re.S), failure["reason"]
        assert not _song_rows(built, case.spec)
    if case.attempts is not None:
        assert corpus["hits"].get(case.route) == case.attempts, f"{case.name}: {corpus['hits'].get(case.route)} requests"


@pytest.mark.slow
def test_good_songs_come_out_unchanged_beside_the_bad_ones(corpus):
    baseline, built = corpus["baseline"], corpus["built"]
    for spec in corpus["good"]:
        (before,) = _song_rows(baseline, spec)
        (after,) = _song_rows(built, spec)
        assert not after["excluded"] and after["source_title"] == before["source_title"]
        assert (built.out / after["audio_path"]).read_bytes() == (baseline.out / before["audio_path"]).read_bytes()
        # every fact of the song is the same; its sampling weight is not a fact of the song but of the whole set
        # (curate.weighting balances genres over every chunk of the split), so it moves when other songs come in
        differing = {k: (before[k], after[k]) for k in before if before[k] != after[k] and k != "weight"}
        assert not differing, f"{spec.location}: {differing}"
        assert after["weight"] > 0 and before["weight"] > 0


@pytest.mark.slow
def test_the_report_lists_every_failure_once_and_nothing_escapes_the_build(corpus):
    built, root = corpus["built"], corpus["root"]
    expected = {c.spec.location for c in CASES if c.outcome not in ("handled", "duplicate")}
    assert set(built.failures) == expected
    lines = [json.loads(line) for line in (built.out / "failures.jsonl").read_text().splitlines()]
    assert sorted(r["item"] for r in lines) == sorted(expected)  # once each
    assert built.report["counts"]["duplicates"] == 1
    handled = sum(c.outcome == "handled" for c in CASES) + len(corpus["good"])
    assert built.report["counts"]["songs_in_dataset"] == handled
    # a title or song_id with ../ wrote nothing outside the build; no partial files are left
    assert sorted(p.name for p in root.iterdir()) == sorted(corpus["outside_before"] + ["baseline", "build"])
    leftovers = [p for p in built.out.rglob("*") if p.name.endswith((".partial", ".part", ".tmp"))
                 and ".cache" not in p.relative_to(built.out).parts]
    assert not leftovers
    kinds = {c.outcome for c in CASES}
    print(f"\nbad-input corpus: {len(CASES)} kinds tried ({len(kinds)} outcomes), "
          f"{handled - len(corpus['good'])} handled into the dataset, {len(expected)} reported failures, "
          f"1 duplicate; build {built.elapsed_s:.1f} s")


# ----------------------------------------------------------------------------- retry policy, timed

def test_permanent_download_failures_fail_at_once_and_transient_ones_back_off(tmp_path):
    """With a 10 s backoff, one retry of a permanent failure would take >= 10 s: all four must be
    done before; a 429 twice then success must wait for its backoff (0.3 + 0.6 s) and succeed."""
    server = FixtureServer().start()
    try:
        wav = tmp_path / "song.wav"
        sf.write(str(wav), Corpus(tmp_path, server).music(), 44100)
        permanent = [f"http://127.0.0.1:{_free_port()}/a.wav", "http://no-such-host.invalid/b.wav",
                     server.url("/missing.wav"), server.add("/denied.wav", b"x", "audio/wav", fail_first=[403] * 9)]
        started = time.monotonic()
        result = ingest([SourceSpec(u) for u in permanent],
                        IngestConfig(retries=5, retry_backoff_s=10.0, socket_timeout_s=5, concurrency=1), tmp_path / "p")
        elapsed = time.monotonic() - started
        assert [f.kind for f in result.failures] == ["connection_refused", "unknown_host", "unavailable", "forbidden"]
        assert not any("attempts" in f.reason for f in result.failures)
        assert elapsed < 10.0, f"permanent failures took {elapsed:.1f} s: something was retried"
        assert server.hits["/missing.wav"] == 1 and server.hits["/denied.wav"] == 1

        busy = server.add("/busy.wav", wav, "audio/wav", fail_first=[429, 429])
        started = time.monotonic()
        result = ingest([SourceSpec(busy)], IngestConfig(retries=5, retry_backoff_s=0.3, concurrency=1), tmp_path / "t")
        assert [s.song_id for s in result.songs] == ["generic-busy"] and not result.failures
        assert time.monotonic() - started >= 0.9 and server.hits["/busy.wav"] == 4
    finally:
        server.stop()


# ----------------------------------------------------------------------------- kinds that stop a build before any work

def _build_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "build.py"), *args, "--no-progress"], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("name, files, args, message", [
    ("YAML syntax error in the sources file", {"s.yaml": "songs:\n  - path: a.wav\n   genre: [jazz\n"}, ["s.yaml"],
     r"s\.yaml: not valid YAML at line 3, column 4"),
    ("YAML syntax error in the config file", {"s.txt": "a.wav\n", "c.yaml": "chunk: {chunk_s: 10\n"},
     ["s.txt", "--config", "c.yaml"], r"config c\.yaml: not valid YAML at line 2"),
    ("config file that is a list", {"s.txt": "a.wav\n", "c.yaml": "- chunk\n"}, ["s.txt", "--config", "c.yaml"],
     r"top level must be a mapping"),
    ("unknown config key", {"s.txt": "a.wav\n"}, ["s.txt", "--set", "chunk.chunk_seconds=10"],
     r"chunk: unknown key\(s\) chunk_seconds; known: chunk_s"),
    ("unknown key in the sources file's config block", {"s.yaml": "songs: [a.wav]\nconfig:\n  ingest: {retry: 3}\n"},
     ["s.yaml"], r"ingest: unknown key\(s\) retry"),
    ("chunk.chunk_s=0", {"s.txt": "a.wav\n"}, ["s.txt", "--set", "chunk.chunk_s=0"], r"chunk\.chunk_s must be > 0"),
    ("--chunk-seconds -30", {"s.txt": "a.wav\n"}, ["s.txt", "--chunk-seconds", "-30"], r"chunk\.chunk_s must be > 0"),
    ("chunk.chunk_s=nan", {"s.txt": "a.wav\n"}, ["s.txt", "--set", "chunk.chunk_s=.nan"], r"finite.*chunk\.chunk_s"),
    ("empty sources file", {"s.yaml": ""}, ["s.yaml"], r"s\.yaml: the sources file lists no songs"),
    ("empty .txt sources", {"s.txt": "# nothing yet\n\n"}, ["s.txt"], r"s\.txt: the sources file lists no songs"),
    ("songs: []", {"s.yaml": "songs: []\n"}, ["s.yaml"], r"s\.yaml: the sources file lists no songs"),
    ("song_id with ../ in the sources file", {"s.yaml": "- {path: a.wav, song_id: ../x}\n"}, ["s.yaml"],
     r"s\.yaml entry 1: song_id '\.\./x' cannot name"),
    ("missing cookies file", {"s.txt": "a.wav\n"}, ["s.txt", "--set", "ingest.cookies_file=/no/such/cookies.txt"],
     r"ingest\.cookies_file /no/such/cookies\.txt does not exist"),
])
def test_a_build_that_cannot_work_stops_before_any_work(tmp_path, name, files, args, message):
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    proc = _build_cli(*args, "--out", "out", "--model", "none", cwd=tmp_path)
    assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stderr[-1500:]}"
    assert "Traceback" not in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "out").exists()


NEGATIVE_OK = {"chunk.silence_db", "analyse.silence_db", "analyse.stem_presence_db", "analyse.residual_vocal_db",
               "separate.seed", "describe.seed"}  # dB thresholds and seeds: negative is meaningful


def _numeric_keys() -> list[str]:
    data = load_config(None, []).to_dict()
    return [f"{section}.{key}" for section, values in data.items() if isinstance(values, dict)
            for key, value in values.items() if isinstance(value, (int, float)) and not isinstance(value, bool)
            and f"{section}.{key}" not in NEGATIVE_OK]


def test_every_negative_number_is_refused_naming_its_key():
    """Each numeric setting set to -1 must be refused by validation (the CLI turns that into exit 2)."""
    from processing.config import ConfigError

    keys = _numeric_keys()
    assert len(keys) >= 30
    accepted = []
    for key in keys:
        cfg = load_config(None, [f"{key}=-1"])
        try:
            cfg.validate()
            accepted.append(key)
        except ConfigError as exc:
            assert key.split(".")[-1] in str(exc) or key in str(exc), (key, str(exc))
    assert not accepted, f"negative values accepted: {accepted}"
