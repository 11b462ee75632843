"""Music Mixer's pipeline stages: ingest, separate, chunk, convert, analyse, describe."""

__version__ = "0.1.0"
