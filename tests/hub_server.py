"""A real HTTP server on 127.0.0.1 that answers as the Hugging Face Hub does for downloads.

huggingface_hub talks to it through ``HF_ENDPOINT`` (or ``endpoint=``): ``HEAD``/``GET``
``/{repo}/resolve/{revision}/{filename}`` with the headers the client reads (``X-Repo-Commit``,
``ETag`` and ``X-Linked-Etag``, ``Content-Length``, ``X-Linked-Size``), byte ranges for resumed
transfers, and the Hub's 404 answers (``X-Error-Code: RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``); ``/api/models/{repo}[/revision/{revision}]`` and ``.../tree/{revision}`` list a
repo's files (what ``snapshot_download`` reads). Faults, per
file: ``cut_after`` (announce the full length, send N bytes, close; every request) and ``corrupt``
(serve the announced length with different bytes). Every request is counted per path (``hits``).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Optional

from http_fixtures import QuietHandler, loopback_server


@dataclass
class HubFile:
    body: bytes
    cut_after: Optional[int] = None
    corrupt: bool = False

    @property
    def etag(self) -> str:  # the Hub's etag of an LFS file is its sha256
        return hashlib.sha256(self.body).hexdigest()

    def served(self) -> bytes:
        if not self.corrupt:
            return self.body
        middle = len(self.body) // 2
        return self.body[:middle] + bytes([self.body[middle] ^ 0xFF]) + self.body[middle + 1:]


@dataclass
class HubRepo:
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)
    branches: tuple[str, ...] = ("main",)


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_HEAD(self) -> None:
                server._answer(self, head=True)

            def do_GET(self) -> None:
                server._answer(self, head=False)

        self.httpd, self.thread = loopback_server(Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path], commit: Optional[str] = None) -> HubRepo:
        blobs = {name: HubFile(body.read_bytes() if isinstance(body, Path) else body) for name, body in files.items()}
        commit = commit or hashlib.sha1(repr(sorted((n, f.etag) for n, f in blobs.items())).encode()).hexdigest()
        self.repos[repo_id] = HubRepo(commit, blobs)
        return self.repos[repo_id]

    def requests(self, needle: str = "") -> int:
        with self._lock:
            return sum(n for path, n in self.hits.items() if needle in path)

    def start(self) -> "HubServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ answers

    def _error(self, h: BaseHTTPRequestHandler, head: bool, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _json(self, h: BaseHTTPRequestHandler, head: bool, value) -> None:
        body = json.dumps(value).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _repo_at(self, repo_id: str, revision: str) -> tuple[Optional[HubRepo], Optional[str]]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, "RepoNotFound"
        if revision not in (repo.commit, *repo.branches):
            return None, "RevisionNotFound"
        return repo, None

    def _answer(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if api:
            repo, error = self._repo_at(api.group(1), api.group(2) or "main")
            if repo is None:
                return self._error(h, head, 404, error, f"{api.group(1)}: {error}")
            return self._json(h, head, {"id": api.group(1), "sha": repo.commit,
                                        "siblings": [{"rfilename": n} for n in sorted(repo.files)]})
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path)
        if tree:  # what snapshot_download lists (one page, every file at the top level)
            repo, error = self._repo_at(tree.group(1), tree.group(2))
            if repo is None:
                return self._error(h, head, 404, error, f"{tree.group(1)}@{tree.group(2)}: {error}")
            entries = [{"type": "file", "path": n, "size": len(f.body), "oid": hashlib.sha1(f.body).hexdigest(),
                        "lfs": {"oid": f.etag, "size": len(f.body), "pointerSize": 134}} for n, f in sorted(repo.files.items())]
            return self._json(h, head, entries)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not m:
            return self._error(h, head, 404, "RepoNotFound", f"{path}: no such route")
        repo, error = self._repo_at(m.group(1), m.group(2))
        if repo is None:
            return self._error(h, head, 404, error, f"{m.group(1)}@{m.group(2)}: {error}")
        hub_file = repo.files.get(m.group(3))
        if hub_file is None:
            return self._error(h, head, 404, "EntryNotFound", f"{m.group(3)} is not in {m.group(1)}")
        body = hub_file.served()
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        if ranged and not head:
            start = min(int(ranged.group(1)), len(body))
        h.send_response(206 if start else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("X-Repo-Commit", repo.commit)
        h.send_header("ETag", f'"{hub_file.etag}"')
        h.send_header("X-Linked-Etag", f'"{hub_file.etag}"')
        h.send_header("X-Linked-Size", str(len(body)))
        h.end_headers()
        if head:
            return
        try:
            if hub_file.cut_after is not None and start + len(body[start:]) > hub_file.cut_after:
                h.wfile.write(body[start:max(start, hub_file.cut_after)])
                h.wfile.flush()
                h.close_connection = True
                return
            h.wfile.write(body[start:])
        except (BrokenPipeError, ConnectionResetError):
            pass
