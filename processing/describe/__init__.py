"""Stage 6, describe: clean credits (titles.py) and a natural text description per chunk (describe.py)."""
