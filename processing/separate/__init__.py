"""Stage 2, separate: remove the vocals, keep the instrumental (and per-stem levels).

base.py holds the Separator protocol and the factory; demucs_separator.py and offline_separator.py the two
model-backed separators; stage.py runs them through the stage cache.
"""
