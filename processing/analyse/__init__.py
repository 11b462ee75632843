"""Stage 5, analyse: tempo, key, loudness, instruments, genre and mood, and "is this music?" flags.

features.py measures one piece of audio; instruments.py, moods.py, musicness.py and tagger.py turn measures
into facts; analyse.py does it for a song and its chunks.
"""
