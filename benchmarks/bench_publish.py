#!/usr/bin/env python3
"""Publish/pull figures against a local S3 API (moto's server on 127.0.0.1).

    python benchmarks/bench_publish.py [--files 200] [--file-kb 256] [--big-mb 40] [--concurrency 4]

Makes a synthetic build (many chunk-sized files + one large file that goes
multipart), then times: hashing the build, the first publish, a no-op
republish, a new version with one changed file (server-side copies), a full
pull with verification, and a no-op re-pull. Loopback moto measures this
code's overhead and request counts, not a real network: real S3 adds latency
per request and is bounded by bandwidth.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from processing.config import PublishConfig  # noqa: E402
from processing.publish.manifest import scan_build  # noqa: E402
from processing.publish.publish import publish_build, pull_version  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--file-kb", type=int, default=256)
    p.add_argument("--big-mb", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-bucket")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mm-bench-publish-") as tmp:
        build = Path(tmp) / "build"
        for i in range(args.files):
            path = build / "audio" / f"{i % 3}" / f"chunk_{i:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.bytes(args.file_kb * 1024))
        (build / "data").mkdir()
        (build / "data" / "train-00000-of-00001.parquet").write_bytes(rng.bytes(args.big_mb * 1024 * 1024))
        (build / "report.json").write_text('{"chunks": %d}' % args.files)
        total_mb = (args.files * args.file_kb / 1024) + args.big_mb
        print(f"build: {args.files + 2} files, {total_mb:.1f} MiB; concurrency {args.concurrency}; endpoint {endpoint}")

        t = time.perf_counter()
        scan_build(build)
        hashed = time.perf_counter() - t
        print(f"hash build (cold):        {hashed:6.2f} s  ({total_mb / hashed:7.1f} MiB/s)")
        t = time.perf_counter()
        scan_build(build)
        print(f"hash build (cached):      {time.perf_counter() - t:6.2f} s")

        cfg = PublishConfig(s3_uri="s3://bench-bucket/sets", endpoint_url=endpoint, max_concurrency=args.concurrency,
                            multipart_threshold_mb=16, multipart_chunksize_mb=8)
        first = publish_build(build, cfg, "bench", "v1", progress=False)
        print(f"publish v1:               {first.seconds:6.2f} s  ({first.bytes_uploaded / 2**20 / first.seconds:7.1f} MiB/s, "
              f"{len(first.uploaded)} uploaded)")
        again = publish_build(build, cfg, "bench", "v1", progress=False)
        print(f"republish v1 (no-op):     {again.seconds:6.2f} s  (uploaded {len(again.uploaded)})")
        (build / "report.json").write_text('{"chunks": %d, "rerun": true}' % args.files)
        second = publish_build(build, cfg, "bench", "v2", progress=False)
        print(f"publish v2 (1 changed):   {second.seconds:6.2f} s  (uploaded {len(second.uploaded)}, "
              f"copied server-side {len(second.copied)})")

        t = time.perf_counter()
        dest = pull_version("s3://bench-bucket/sets/bench/latest", Path(tmp) / "pulled", endpoint, max_concurrency=args.concurrency)
        pulled = time.perf_counter() - t
        print(f"pull latest + verify:     {pulled:6.2f} s  ({total_mb / pulled:7.1f} MiB/s)")
        t = time.perf_counter()
        pull_version("s3://bench-bucket/sets/bench/latest", dest, endpoint)
        print(f"re-pull (verify only):    {time.perf_counter() - t:6.2f} s")
    server.stop()


if __name__ == "__main__":
    main()
