"""Separation through the stage cache: each song separated once per separator and settings."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import audio_io
from ..cache import StageCache
from ..config import SeparateConfig
from ..types import AudioData, Failure, SeparatedSong, Song
from .base import PassThroughSeparator, Separator, instrumental_from_stems

STAGE_VERSION = "1"


def _scaled(audio: AudioData, gain: float) -> AudioData:
    return audio if gain == 1.0 else AudioData(audio.samples * np.float32(gain), audio.sample_rate)


@dataclass
class SeparationResult:
    separated: list[SeparatedSong] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _load_cached(song: Song, entry) -> SeparatedSong:
    meta = entry.read_meta()
    stems = {n: entry.path / rel for n, rel in meta["stems"].items()}
    return SeparatedSong(song=song, instrumental_path=entry.path / "instrumental.flac", stem_paths=stems,
                         sample_rate=int(meta["sample_rate"]), model=meta["model"])


def separate_songs(
    songs: list[Song],
    separator: Separator,
    cfg: SeparateConfig,
    cache: StageCache,
    songs_per_group: int = 4,
) -> SeparationResult:
    """Separate every song, reusing cached outputs; songs without work are grouped for batching.

    Songs flagged ``instrumental`` skip the model (pass-through), whatever the separator.
    """
    result = SeparationResult()
    passthrough = PassThroughSeparator()
    pending: list[tuple[Song, object, Separator]] = []
    for song in songs:
        sep = passthrough if song.instrumental else separator
        params = {"separator": sep.cache_params(), "mode": cfg.instrumental_mode}
        entry = cache.entry("separate", STAGE_VERSION, song.content_hash, params)
        if entry.is_done():
            cache.record("separate", hit=True)
            result.separated.append(_load_cached(song, entry))
        else:
            pending.append((song, entry, sep))

    for sep in {id(s): s for _, _, s in pending}.values():
        todo = [(song, entry) for song, entry, s in pending if s is sep]
        for start in range(0, len(todo), max(1, songs_per_group)):
            group = todo[start:start + songs_per_group]
            mixes: list[tuple[Song, object, AudioData]] = []
            for song, entry in group:
                try:
                    mixes.append((song, entry, audio_io.decode(song.audio_path)))
                except audio_io.AudioDecodeError as exc:
                    result.failures.append(Failure(song.song_id, "separate", str(exc), "decode"))
            if not mixes:
                continue
            try:
                outputs = sep.separate_many([m for _, _, m in mixes])
            except (RuntimeError, ValueError) as exc:
                for song, _, _ in mixes:
                    result.failures.append(Failure(song.song_id, "separate", f"{sep.name} failed: {exc}", "separate"))
                continue
            for (song, entry, mix), stems in zip(mixes, outputs):
                folder = entry.begin()
                instrumental = instrumental_from_stems(mix, stems, cfg.instrumental_mode)
                # 24-bit FLAC keeps the cache a third of float WAV's size; one common gain
                # (only ever < 1) keeps the instrumental and every stem below full scale.
                peak = max([float(np.abs(instrumental.samples).max(initial=0.0))]
                           + [float(np.abs(a.samples).max(initial=0.0)) for a in stems.values()])
                gain = min(1.0, 0.999 / peak) if peak > 0 else 1.0
                audio_io.write(folder / "instrumental.flac", _scaled(instrumental, gain), subtype="PCM_24")
                stem_rel = {}
                for name, audio in stems.items():
                    rel = f"stems/{name}.flac"
                    audio_io.write(folder / rel, _scaled(audio, gain), subtype="PCM_24")
                    stem_rel[name] = rel
                entry.finish({"model": sep.name, "sample_rate": mix.sample_rate, "stems": stem_rel, "gain": gain,
                              "song_id": song.song_id, "content_hash": song.content_hash})
                cache.record("separate", hit=False)
                result.separated.append(_load_cached(song, entry))
    order = {s.song_id: i for i, s in enumerate(songs)}
    result.separated.sort(key=lambda s: order[s.song.song_id])
    return result
