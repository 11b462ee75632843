"""Stage 2, separate: remove the vocals, keep the instrumental (and per-stem levels).

base.py holds the Separator protocol, choose.py the factory; demucs_separator.py and offline_separator.py the two
model-backed separators; stage.py runs them through the stage cache.
"""
