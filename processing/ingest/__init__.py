"""Stage 1, ingest: sources (files, folders, URL lists, playlists) -> complete local audio files with metadata.

sources.py reads sources files; download.py fetches with yt-dlp; audio_check.py checks a file is usable audio;
fingerprint.py catches the same recording twice; failures.py names what went wrong; stream.py drives it all.
"""
