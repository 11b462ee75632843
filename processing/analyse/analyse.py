"""Analyse: measure every chunk (and its song) and flag what is not usable music.

In three steps, so that a build spreads a song over its workers (processing.pipeline): ``measure_audio``
(the heavy pass over a chunk's samples: features, the tagger; one part per chunk), the beat network's
windows over the whole instrumental (processing.analyse.beat_network; parts too), then ``assemble_song``
(the join: each chunk judged with its slice of the beat activations and the stems' levels, then the song's
own facts). ``analyse_song`` does all three in one process and gives the same rows.

Per chunk, on the chunk's own audio (the converted file): tempo and beat
confidence, key/scale/strength, EBU R128 loudness, danceability, share of
silence, brightness and a few cues (``processing.analyse.features``); the tagger's
score for every tag (``processing.analyse.tagger``, musicnn by default, loaded once per
process) and the facts they give (``processing.analyse.tag_facts``: instruments, vocal
and instrument scores); instruments heard, from the Demucs stems' energies over the
chunk's span (per-window levels measured at separation) merged with the tagger's
(``processing.analyse.instruments.merge_instruments``); residual vocal energy in the
instrumental; "is this music?" flags (``processing.analyse.musicness``) and
``vocals_heard``; derived mood words (``processing.analyse.moods``).

Per song: the tagger's scores averaged over the chunks; genre and moods from the first
source that has them (``SOURCES``): the user's sources file, the tagger (chunks that are
music only), the site's tags, categories and title, then (moods only) rules on features. Tempo is the median of the chunks'
confident tempos, key the strength-weighted vote of the chunks' keys, loudness
and peak are measured on the whole instrumental. A song with no chunks (too
short) is measured as a whole, so speech and bird clips still get flags.
"""
from __future__ import annotations

import functools
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import audio_io
from .. import vocabulary
from ..config import AnalyseConfig
from . import beats as beat_tempo
from .features import ESSENTIA_RATE, KEY_PROFILES, AnalysisError, Features, has_beat, loudness, measure, to_mono
from .instruments import VOCAL_STEM, InstrumentReport, from_features, from_levels, merge_instruments, residual_vocal_db
from .moods import derive_moods
from .musicness import NOISE_RATE, music_flags, noise_flatness
from .tag_facts import chunk_facts, song_genres_moods
from .tagger import Tagger, check_tagger, make_tagger
from ..types import AudioData, Chunk, SeparatedSong, SongMetadata

STAGE_VERSION = "1"
STEM_NAMES = ("drums", "bass", "other", "vocals", "guitar", "piano")  # every chunk row has stem_<name>_db (None when absent)
INSTRUMENT_STEMS = ("drums", "bass", "guitar", "piano")  # stems that name an instrument: their presence means real stems
BPM_BINS = list(range(40, 221, 10))
NOT_MUSIC_FLAGS = {"non_music", "silence"}
# Arrow types of the columns that may be null in every row of a build (no stems, no tagger):
# a table writer should cast all-null columns to these rather than guess.
COLUMN_TYPES = {
    **{f"stem_{name}_db": "float64" for name in STEM_NAMES},
    "residual_vocal_db": "float64",
    "source_vocals": "bool",
    "song_vocals_in_source": "bool",
    "song_genre": "string",
    "song_tagger": "string",
    "song_vocal_score": "float64",
    "vocal_score": "float64",
    "instrument_score": "float64",
    "noise_flatness": "float64",
    "song_bpm": "float64",
    "song_key": "string",
    "song_scale": "string",
    "scale": "string",
    "bpm": "float64",
    "key": "string",
    "genre": "string",
    "title": "string",
    "artist": "string",
}


@dataclass
class ChunkAnalysis:
    chunk_id: str
    features: Features
    instruments: InstrumentReport  # what the stems (or, without stems, the feature cues) say
    residual_vocal_db: Optional[float]  # None without a vocal stem
    flags: list[str]
    feature_moods: list[str]  # derived from features (rules in processing.analyse.moods)
    tag_scores: dict[str, float] = field(default_factory=dict)  # the tagger's label -> score, averaged over the chunk
    vocal_score: Optional[float] = None  # the tagger's voice score (tag_facts.py); None without a tagger
    instrument_score: Optional[float] = None  # the tagger's instrument score (tag_facts.py)
    heard_instruments: list[str] = field(default_factory=list)  # what was heard: stems, model (merge_instruments)
    instrument_sources: list[str] = field(default_factory=list)  # aligned with `heard_instruments`
    noise_flatness: Optional[float] = None  # musicness.noise_flatness

    def row(self) -> dict[str, Any]:
        f = self.features
        row: dict[str, Any] = {
            "bpm": f.bpm or None,  # a missing measure is null, never 0
            "bpm_confidence": f.bpm_confidence,
            "beats": list(f.beats),
            "key": f.key or None,
            "scale": f.scale or None,
            "key_strength": f.key_strength,
            "loudness_lufs": f.loudness_lufs,
            "danceability": f.danceability,
            "silence_ratio": f.silence_ratio,
            "brightness_hz": f.brightness_hz,
            "percussive_ratio": f.percussive_ratio,
            "low_harmonic_ratio": f.low_harmonic_ratio,
            "pulse": f.pulse,
        }
        for name in STEM_NAMES:
            row[f"stem_{name}_db"] = self.instruments.stem_db.get(name)
        row.update(
            {
                "residual_vocal_db": self.residual_vocal_db,
                "source_vocals": self.instruments.source_vocals,
                "instrument": list(self.heard_instruments),
                "instrument_source": list(self.instrument_sources),
                "instrument_method": self.instruments.method,
                "vocal_score": self.vocal_score,
                "instrument_score": self.instrument_score,
                "noise_flatness": self.noise_flatness,
                "tag_scores": [{"tag": t, "score": v} for t, v in self.tag_scores.items()],
                "feature_moods": list(self.feature_moods),
                "flags": list(self.flags),
            }
        )
        return row


@dataclass
class WholeSong:
    """Song-level measures of the whole instrumental (the chunk stage takes them on the audio it converts)."""

    duration_s: float
    loudness_lufs: float
    peak: float

    @classmethod
    def measure(cls, audio: AudioData) -> "WholeSong":
        return cls(audio.duration_s, loudness(audio), float(np.abs(audio.samples).max(initial=0.0)))


@dataclass
class SongAnalysis:
    song_id: str
    features: Features  # song-level values (see module docstring)
    chunks: list[ChunkAnalysis]
    genres: list[str] = field(default_factory=list)  # vocabulary words, best first
    genre_source: str = ""  # where they came from (SOURCES: "user", "model", "site") or "" (none)
    moods: list[str] = field(default_factory=list)
    mood_source: str = ""  # "user", "model", "site", "rules" (derived from features) or ""
    instruments: list[str] = field(default_factory=list)  # union over chunks, + instruments the source names
    instrument_sources: list[str] = field(default_factory=list)  # aligned: "stems", "model", "features", "user", "site"
    instrument_method: str = "features"
    tag_scores: dict[str, float] = field(default_factory=dict)  # the tagger's scores averaged over the song
    vocal_score: Optional[float] = None  # the highest chunk vocal score
    vocals_in_source: Optional[bool] = None  # None: no vocal stem to tell
    separation_model: str = ""
    tagger: Optional[str] = None
    flags: list[str] = field(default_factory=list)

    @property
    def moods_derived(self) -> bool:
        return self.mood_source == "rules"

    def song_row(self) -> dict[str, Any]:
        f = self.features
        return {
            "song_bpm": f.bpm or None,  # a missing measure is null, never 0
            "song_bpm_confidence": f.bpm_confidence,
            "song_key": f.key or None,
            "song_scale": f.scale or None,
            "song_key_strength": f.key_strength,
            "song_loudness_lufs": f.loudness_lufs,
            "song_peak_db": f.peak_db,
            "song_danceability": f.danceability,
            "song_silence_ratio": f.silence_ratio,
            "song_genre": self.genres[0] if self.genres else None,
            "song_genres": list(self.genres),
            "song_genre_source": self.genre_source,
            "song_moods": list(self.moods),
            "song_mood_source": self.mood_source,
            "song_moods_derived": self.moods_derived,
            "song_instruments": list(self.instruments),
            "song_instrument_sources": list(self.instrument_sources),
            "song_instrument_method": self.instrument_method,
            "song_vocals_in_source": self.vocals_in_source,
            "song_tagger": self.tagger,
            "song_vocal_score": self.vocal_score,
            "song_tag_scores": [{"tag": t, "score": v} for t, v in self.tag_scores.items()],
            "song_flags": list(self.flags),
        }

    def chunk_rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.chunks]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for the stage cache); ``from_dict`` restores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SongAnalysis":
        chunks = [
            ChunkAnalysis(**{**c, "features": Features(**c["features"]), "instruments": InstrumentReport(**c["instruments"])})
            for c in data["chunks"]
        ]
        rest = {k: v for k, v in data.items() if k not in ("features", "chunks")}
        return cls(features=Features(**data["features"]), chunks=chunks, **rest)


# ---------------------------------------------------------------- single pieces of audio


@dataclass
class ChunkMeasures:
    """The heavy pass over one piece of audio (features, the tagger's scores, spectral flatness): all that
    needs its samples. A build runs it for each chunk as one part of the song's fan-out, on any worker; the
    song's join then adds the beat (``judge``), which needs the whole song's beat activations."""

    name: str
    features: Features  # with analyse.tempo=rnn: tempo fields empty (filled by judge)
    tag_scores: dict[str, float]
    noise_flatness: float


def measure_audio(audio: AudioData, cfg: AnalyseConfig, name: str = "audio") -> ChunkMeasures:
    """Features, the tagger's scores (``cfg.tagger``) and the noise flatness of one piece of audio."""
    features = measure(audio, cfg.key_profile, cfg.silence_db, cfg.tempo)
    tagger = _tagger(cfg)
    scores = tagger.tag(audio) if tagger is not None else {}
    return ChunkMeasures(name, features, scores, round(noise_flatness(to_mono(audio, NOISE_RATE)), 4))


def judge(measures: ChunkMeasures, cfg: AnalyseConfig, activations: Optional[np.ndarray] = None,
          report: Optional[InstrumentReport] = None) -> ChunkAnalysis:
    """From a piece's measures: tempo and beats (``analyse.tempo=rnn``: from `activations`, this piece's beat
    activations), instruments heard (`report`: the stems' report for this span; None: feature cues), "is this
    music?" and vocal flags, derived moods. Cheap: no audio is read."""
    features = measures.features
    if cfg.tempo == "rnn":
        if activations is None:
            raise AnalysisError(f"{measures.name}: analyse.tempo=rnn needs the beat activations")
        features = _with_tempo(features, beat_tempo.estimate(activations))
    report = report if report is not None else from_features(features)
    scores = measures.tag_scores
    facts = chunk_facts(scores)
    heard = facts.instruments if _has_tagger(cfg) else None
    names, sources = merge_instruments(report, heard, facts.vocal_score, facts.instrument_score, cfg.vocal_threshold,
                                       facts.drum_score)
    flatness = measures.noise_flatness
    flags: list[str] = []
    if cfg.flag_non_music:
        flags = music_flags(features, facts.instrument_score, flatness, facts.vocal_score, facts.genre_score)
        if facts.vocal_score is not None and facts.vocal_score >= cfg.vocal_threshold:
            flags.append("vocals_heard")
    return ChunkAnalysis(
        measures.name, features, report, None, flags, derive_moods(features) if cfg.derive_moods else [],
        tag_scores=scores, vocal_score=facts.vocal_score, instrument_score=facts.instrument_score,
        heard_instruments=names, instrument_sources=sources, noise_flatness=flatness,
    )


def analyse_audio(audio: AudioData, cfg: AnalyseConfig, name: str = "audio",
                  report: Optional[InstrumentReport] = None, activations: Optional[np.ndarray] = None) -> ChunkAnalysis:
    """Measure and judge one piece of audio (``measure_audio`` then ``judge``). ``analyse.tempo=rnn``: tempo
    and beats from `activations` (this audio's slice of the song's beat activations; None: computed on this
    audio)."""
    measures = measure_audio(audio, cfg, name)
    if cfg.tempo == "rnn" and activations is None:
        activations = _activations(audio, cfg)
    return judge(measures, cfg, activations, report)


def analyse_file(path: Path, cfg: AnalyseConfig) -> ChunkAnalysis:
    """`analyse_audio` on a file of any format (e.g. a clip too short to chunk)."""
    return analyse_audio(audio_io.decode(Path(path)), cfg, Path(path).name)


# ---------------------------------------------------------------- songs


# Where a genre, mood or instrument came from, in order of precedence (the row's *_source columns):
# what the user wrote in the sources file, then the tagger, then the site's tags and title, then rules.
SOURCES = ("user", "model", "site", "rules")


@dataclass
class SourceWords:
    """Genres, moods and instruments a song's metadata states, split by who stated them."""

    user_genres: list[str]
    user_moods: list[str]
    user_instruments: list[str]
    site_genres: list[str]
    site_moods: list[str]
    site_instruments: list[str]


def _source_words(md: SongMetadata) -> SourceWords:
    """What the sources file (genre, moods, keywords) and the site (tags, categories, title) state."""
    site_tags = [*md.tags, *md.categories]
    dedupe = lambda words: [w for w in dict.fromkeys(words) if w != "other"]  # noqa: E731
    return SourceWords(
        user_genres=dedupe(vocabulary.genres([md.genre] if md.genre else []) + vocabulary.genres(md.keywords)),
        user_moods=dedupe(vocabulary.moods(md.moods) + vocabulary.moods(md.keywords)),
        user_instruments=dedupe(vocabulary.instruments(md.keywords)),
        site_genres=dedupe(vocabulary.genres(site_tags) + vocabulary.find_in_text(md.title, "genre")),
        site_moods=dedupe(vocabulary.moods(site_tags) + vocabulary.find_in_text(md.title, "mood")),
        site_instruments=dedupe(vocabulary.instruments(site_tags) + vocabulary.find_in_text(md.title, "instrument")),
    )


def _with_tempo(features: Features, estimate: beat_tempo.TempoEstimate) -> Features:
    """`features` with the beat network's tempo, beat confidence (mean activation on the beats) and beats."""
    return replace(features, bpm=estimate.bpm, bpm_confidence=estimate.beat_activation, beats=estimate.beats,
                   tempo_method="rnn")


def _activations(audio: AudioData, cfg: AnalyseConfig) -> np.ndarray:
    """The beat network's activations (100 per second) of a piece of audio (``analyse.tempo=rnn``)."""
    from .beat_network import activations

    return activations(to_mono(audio, ESSENTIA_RATE), _beat_network(cfg), cfg.tagger_threads)


def _beat_network(cfg: AnalyseConfig):
    """madmom's beat network, loaded once per process, on the tagger's device (``analyse.tagger_device``)."""
    from .beat_network import load_network
    from .musicnn import tagger_device

    return load_network(str(cfg.tempo_weights) if cfg.tempo_weights else None, tagger_device(cfg.tagger_device))


def _has_tagger(cfg: AnalyseConfig) -> bool:
    """Whether a tagger is configured (what ``_tagger`` gives is not None), without loading it: a song's join
    judges its chunks from scores measured elsewhere and needs no model in its own process."""
    return bool(cfg.tagger) and cfg.tagger != "none"


def _tagger(cfg: AnalyseConfig) -> Optional[Tagger]:
    """The configured tagger, loaded once per process (each worker process loads its own)."""
    if not _has_tagger(cfg):
        return None
    return _load_tagger(cfg.tagger, str(cfg.tagger_weights) if cfg.tagger_weights else None, cfg.tagger_threads,
                        cfg.tagger_device)


@functools.lru_cache(maxsize=4)
def _load_tagger(name: str, weights: Optional[str], threads: int, device: str) -> Optional[Tagger]:
    return make_tagger(name, Path(weights) if weights else None, threads, device)


def _mean_scores(chunks: list[ChunkAnalysis]) -> dict[str, float]:
    """Each label's score averaged over the chunks, weighted by their duration."""
    total: dict[str, float] = {}
    weight = 0.0
    for c in chunks:
        if not c.tag_scores:
            continue
        w = c.features.duration_s or 1.0
        weight += w
        for label, score in c.tag_scores.items():
            total[label] = total.get(label, 0.0) + w * score
    return {label: round(v / weight, 4) for label, v in total.items()} if weight else {}


def _aggregate(chunks: list[ChunkAnalysis], whole: WholeSong) -> Features:
    """Song-level Features from the chunks' (see module docstring)."""
    feats = [c.features for c in chunks]
    weights = np.array([f.duration_s for f in feats], dtype=np.float64)
    weights = weights / (weights.sum() or 1.0)
    confident = [f.bpm for f in feats if has_beat(f)]
    votes: Counter = Counter()
    for f in feats:
        if f.key:
            votes[(f.key, f.scale)] += f.key_strength
    key, scale = votes.most_common(1)[0][0] if votes else ("", "")
    agreeing = [f.key_strength for f in feats if (f.key, f.scale) == (key, scale)]
    mean = lambda attr: round(float(np.dot(weights, [getattr(f, attr) for f in feats])), 4)  # noqa: E731
    peak = whole.peak
    return replace(
        feats[0],
        duration_s=whole.duration_s,
        bpm=round(statistics.median(confident), 2) if confident else 0.0,
        bpm_confidence=mean("bpm_confidence"),
        key=key,
        scale=scale,
        key_strength=round(float(np.mean(agreeing)), 3) if agreeing else 0.0,
        beats=[],
        loudness_lufs=round(whole.loudness_lufs, 2),
        peak=peak,
        peak_db=round(20 * np.log10(peak), 2) if peak > 0 else -200.0,
        **{a: mean(a) for a in ("danceability", "silence_ratio", "brightness_hz", "percussive_ratio", "percussive_flatness", "kick_ratio", "low_harmonic_ratio", "below_1k_ratio", "pulse", "low_energy_ratio")},
    )


def check_config(cfg: AnalyseConfig) -> None:
    """Fail fast, before any audio work: unknown key profile, unusable tagger, bad thresholds.

    Raises AnalysisError or TaggerUnavailable naming the setting and what to do.
    """
    if cfg.key_profile not in KEY_PROFILES:
        raise AnalysisError(f"analyse.key_profile {cfg.key_profile!r} unknown; choose one of {', '.join(KEY_PROFILES)}")
    if not 0.0 <= cfg.tagger_threshold <= 1.0:
        raise AnalysisError(f"analyse.tagger_threshold must lie in [0, 1], got {cfg.tagger_threshold}")
    if cfg.stem_presence_db > 0 or cfg.residual_vocal_db > 0:
        raise AnalysisError("analyse.stem_presence_db and analyse.residual_vocal_db are dB below the mix: use values <= 0")
    if not 0.0 <= cfg.vocal_threshold <= 1.0:
        raise AnalysisError(f"analyse.vocal_threshold must lie in [0, 1], got {cfg.vocal_threshold}")
    if cfg.tagger_threads < 1:
        raise AnalysisError(f"analyse.tagger_threads must be >= 1, got {cfg.tagger_threads}")
    if cfg.tempo not in ("rnn", "essentia"):
        raise AnalysisError(f"analyse.tempo must be rnn or essentia, got {cfg.tempo!r}")
    # the model files are read and checked, the networks not built: the driver that calls this never runs them
    if cfg.tempo == "rnn":
        from .beat_network import BeatNetworkUnavailable, check_network
        from .musicnn import MusicnnUnavailable, check_device

        try:
            check_network(str(cfg.tempo_weights) if cfg.tempo_weights else None)
            check_device(cfg.tagger_device)  # the beat network runs on the tagger's device
        except (BeatNetworkUnavailable, MusicnnUnavailable) as exc:
            raise AnalysisError(str(exc)) from exc
    if _has_tagger(cfg):
        check_tagger(cfg.tagger, Path(cfg.tagger_weights) if cfg.tagger_weights else None, cfg.tagger_threads,
                     cfg.tagger_device)


def analyse_song(separated: SeparatedSong, chunks: list[Chunk], cfg: AnalyseConfig,
                 whole: Optional[WholeSong] = None) -> SongAnalysis:
    """Analyse a separated song and its chunks in this process (rows aligned with `chunks`): the beat network
    over the whole instrumental, ``measure_audio`` on each chunk's file, then ``assemble_song``. A build
    spreads the same work over its workers instead (processing.pipeline: a part per chunk and per beat
    window, then the join); both give the same rows (for a song over WINDOW_S, whose beat windows run batched
    here and one by one there, activations within 1e-5: tests/test_beat_network.py).

    ``whole``: the instrumental's duration, loudness and peak when the caller measured them already
    (the chunk stage does, on the audio it converts); else the instrumental is decoded to measure them.
    """
    check_config(cfg)
    song_acts: Optional[np.ndarray] = None
    whole_audio: Optional[AudioData] = None
    if cfg.tempo == "rnn":  # the beat network runs once over the whole instrumental; chunks take their slices
        whole_audio = audio_io.decode(separated.instrumental_path)
        song_acts = _activations(whole_audio, cfg)
    measures = [measure_chunk_file(chunk, cfg) for chunk in chunks]
    if not chunks:  # too short to chunk: measure the song itself
        whole_audio = whole_audio if whole_audio is not None else audio_io.decode(separated.instrumental_path)
        single = analyse_audio(whole_audio, cfg, separated.song.song_id, activations=song_acts)
        return _song_analysis(separated, [], single, single.features, single.flags, cfg)
    if whole is None:
        whole = WholeSong.measure(whole_audio if whole_audio is not None else audio_io.decode(separated.instrumental_path))
    return assemble_song(separated, chunks, measures, song_acts, cfg, whole)


def measure_chunk_file(chunk: Chunk, cfg: AnalyseConfig, path: Optional[Path] = None) -> ChunkMeasures:
    """``measure_audio`` on a chunk's file (`path`: where it is on this node, if not at ``chunk.audio_path``)."""
    try:
        audio = audio_io.decode(path or chunk.audio_path)
    except audio_io.AudioDecodeError as exc:
        raise AnalysisError(f"chunk {chunk.chunk_id} of song {chunk.song_id}: {exc}") from exc
    return measure_audio(audio, cfg, chunk.chunk_id)


def chunk_activations(song_acts: np.ndarray, chunk: Chunk) -> np.ndarray:
    """A chunk's slice of its song's beat activations."""
    return song_acts[int(round(chunk.start_s * beat_tempo.FPS)): int(round(chunk.end_s * beat_tempo.FPS))]


def assemble_song(separated: SeparatedSong, chunks: list[Chunk], measures: list[ChunkMeasures],
                  song_acts: Optional[np.ndarray], cfg: AnalyseConfig, whole: WholeSong) -> SongAnalysis:
    """A song's analysis from its chunks' measures (aligned with `chunks`, at least one) and the whole song's
    beat activations (``analyse.tempo=rnn``; None otherwise): each chunk judged with its slice of the
    activations and the stems' report over its span, then the song's own facts. No audio is read
    (``separated`` needs its stem levels)."""
    levels = separated.levels
    stem_names = set(levels.stems) if levels else set()
    has_instrument_stems = bool(stem_names & set(INSTRUMENT_STEMS))
    analysed: list[ChunkAnalysis] = []
    for chunk, measured in zip(chunks, measures):
        acts = chunk_activations(song_acts, chunk) if song_acts is not None else None
        result = judge(measured, cfg, acts)
        report, residual = result.instruments, None
        if levels is not None and levels.stems:
            stem_report = from_levels(levels, chunk.start_s, chunk.end_s, cfg.stem_presence_db, cfg.silence_db)
            if has_instrument_stems:
                report = stem_report
            else:  # offline separator: "other" is everything but vocals; instruments from cues, vocals from the stem
                report = InstrumentReport(report.instruments, stem_report.stem_db, stem_report.source_vocals, "features")
            if VOCAL_STEM not in stem_names:
                report.source_vocals = None
            residual = residual_vocal_db(levels, chunk.start_s, chunk.end_s)
        flags = list(result.flags)
        # Only a song that had vocals can leave vocals behind: without this gate a soft-mask separator's
        # leakage (drum transients in its "vocals") flags purely instrumental songs.
        if residual is not None and report.source_vocals and residual > cfg.residual_vocal_db and cfg.flag_non_music:
            flags.append("residual_vocals")
        analysed.append(_with_report(result, report, residual, flags, cfg))

    features = _aggregate(analysed, whole)
    if song_acts is not None:  # the song's tempo from the whole song's activations (beats stay per chunk)
        features = replace(_with_tempo(features, beat_tempo.estimate(song_acts)), beats=[])
    # a song flag applies to every chunk (the pipeline excludes them all): only flags most chunks share
    counts = Counter(flag for c in analysed for flag in set(c.flags))
    song_flags = [flag for flag, n in counts.items() if n * 2 > len(analysed)]
    return _song_analysis(separated, analysed, None, features, song_flags, cfg)


def _song_analysis(separated: SeparatedSong, analysed: list[ChunkAnalysis], single: Optional[ChunkAnalysis],
                   features: Features, song_flags: list[str], cfg: AnalyseConfig) -> SongAnalysis:
    """The song's own facts (genre, moods, instruments, scores) from its judged chunks (or, for a song too
    short to chunk, the song judged as one piece: `single`)."""
    song = separated.song
    levels = separated.levels
    stem_names = set(levels.stems) if levels else set()
    has_instrument_stems = bool(stem_names & set(INSTRUMENT_STEMS))
    said = _source_words(song.metadata)
    tag_scores = _mean_scores(analysed or [single])
    # genre and mood from what the model hears in the chunks that are music (never from speech or silence)
    music = [c for c in (analysed or [single]) if not NOT_MUSIC_FLAGS & set(c.flags)]
    model_genres, model_moods = song_genres_moods(_mean_scores(music), cfg.tagger_threshold)
    genres, genre_source = _first([(said.user_genres, "user"), (model_genres, "model"), (said.site_genres, "site")])
    rule_moods = derive_moods(features) if cfg.derive_moods else []
    moods, mood_source = _first([(said.user_moods, "user"), (model_moods, "model"), (said.site_moods, "site"), (rule_moods, "rules")])
    instruments: list[str] = []
    instrument_sources: list[str] = []
    heard = [(c.heard_instruments, c.instrument_sources) for c in analysed] or [(single.heard_instruments, single.instrument_sources)]
    heard += [(said.user_instruments, ["user"] * len(said.user_instruments)), (said.site_instruments, ["site"] * len(said.site_instruments))]
    for names, sources in heard:
        for name, source in zip(names, sources):
            if name not in instruments:
                instruments.append(name)
                instrument_sources.append(source)
    vocal_scores = [c.vocal_score for c in (analysed or [single]) if c.vocal_score is not None]
    return SongAnalysis(
        song_id=song.song_id,
        features=features,
        chunks=analysed,
        genres=genres,
        genre_source=genre_source,
        moods=moods,
        mood_source=mood_source,
        instruments=instruments,
        instrument_sources=instrument_sources,
        instrument_method="stems" if has_instrument_stems else "features",
        tag_scores=tag_scores,
        vocal_score=max(vocal_scores) if vocal_scores else None,
        vocals_in_source=any(c.instruments.source_vocals for c in analysed) if VOCAL_STEM in stem_names else None,
        separation_model=separated.model,
        tagger=cfg.tagger if cfg.tagger != "none" else None,
        flags=sorted(song_flags),
    )


def _first(candidates: list[tuple[list[str], str]]) -> tuple[list[str], str]:
    """The first non-empty word list and its source (precedence: the order given), or ([], "")."""
    for words, source in candidates:
        if words:
            return list(words), source
    return [], ""


def _with_report(result: ChunkAnalysis, report: InstrumentReport, residual: Optional[float], flags: list[str],
                 cfg: AnalyseConfig) -> ChunkAnalysis:
    """`result` with the stems' instrument report (instruments heard merged again) and the song-level QC flags."""
    facts = chunk_facts(result.tag_scores)
    heard = facts.instruments if _has_tagger(cfg) else None
    names, sources = merge_instruments(report, heard, facts.vocal_score, facts.instrument_score, cfg.vocal_threshold,
                                       facts.drum_score)
    return replace(result, instruments=report, residual_vocal_db=residual, flags=flags,
                   heard_instruments=names, instrument_sources=sources)


# ---------------------------------------------------------------- report


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def summarise(rows: list[dict]) -> dict:
    """Distributions over the included rows (``excluded`` falsy) for report.json.

    Rows are merged chunk rows (analysis and, if present, description columns);
    every column is optional. Flag counts are over all rows, excluded ones too.
    """
    included = [r for r in rows if not r.get("excluded")]
    hist = {f"{lo}-{lo + 9}": 0 for lo in BPM_BINS[:-1]}
    hist["other"] = 0
    keys: Counter = Counter()
    scales: Counter = Counter()
    genres: Counter = Counter()
    moods: Counter = Counter()
    instruments: Counter = Counter()
    bpms = []
    for r in included:
        bpm = r.get("bpm")
        if isinstance(bpm, (int, float)) and bpm > 0:
            bpms.append(float(bpm))
            lo = int(bpm // 10 * 10)
            hist[f"{lo}-{lo + 9}" if f"{lo}-{lo + 9}" in hist else "other"] += 1
        key, scale = r.get("key") or "", r.get("scale") or ""
        if key:
            label = key if " " in key else f"{key} {scale}".strip()
            keys[label] += 1
            scales[label.split(" ", 1)[1] if " " in label else "unknown"] += 1
        genre = r.get("genre") if "genre" in r else r.get("song_genre")
        for g in _list(genre):
            genres[g] += 1
        mood_words = r.get("moods") if "moods" in r else (r.get("song_moods") or r.get("feature_moods"))
        for m in _list(mood_words):
            moods[m] += 1
        for i in _list(r.get("instrument")):
            instruments[i] += 1
    flags = Counter(f for r in rows for f in _list(r.get("flags")))
    return {
        "rows": len(rows),
        "included": len(included),
        "bpm_histogram": {k: v for k, v in hist.items() if v},
        "bpm_median": round(statistics.median(bpms), 2) if bpms else None,
        "keys": dict(keys.most_common()),
        "scales": dict(scales.most_common()),
        "genres": dict(genres.most_common()),
        "moods": dict(moods.most_common()),
        "instruments": dict(instruments.most_common()),
        "flags": dict(flags.most_common()),
    }
