"""Stage 8, publish: a build as an immutable version on S3 (publish.py, manifest.py) or the Hub (publish_hub.py)."""
