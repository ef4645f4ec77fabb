"""A real HTTP server on 127.0.0.1 serving feed bodies the way real servers misbehave.

Used by the fetcher, worker and integration tests (and the benchmark's idea of a server): each
path maps to a :class:`Route` that can carry an ETag / Last-Modified (answered with 304 when the
client's validators match), gzip, a Retry-After, a delay, a redirect, or a body streamed without
Content-Length. The server records hits, request headers, peak concurrency and the body bytes
it managed to write per path.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """How one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    delay_s: float = 0.0
    location: str | None = None
    stream: bool = False  # send without Content-Length, in chunks, until closed
    hold_until_inflight: int = 0  # each request waits (at most 5 s) until this many are in flight
    headers: dict[str, str] = field(default_factory=dict)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up on purpose (timeouts, capped reads)
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class FeedServer:
    """A threading HTTP server whose routes tests change on the fly."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: defaultdict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.peak: defaultdict[str, int] = defaultdict(int)
        self.sent: defaultdict[str, int] = defaultdict(int)
        self._inflight: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.hits[path] += 1
                    server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                    server._inflight[path] += 1
                    server.peak[path] = max(server.peak[path], server._inflight[path])
                try:
                    server._answer(self, path)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    with server._lock:
                        server._inflight[path] -= 1

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        """Absolute URL of *path* on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """Request headers of every request to *path*, oldest first."""
        return [h for p, h in self.requests if p == path]

    def _answer(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        route = self.routes.get(path)
        if route is None:
            _send(handler, 404, {"Content-Type": "text/plain"}, b"not found")
            return
        if route.hold_until_inflight:
            deadline = time.monotonic() + 5
            while self._inflight[path] < route.hold_until_inflight and time.monotonic() < deadline:
                time.sleep(0.005)
        if route.delay_s:
            time.sleep(route.delay_s)
        headers = dict(route.headers)
        if route.location is not None:
            headers["Location"] = route.location
            _send(handler, route.status, headers, b"")
            return
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if _matches(handler, route):
            _send(handler, 304, headers, b"")
            return
        headers["Content-Type"] = route.content_type
        body = route.body
        if route.gzip and "gzip" in (handler.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if route.stream:
            handler.send_response(route.status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.close_connection = True
            for start in range(0, len(body), 65536):
                handler.wfile.write(body[start : start + 65536])
                with self._lock:
                    self.sent[path] += len(body[start : start + 65536])
            return
        _send(handler, route.status, headers, body)


def _matches(handler: BaseHTTPRequestHandler, route: Route) -> bool:
    """True when the client's validators match (ETag first, then Last-Modified)."""
    inm = handler.headers.get("If-None-Match")
    if route.etag and inm is not None:
        return inm == route.etag
    ims = handler.headers.get("If-Modified-Since")
    return bool(route.last_modified and ims == route.last_modified)


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)


def rss(title: str, entries: list[tuple[str, str]], *, link: str = "https://news.example.org/") -> bytes:
    """A small RSS 2.0 feed with one item per (guid, title), for tests that generate feeds."""
    items = "".join(
        f"<item><title>{t}</title><link>{link}{g}</link><guid isPermaLink=\"false\">{g}</guid>"
        f"<pubDate>Wed, 19 Nov 2025 08:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Story {g}: the city council debated {t} at length.&lt;/p&gt;</description></item>"
        for i, (g, t) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>{link}</link><description>{title}</description>{items}"
        "</channel></rss>"
    ).encode()
