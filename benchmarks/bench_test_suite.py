#!/usr/bin/env python3
"""Where the test suite's time goes: the machine's CPU seconds and the wall seconds of each test, summed per
module, with the suite's average CPU use.

    python benchmarks/bench_test_suite.py [--xdist N] [--json FILE] [pytest args, e.g. tests/test_executor.py -k kill]

A test's CPU seconds are the whole machine's (every process: its builds' subprocesses, fork servers, Ray
clusters, servers), read from /proc/stat around the test (setup, call and teardown). They are that test's own
only when tests run one at a time (``--xdist 0``, the default) on an otherwise idle machine; with ``--xdist 2``
(as ``make test``) they overlap, and only the wall time and the suite's average CPU use mean something. The
suite on our 2-core machine is CPU-bound (both cores ~98 % busy), so its wall time follows the sum of these CPU
seconds, not the number of test processes. Tests that need the extra venvs are skipped unless the
MUSIC_MIXER_*_PYTHON / MUSIC_MIXER_AUDIOCRAFT_SRC variables are set as the Makefile's ``test`` target sets them.
Figures only; nothing is asserted. Linux only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from suite_cpu_plugin import busy_seconds  # noqa: E402  (pytest loads the same module as its plug-in)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xdist", type=int, default=0, help="pytest-xdist processes (0: one at a time, per-test CPU exact)")
    p.add_argument("--json", type=Path, help="also write every test's figures to this JSON file")
    args, pytest_args = p.parse_known_args()
    log = Path(tempfile.mkdtemp(prefix="mm-bench-tests-")) / "tests.tsv"
    env = dict(os.environ, MUSIC_MIXER_TEST_CPU_LOG=str(log),
               PYTHONPATH=os.pathsep.join(filter(None, [str(BENCHMARKS), os.environ.get("PYTHONPATH", "")])))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "suite_cpu_plugin", "-p", "no:cacheprovider"]
    cmd += ["-n", str(args.xdist), "--dist", "loadfile"] if args.xdist else []
    cmd += pytest_args
    samples: list[float] = []  # the machine's CPU use over each 10 s of the run
    done = threading.Event()

    def sample() -> None:
        last = busy_seconds()
        while not done.wait(10):
            now = busy_seconds()
            samples.append((now[0] - last[0]) / max(1e-9, now[1] - last[1]))
            last = now

    threading.Thread(target=sample, daemon=True).start()
    start, cpu0 = time.perf_counter(), busy_seconds()[0]
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    wall, cpu = time.perf_counter() - start, busy_seconds()[0] - cpu0
    done.set()

    tests = []
    for line in log.read_text().splitlines() if log.exists() else []:
        c, w, nodeid = line.split("\t", 2)
        tests.append({"test": nodeid, "cpu_s": float(c), "wall_s": float(w)})
    modules: dict[str, list[float]] = {}
    for t in tests:
        m = modules.setdefault(t["test"].split("::")[0], [0.0, 0.0, 0])
        m[0] += t["cpu_s"]
        m[1] += t["wall_s"]
        m[2] += 1
    print(f"\n{len(tests)} tests, pytest exit code {rc}: {wall:.0f} s wall, {cpu:.0f} CPU-s on {os.cpu_count()} cores "
          f"(average use {100 * cpu / wall / (os.cpu_count() or 1):.0f} %"
          + (f", lowest 10 s {100 * min(samples):.0f} %)" if samples else ")"))
    print(f"{'CPU s':>8} {'wall s':>8} {'tests':>6}  module" + ("  (overlapping: --xdist)" if args.xdist else ""))
    for name, (c, w, n) in sorted(modules.items(), key=lambda kv: -kv[1][0]):
        print(f"{c:8.1f} {w:8.1f} {n:6d}  {name}")
    print("\nmost CPU, test by test:")
    for t in sorted(tests, key=lambda t: -t["cpu_s"])[:15]:
        print(f"{t['cpu_s']:8.1f} {t['wall_s']:8.1f}  {t['test']}")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "cpu_use": samples, "tests": tests}, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
