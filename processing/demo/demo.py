"""The embedded demo: synthetic songs written to a folder, ready to build offline.

No network and no model download: the songs are synthesised (processing.demo.synth)
and the demo config separates them with the weight-free offline separator.
"""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

from .synth import synth_song
from ..types import SourceSpec

# (file stem, bpm, key, scale, seconds, sung, genre, moods)
DEMO_SONGS = [
    ("demo-sunrise-groove", 120.0, "A", "minor", 75.0, True, "electronic", ["energetic"]),
    ("demo-slow-harbour", 84.0, "D", "major", 64.0, True, "pop", ["calm", "warm"]),
    ("demo-night-drive", 140.0, "E", "minor", 48.0, False, "electronic", ["dark"]),
]


def write_demo_sources(folder: Path) -> list[SourceSpec]:
    """Write the demo songs as FLAC into ``folder`` (once) and return their SourceSpecs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for i, (stem, bpm, key, scale, seconds, sung, genre, moods) in enumerate(DEMO_SONGS):
        path = folder / f"{stem}.flac"
        if not path.exists():
            song = synth_song(bpm=bpm, key=key, scale=scale, duration_s=seconds, vocals=sung, seed=i,
                              through_composed=True)
            tmp = path.with_suffix(".partial.flac")
            sf.write(str(tmp), song.mix.samples.T, song.mix.sample_rate, subtype="PCM_16")
            tmp.replace(path)
        title = stem.removeprefix("demo-").replace("-", " ").title()
        specs.append(SourceSpec(location=str(path), artist="Music Mixer Demo Band", title=title, genre=genre,
                                moods=list(moods), licence="CC0-1.0", song_id=stem))
    return specs
