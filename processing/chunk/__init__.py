"""Stages 3 and 4, chunk and convert: ~30 s chunks in MusicGen's training format.

spans.py plans the chunks (tail policies); convert.py turns audio into the training format; stage.py does both
for one separated song.
"""
