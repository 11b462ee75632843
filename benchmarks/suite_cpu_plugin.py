"""A pytest plug-in for benchmarks/bench_test_suite.py (loaded with ``-p suite_cpu_plugin``): after each test
(setup, call, teardown), one line "cpu_s<TAB>wall_s<TAB>nodeid" appended to $MUSIC_MIXER_TEST_CPU_LOG, the CPU
seconds being the whole machine's (Linux: /proc/stat)."""
from __future__ import annotations

import os
import time

import pytest


def busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot."""
    with open("/proc/stat") as fh:
        f = [int(v) for v in fh.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return sum(f[i] for i in (0, 1, 2, 5, 6, 7)) / tick, sum(f) / tick


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = busy_seconds()[0], time.time()
    yield
    with open(os.environ["MUSIC_MIXER_TEST_CPU_LOG"], "a") as out:
        out.write(f"{busy_seconds()[0] - cpu:.2f}\t{time.time() - wall:.2f}\t{item.nodeid}\n")
