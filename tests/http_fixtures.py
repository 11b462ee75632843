"""A real HTTP server on 127.0.0.1 for ingest tests: yt-dlp talks to it as to any site.

Each route serves bytes (or a file) with a content type; it can answer a
sequence of error statuses first (``fail_first=[429]``), stall mid-body
(``stall_after=N`` bytes, until ``release()``), hang without answering
(``hang=True``: not even a status line), cut its body short (``cut_after=N``:
the full Content-Length is announced, N bytes are sent and the connection is
closed; ``cut_times`` limits it to the first requests that read the body), and
every request is counted per path so tests can prove what was (not) fetched again.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    fail_first: list[int] = field(default_factory=list)  # statuses answered before the body is served
    stall_after: Optional[int] = None  # send this many bytes, then wait until released
    status: int = 200
    require_cookie: Optional[str] = None  # "name=value" the request must carry, else 403
    hang: bool = False  # accept the request and never answer (until the server stops)
    cut_after: Optional[int] = None  # announce the full length, send this many bytes, close the connection
    cut_times: Optional[int] = None  # cut only this many bodies (None: every one)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no request log, and a client that hangs up is not an error."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass


def loopback_server(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threading server on 127.0.0.1 (a free port) and the daemon thread that will serve it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    return httpd, threading.Thread(target=httpd.serve_forever, daemon=True)


class FixtureServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._stopping = threading.Event()
        server = self

        class Handler(QuietHandler):
            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    route = server.routes.get(path)
                    status = route.fail_first.pop(0) if route and route.fail_first else None
                if route is not None and status is None and route.hang:
                    server._stopping.wait(timeout=120)
                    self.close_connection = True
                    return
                if route is not None and status is None and route.require_cookie:
                    if route.require_cookie not in (self.headers.get("Cookie") or ""):
                        status = 403
                if route is None or status is not None:
                    code = status or 404
                    body = f"error {code}".encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    if code == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if head:
                    return
                cut = None
                if route.cut_after is not None:
                    with server._lock:
                        if route.cut_times is None or route.cut_times > 0:
                            cut = route.cut_after
                            if route.cut_times is not None:
                                route.cut_times -= 1
                try:
                    if cut is not None:
                        self.wfile.write(route.body[:cut])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    if route.stall_after is not None and not server._release.is_set():
                        self.wfile.write(route.body[: route.stall_after])
                        self.wfile.flush()
                        server._release.wait(timeout=60)
                        self.close_connection = True
                        return
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd, self.thread = loopback_server(Handler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | Path, content_type: str = "application/octet-stream", **kw) -> str:
        if isinstance(body, Path):
            body = body.read_bytes()
        self.routes[path] = Route(body=body, content_type=content_type, **kw)
        return self.url(path)

    def add_audio(self, path: str, file: Path, **kw) -> str:
        ctype = {".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac"}.get(
            file.suffix.lower(), "application/octet-stream")
        return self.add(path, file, ctype, **kw)

    def release(self) -> None:
        """Let stalled responses go on (they are closed; the client must retry)."""
        self._release.set()

    def start(self) -> "FixtureServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def rss_feed(title: str, items: list[tuple]) -> bytes:
    """An RSS 2.0 podcast feed; items are (guid, title, enclosure url[, itunes duration s]).
    yt-dlp's generic extractor expands it into a playlist."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
             f'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>{title}</title>'
             "<link>http://127.0.0.1/</link><description>test feed</description>"]
    for guid, item_title, url, *rest in items:
        duration = f"<itunes:duration>{int(rest[0])}</itunes:duration>" if rest else ""
        parts.append(f'<item><title>{item_title}</title><guid>{guid}</guid>{duration}'
                     f'<enclosure url="{url}" type="audio/ogg" length="1"/></item>')
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
