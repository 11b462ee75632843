"""Separation as record functions: mix -> Separation (in memory) -> SeparatedSong (the cache entry on disk).

What the cache keeps per song: the instrumental as 24-bit FLAC at the song's own rate and channels,
the per-window stem levels that analysis needs (``levels.npz``), and every stem as FLAC only with
``separate.keep_stems`` (the chunk stage then writes each stem of each chunk). The entry's key is the
song's content hash plus everything that changes the output (``separation_params``); the executor
looks entries up and writes them, these functions only compute and write into the folder given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import audio_io
from ..config import SeparateConfig
from ..types import AudioData, SeparatedSong, Song, StemLevels
from .base import PassThroughSeparator, Separator, instrumental_from_stems
from .levels import stem_levels

STAGE_VERSION = "2"  # 2: levels instead of full stems (stems only with keep_stems)
LEVELS_FILE = "levels.npz"
INSTRUMENTAL_FILE = "instrumental.flac"


@dataclass
class Separation:
    """One song, separated, in memory: the instrumental and stems at the song's rate and channels."""

    instrumental: AudioData
    levels: Optional[StemLevels]  # None: the separator made no stems
    stems: dict[str, AudioData] = field(default_factory=dict)  # only with keep_stems


def separator_for(song: Song, separator: Separator) -> Separator:
    """Songs marked ``instrumental`` skip the model, whatever the configured separator."""
    return PassThroughSeparator() if song.instrumental else separator


def separation_params(separator_params: dict[str, Any], cfg: SeparateConfig) -> dict[str, Any]:
    """Everything that changes a song's separation entry, beyond the song's bytes."""
    return {"separator": separator_params, "mode": cfg.instrumental_mode, "keep_stems": cfg.keep_stems}


def separation_from_stems(mix: AudioData, stems: dict[str, AudioData], cfg: SeparateConfig) -> Separation:
    """The instrumental (``separate.instrumental_mode``) and the stem levels, from a separator's stems."""
    instrumental = instrumental_from_stems(mix, stems, cfg.instrumental_mode)
    levels = stem_levels(mix.samples, {n: s.samples for n, s in stems.items()}, instrumental.samples,
                         mix.sample_rate) if stems else None
    return Separation(instrumental, levels, dict(stems) if cfg.keep_stems else {})


def separate_on_cpu(mix: AudioData, separator: Separator, cfg: SeparateConfig) -> Separation:
    """Separate one song with a separator that runs where it is called (none, offline)."""
    return separation_from_stems(mix, separator.separate_many([mix])[0], cfg)


def _scaled(audio: AudioData, gain: float) -> AudioData:
    return audio if gain == 1.0 else AudioData(audio.samples * np.float32(gain), audio.sample_rate)


def write_separation(song: Song, separation: Separation, model: str, folder: Path) -> dict[str, Any]:
    """Write a song's separation into ``folder``; return the entry's record (its ``done.json``)."""
    # 24-bit FLAC keeps the cache a third of float WAV's size; one common gain
    # (only ever < 1) keeps the instrumental and every stem below full scale.
    audios = [separation.instrumental, *separation.stems.values()]
    peak = max(float(np.abs(a.samples).max(initial=0.0)) for a in audios)
    gain = min(1.0, 0.999 / peak) if peak > 0 else 1.0
    audio_io.write(folder / INSTRUMENTAL_FILE, _scaled(separation.instrumental, gain), subtype="PCM_24")
    stem_rel = {}
    for name, audio in separation.stems.items():
        rel = f"stems/{name}.flac"
        audio_io.write(folder / rel, _scaled(audio, gain), subtype="PCM_24")
        stem_rel[name] = rel
    if separation.levels is not None:
        separation.levels.save(folder / LEVELS_FILE)
    return {"model": model, "sample_rate": separation.instrumental.sample_rate, "stems": stem_rel, "gain": gain,
            "levels": separation.levels is not None, "song_id": song.song_id, "content_hash": song.content_hash}


def write_passthrough(song: Song, source: Path, model: str, folder: Path) -> dict[str, Any]:
    """``write_separation`` of a pass-through separation (``none``, songs marked instrumental) read from the file
    block by block, so that a long song is never held whole: a first pass finds the peak (the gain), a second
    writes the FLAC. Same samples and record as decoding the mix and writing its ``separate_on_cpu``."""
    with audio_io.open_stream(source) as stream:
        peak = 0.0
        for block in stream.blocks():
            peak = max(peak, float(np.abs(block).max()))
        gain = min(1.0, 0.999 / peak) if peak > 0 else 1.0
        scaled = (block if gain == 1.0 else block * np.float32(gain) for block in stream.blocks())
        audio_io.write_blocks(folder / INSTRUMENTAL_FILE, scaled, stream.sample_rate, stream.channels, subtype="PCM_24")
    return {"model": model, "sample_rate": stream.sample_rate, "stems": {}, "gain": gain, "levels": False,
            "song_id": song.song_id, "content_hash": song.content_hash}


def load_separation(song: Song, folder: Path, meta: dict[str, Any], levels: bool = True) -> SeparatedSong:
    """The SeparatedSong that a finished entry (``folder`` and its record) describes; ``levels=False``
    leaves the stem levels unread (the entry's files need not be on this node then)."""
    return SeparatedSong(
        song=song, instrumental_path=folder / INSTRUMENTAL_FILE,
        stem_paths={n: folder / rel for n, rel in meta["stems"].items()}, sample_rate=int(meta["sample_rate"]),
        model=meta["model"], levels=StemLevels.load(folder / LEVELS_FILE) if levels and meta.get("levels") else None,
    )
