"""A local webhook endpoint on 127.0.0.1 that records every POST (headers, body) and answers 204;
with *hold*, it answers only once ``release`` is set (a test can kill the sender in between)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records each request in ``requests``; ``url`` is its address; use as a context manager."""

    def __init__(self, hold: bool = False) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        received, release = self.requests, self.release

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                release.wait(60)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
