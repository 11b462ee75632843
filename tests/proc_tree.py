"""The processes of a tree, read from /proc: for tests and benchmarks that watch a build from outside."""
from __future__ import annotations

import os
import subprocess
import time
from typing import Optional


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, already dead, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_watching(cmd: list[str], env: Optional[dict[str, str]] = None, timeout: float = 600
                 ) -> tuple[subprocess.CompletedProcess, int, set[str]]:
    """Run ``cmd`` to its end (text output captured) while watching its process tree: (the finished process, its
    pid, the command lines of every process it started, seen every 20 ms)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # no pipe to fill up
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        started: set[str] = set()
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                raise subprocess.TimeoutExpired(cmd, timeout)
            for pid in process_tree(child.pid)[1:]:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        started.add(fh.read().decode(errors="replace").replace("\0", " ").strip())
                except OSError:
                    pass
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, child.returncode, out.read(), err.read()), child.pid, started
