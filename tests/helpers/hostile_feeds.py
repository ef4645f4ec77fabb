"""A hostile feed corpus: a raw-socket server on 127.0.0.1 answering the ways feeds attack a
poller, a sentinel that counts what reaches a refused address, and a one-cycle runner.

:data:`CASES` is the table: one :class:`Case` per kind of hostile response, with the handler
that writes the raw answer and what the worker must make of it (the feed's outcome, flags on its
items, the outcomes of the links it made the worker follow). Each case is served under
``/<case name>/...`` so it can have its own paths (redirect chains, thread pages).

The server speaks HTTP/1.1 by hand, one request per connection, so it can lie about lengths,
reset connections, send stacked encodings, endless headers or a byte a second. The sentinel is
a plain server on another loopback address (127.0.0.2): every connection to it is counted, and
no source that is not opted in, and no link or redirect of any feed, may ever reach it.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import socket
import socketserver
import ssl
import struct
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.feed_server import rss

OK, MALFORMED = "ok", "malformed"
SENTINEL_HOST = "127.0.0.2"
SECRET = "SECRET-9f27c1-do-not-leak"  # in a local file the corpus points file:/XXE links at

H = '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{t}</title><link>https://h.example.org/</link><description>d</description>'
ITEM = "<item><title>{t}</title><link>https://h.example.org/{g}</link><guid isPermaLink=\"false\">{g}</guid><description>{d}</description></item>"
T = "</channel></rss>"


@dataclass(frozen=True)
class Context:
    """Where things are, for handlers that point elsewhere."""

    base: str  # http://127.0.0.1:PORT of the hostile server
    sentinel: str  # http://127.0.0.2:PORT
    secret_file: Path
    tls_base: str | None = None  # https://127.0.0.1:PORT, when a certificate could be made


class Reply:
    """One request to answer: its path below the case name, and the raw socket."""

    def __init__(self, sock: socket.socket, rest: str, ctx: Context) -> None:
        self.sock, self.rest, self.ctx = sock, rest, ctx

    def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.sock.sendall(data)

    def head(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Status line and headers, nothing else."""
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers] + ["Connection: close", "", ""]
        self.send("\r\n".join(lines).encode("latin-1"))

    def respond(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                content_type: str = "application/rss+xml; charset=utf-8") -> None:
        """A whole, honest response."""
        self.head(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])])
        self.send(body)

    def redirect(self, location: str) -> None:
        """A 302 to *location*."""
        self.respond(302, b"", [("Location", location)], "text/plain")


Handler = Callable[[Reply], None]


@dataclass(frozen=True)
class Case:
    """One kind of hostile response and what the worker must make of it."""

    name: str
    handler: Handler | None  # None: the source URL points elsewhere (``url``), nothing is served
    outcomes: tuple[str, ...]  # the feed's final outcome must be one of these (mostly one)
    flags: tuple[str, ...] = ()  # flags an item of the feed must carry on the topic
    link_outcomes: tuple[str, ...] = ()  # outcomes allowed for the links it makes the worker follow
    link_required: tuple[str, ...] = ()  # ... and those that must appear among them
    allow_private: bool = True  # the hostile server is on loopback: opted in, unless a case says no
    platform: str = "auto"
    url: Callable[[Context], str] | None = None
    tls: bool = False  # served by the TLS listener
    why: str = ""


# --- bodies ---------------------------------------------------------------------------------------


def _feed(title: str, n: int = 2) -> bytes:
    return rss(title, [(f"{title}-{i}", f"{title} story {i}") for i in range(n)], link="https://h.example.org/")


@functools.cache
def _bomb() -> tuple[bytes, int]:
    """1 GiB of zeros as gzip (about 1 MB on the wire), with a correct trailer."""
    zeros = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)  # identical for every MiB after a full flush
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(zeros, crc)
    body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + block * 1024 + b"\x03\x00" + struct.pack("<II", crc, (1 << 30) & 0xFFFFFFFF)
    return body, 1 << 30


@functools.cache
def _incompressible_item() -> bytes:
    """One item of 2.5 MB of random words: over the broker's 1 MiB limit even gzip-compressed."""
    rnd = random.Random(11)
    words = " ".join("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(420_000))
    return (H.format(t="Big") + ITEM.format(t="One huge story", g="huge-1", d=words[:2_500_000]) + T).encode()


@functools.cache
def _tiny_entries() -> bytes:
    items = "".join(f"<item><guid>{i}</guid><title>t</title></item>" for i in range(100_000))  # 4.6 MB
    return (H.format(t="Tiny") + items + T).encode()


def _paragraphs() -> bytes:
    html = "<p>One more paragraph of ordinary text, with <b>bold</b> words.</p>" * 4_700  # ~300 kB
    return (H.format(t="Paras") + ITEM.format(t="Long", g="paras-1", d=f"<![CDATA[{html}]]>") + T).encode()


def _unclosed() -> bytes:
    html = "<div><p><b><i>x" * 20_000  # ~300 kB of tags that never close
    return (H.format(t="Unclosed") + ITEM.format(t="Unclosed", g="unclosed-1", d=f"<![CDATA[{html}]]>") + T).encode()


def _deep_xml() -> bytes:
    return (H.format(t="Deep") + "<x>" * 50_000 + "</x>" * 50_000 + ITEM.format(t="Deep", g="deep-1", d="d") + T).encode()


def _deep_json() -> bytes:
    return ('{"version":"https://jsonfeed.org/version/1.1","title":"Deep","items":[{"id":"1","content_text":"hi","_x":'
            + "[" * 100_000 + "]" * 100_000 + "}]}").encode()


def _laughs() -> bytes:
    ents = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(9))
    return (f'<?xml version="1.0"?><!DOCTYPE rss [{ents}]><rss version="2.0"><channel><title>Laughs</title>'
            '<item><title>&j;</title><guid>lol-1</guid><description>&j;</description></item></channel></rss>').encode()


def _xxe(r: Reply) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{r.ctx.secret_file}">]>'
            '<rss version="2.0"><channel><title>XXE</title><item><title>t &xxe;</title><guid>xxe-1</guid>'
            "<description>leak: &xxe;</description></item></channel></rss>").encode()


def _surrogate_json() -> bytes:
    return (b'{"version":"https://jsonfeed.org/version/1.1","title":"Sur\\ud800","items":[{"id":"s1",'
            b'"title":"bad \\ud800 here","content_text":"text \\udfff and \\ud800 end"}]}')


def _xenforo_feed(r: Reply, links: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Thread {i}</title><link>{link}</link><guid isPermaLink=\"false\">{9000 + i}</guid>"
        f"<pubDate>Thu, 07 Mar 2024 12:4{i}:02 +0000</pubDate><dc:creator>U{i}</dc:creator>"
        f"<content:encoded><![CDATA[<div class=\"bbWrapper\">First post {i}.</div>]]></content:encoded></item>"
        for i, link in enumerate(links)
    )
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Forum</title>'
            f'<link>{r.ctx.base}/forums/</link><generator>XenForo</generator>{items}</channel></rss>').encode()


def _xenforo_page(next_url: str) -> bytes:
    return ('<!DOCTYPE html><html lang="en" data-template="thread_view"><head><title>T</title></head><body>'
            '<h1 class="p-title-value">Local thread</h1><article class="message" data-author="Ann" data-content="post-7001" '
            'id="js-post-7001"><div class="message-body"><div class="bbWrapper">A reply on page one.</div></div></article>'
            f'<a class="pageNav-jump pageNav-jump--next" href="{next_url}">Next</a></body></html>').encode()


# --- handlers -------------------------------------------------------------------------------------


def _evil_links(r: Reply) -> None:
    s = r.ctx.secret_file.parent
    r.respond(body=_xenforo_feed(r, [f"file://{s}/threads/evil.1/", "http://169.254.169.254/threads/meta.2/",
                                     "http://10.1.2.3/threads/lan.3/", f"{r.ctx.sentinel}/threads/sentinel.4/"]))


def _next_offhost(r: Reply) -> None:
    if r.rest.startswith("/threads/"):
        r.respond(body=_xenforo_page(f"{r.ctx.sentinel}/threads/local.5/page-2"), content_type="text/html; charset=utf-8")
    else:
        r.respond(body=_xenforo_feed(r, [f"{r.ctx.base}/xenforo-next-page-offhost/threads/local.5/"]))


def _drip(r: Reply) -> None:
    r.head(200, [("Content-Type", "application/rss+xml")])
    for byte in _feed("Drip")[:120]:
        r.send(bytes([byte]))
        time.sleep(1.0)


def _reset(r: Reply) -> None:
    body = _feed("Reset", 40)
    r.head(200, [("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body)))])
    r.send(body[:700])
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


def _lying_length(r: Reply) -> None:
    body = _feed("Liar")
    r.head(200, [("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body) + 50_000))])
    r.send(body)


def _huge_headers(r: Reply) -> None:
    r.head(200, [("Content-Type", "application/rss+xml"), *((f"X-Junk-{i}", "j" * 200) for i in range(10_000)),
                 ("Content-Length", "0")])


def _endless(r: Reply) -> None:
    step = r.rest.strip("/")
    n = int(step) if step.isdigit() else 0
    r.redirect(f"/endless-redirects/{n + 1}")


def _bomb_handler(r: Reply) -> None:
    body, _ = _bomb()
    r.respond(body=body, headers=[("Content-Encoding", "gzip")])


def _stream_forever(r: Reply) -> None:
    r.head(200, [("Content-Type", "application/rss+xml")])
    r.send(H.format(t="Forever").encode())
    chunk = b"<!-- " + b"z" * 65_000 + b" -->"
    for _ in range(400):  # 26 MB at most, without Content-Length
        r.send(chunk)


def _huge_cl(r: Reply) -> None:
    r.head(200, [("Content-Type", "application/rss+xml"), ("Content-Length", str(10 * 1024**3))])
    r.send(b"<rss>" + b" " * 60_000)


def _chunked_garbage(r: Reply) -> None:
    r.head(200, [("Content-Type", "application/rss+xml"), ("Transfer-Encoding", "chunked")])
    r.send(b"zz-not-hex\r\n" + _feed("Chunk") + b"\r\n0\r\n\r\n")


def _body(data: bytes | Callable[[], bytes], content_type: str = "application/rss+xml; charset=utf-8",
          headers: list[tuple[str, str]] | None = None, status: int = 200) -> Handler:
    return lambda r: r.respond(status, data() if callable(data) else data, headers, content_type)


ATOM = (b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Good Atom</title>'
        b'<id>urn:good-atom</id><updated>2025-11-19T08:00:00Z</updated>'
        + b"".join(f'<entry><title>Atom story {i}</title><id>urn:good-atom:{i}</id><link href="https://atom.example.org/{i}"/>'
                   f"<updated>2025-11-19T08:0{i}:00Z</updated><summary>Council debate number {i}.</summary></entry>".encode()
                   for i in range(2)) + b"</feed>")
JSONFEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Good JSON", "items": [
    {"id": f"gj-{i}", "url": f"https://json.example.org/{i}", "title": f"JSON story {i}",
     "content_text": f"The council debated plan {i}.", "date_published": "2025-11-19T08:00:00Z"} for i in range(2)]}).encode()
GOOD: dict[str, tuple[Handler, int]] = {  # good feeds served beside the corpus: handler, entries
    "good-rss-a": (_body(_feed("GoodA", 3)), 3),
    "good-rss-b": (_body(_feed("GoodB", 2), headers=[("ETag", '"b1"')]), 2),
    "good-atom": (_body(ATOM, "application/atom+xml"), 2),
    "good-json": (_body(JSONFEED, "application/feed+json"), 2),
}

CASES: tuple[Case, ...] = (
    # --- bytes on the wire
    Case("stacked-gzip", _body(lambda: gzip.compress(gzip.compress(_feed("Stack"))), headers=[("Content-Encoding", "gzip, gzip")]), ("bad_content_encoding",)),
    Case("unknown-content-encoding", _body(lambda: _feed("Enc"), headers=[("Content-Encoding", "zstd-x, br")]), ("bad_content_encoding",)),
    Case("gzip-garbage", _body(b"\x1f\x8b\x08\x00not really gzip at all", headers=[("Content-Encoding", "gzip")]), ("bad_content_encoding", "http_error"),
         why="undecodable gzip: refused as an encoding or as a broken response"),
    Case("gzip-bomb", _bomb_handler, ("too_large",)),
    Case("endless-body", _stream_forever, ("too_large",)),
    Case("huge-content-length", _huge_cl, ("too_large",)),
    Case("huge-headers", _huge_headers, ("http_error", "connection_error")),
    Case("content-length-lies", _lying_length, ("http_error", "connection_error")),
    Case("reset-mid-body", _reset, ("connection_error", "http_error")),
    Case("chunked-garbage", _chunked_garbage, ("http_error", "connection_error")),
    Case("slow-drip", _drip, ("timeout",)),
    # --- status codes and hints
    Case("error-500-absurd-retry-after", _body(b"oops", "text/plain", [("Retry-After", "9" * 40)], 500), ("http_error",)),
    Case("429-retry-after-year-9999", _body(b"", "text/plain", [("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")], 429), ("rate_limited",)),
    Case("503-negative-retry-after", _body(b"", "text/plain", [("Retry-After", "-5")], 503), ("rate_limited",)),
    # --- redirects and addresses
    Case("endless-redirects", _endless, ("redirect_loop",)),
    Case("redirect-to-ftp", lambda r: r.redirect("ftp://127.0.0.1/feed.xml"), ("refused_url",)),
    Case("redirect-to-file", lambda r: r.redirect(f"file://{r.ctx.secret_file}"), ("refused_url",)),
    Case("redirect-to-private", lambda r: r.redirect(f"{r.ctx.sentinel}/feed.xml"), ("refused_address",),
         why="the opt-in covers the feed's own host, not another private host it redirects to"),
    Case("redirect-to-metadata", lambda r: r.redirect("http://169.254.169.254/latest/meta-data/"), ("refused_address",)),
    Case("https-to-http", lambda r: r.redirect(f"{r.ctx.base}/downgrade-target/feed"), ("refused_url",), tls=True),
    Case("direct-private-not-opted-in", None, ("refused_address",), allow_private=False, url=lambda c: f"{c.sentinel}/feed.xml"),
    Case("direct-metadata-opted-in", None, ("refused_address",), url=lambda c: "http://169.254.169.254/latest/meta-data/",
         why="link-local (cloud metadata) is refused even for an opted-in source"),
    Case("direct-metadata", None, ("refused_address",), allow_private=False, url=lambda c: "http://169.254.169.254/feed"),
    Case("xenforo-evil-thread-links", _evil_links, (OK,), link_outcomes=("refused_url", "refused_address"), platform="xenforo"),
    Case("xenforo-next-page-offhost", _next_offhost, (OK,), link_outcomes=(OK, "refused_url"), link_required=(OK,), platform="xenforo"),
    # --- charsets
    Case("declared-utf8-latin1-bytes", _body((H.format(t="Caf\xe9") + ITEM.format(t="R\xe9sum\xe9", g="l1", d="na\xefve") + T).encode("latin-1")), (OK,)),
    Case("utf16-no-bom", _body(lambda: _feed("Sixteen").decode().encode("utf-16-le")), ("bad_encoding",)),
    Case("unknown-charset", _body(lambda: _feed("Klingon").replace(b"UTF-8", b"x-klingon"), "application/rss+xml; charset=x-klingon"),
         (OK, "bad_encoding")),
    Case("binary-garbage", _body(random.Random(7).randbytes(20_000), "application/octet-stream"), ("bad_encoding",)),
    # --- not feeds
    Case("invalid-xml", _body(b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</titl><item><<>></rss'), (MALFORMED,)),
    Case("html-page", _body(b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>No feed here</p></body></html>", "text/html"), ("not_a_feed",)),
    Case("empty-body", _body(b""), ("empty",)),
    Case("json-not-a-feed", _body(b'{"hello": [1, 2, 3]}', "application/json"), ("not_a_feed",)),
    Case("jsonfeed-wrong-types", _body(b'{"version":"https://jsonfeed.org/version/1","title":5,"items":[{"id":5,"title":["a"],"content_html":{"x":1},"url":7},3,null]}',
                                       "application/feed+json"), (OK, MALFORMED)),
    # --- expensive to parse, or to hold
    Case("deep-xml", _body(_deep_xml), (OK, MALFORMED)),
    Case("deep-json", _body(_deep_json, "application/feed+json"), (MALFORMED,)),
    Case("billion-laughs", _body(_laughs), (OK, MALFORMED), why="entities are not expanded: ok with the text as is, or refused"),
    Case("xxe-external-entity", lambda r: r.respond(body=_xxe(r)), (OK, MALFORMED)),
    Case("quadratic-paragraphs", _body(_paragraphs), (OK,)),
    Case("unclosed-tags", _body(_unclosed), (OK,)),
    Case("tiny-entries-100k", _body(_tiny_entries), (OK,)),
    Case("jsonfeed-lone-surrogate", _body(_surrogate_json(), "application/feed+json"), (OK,), flags=("repaired_text",)),
    Case("item-over-broker-limit", _body(_incompressible_item), (OK,), flags=("truncated",)),
)


# --- servers --------------------------------------------------------------------------------------


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 256


class RawServer:
    """A threading TCP server answering ``/<case>/<rest>`` with the case's raw handler; counts
    connections and request paths. ``answer_all`` answers every path (the sentinel)."""

    def __init__(self, host: str, routes: dict[str, Handler], *, tls: ssl.SSLContext | None = None,
                 answer_all: Handler | None = None) -> None:
        self.routes, self.answer_all, self.tls = routes, answer_all, tls
        self.connections = 0
        self.hits: defaultdict[str, int] = defaultdict(int)
        self.ctx: Context | None = None
        self._lock = threading.Lock()
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        self._server = _TCPServer((host, 0), _Handler)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def base(self, scheme: str = "http") -> str:
        """scheme://host:port of this server."""
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> RawServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        try:
            sock.settimeout(30)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65_536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1").split("?", 1)[0]
            with self._lock:
                self.hits[path] += 1
            name, _, rest = path.lstrip("/").partition("/")
            handler = self.answer_all or self.routes.get(name)
            assert self.ctx is not None
            reply = Reply(sock, "/" + rest, self.ctx)
            if handler is None:
                reply.respond(404, b"not found", content_type="text/plain")
            else:
                handler(reply)
        except (OSError, ssl.SSLError, IndexError, ValueError):
            pass  # the client hung up (timeouts, caps, refusals): what a hostile server expects
        finally:
            sock.close()


def make_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 made with the openssl command, if there is one."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, timeout=60)
    return (cert, key) if done.returncode == 0 else None


class Corpus:
    """The hostile server, its TLS twin and the sentinel, running; sources for every case."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        secret = folder / "secret" / "passwd"
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(f"root:x:0:0:{SECRET}:/root:/bin/sh\n")
        routes = {c.name: c.handler for c in CASES if c.handler is not None and not c.tls}
        routes.update({name: handler for name, (handler, _) in GOOD.items()})
        routes["downgrade-target"] = _body(lambda: _feed("Downgraded"))
        routes["warmup"] = _body(lambda: _feed("Warmup"))
        self.server = RawServer("127.0.0.1", routes)
        self.sentinel = RawServer(SENTINEL_HOST, {}, answer_all=_body(lambda: _feed("Sentinel")))
        self.cert = make_certificate(folder)
        self.tls_server: RawServer | None = None
        if self.cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(*self.cert)
            tls_routes: dict[str, Handler] = {c.name: c.handler for c in CASES if c.tls and c.handler}
            self.tls_server = RawServer("127.0.0.1", {**tls_routes, "warmup": routes["warmup"]}, tls=tls)
        self.ctx = Context(self.server.base(), self.sentinel.base(), secret,
                           self.tls_server.base("https") if self.tls_server else None)
        for srv in self._servers():
            srv.ctx = self.ctx
            srv.start()

    def _servers(self) -> list[RawServer]:
        return [s for s in (self.server, self.sentinel, self.tls_server) if s is not None]

    def close(self) -> None:
        for srv in self._servers():
            srv.stop()

    def cases(self) -> list[Case]:
        """The cases this machine can serve (https ones need a certificate)."""
        return [c for c in CASES if not c.tls or self.tls_server is not None]

    def warmup_sources(self) -> list[dict[str, object]]:
        """A good feed on each server, polled in a cycle before the measured one, so that the
        worker's parse processes (one per site) are running when its memory is first read."""
        bases = [self.ctx.base, *([self.ctx.tls_base] if self.ctx.tls_base else [])]
        return [{"id": f"warmup-{i}", "url": f"{base}/warmup/feed", "kind": "news", "allow_private": True}
                for i, base in enumerate(bases)]

    def sources(self) -> list[dict[str, object]]:
        """One source per case and per good feed, as keyword arguments of ``Source``."""
        out: list[dict[str, object]] = []
        for case in self.cases():
            if case.url is not None:
                url = case.url(self.ctx)
            elif case.tls:
                url = f"{self.ctx.tls_base}/{case.name}/feed"
            elif case.platform == "xenforo":
                url = f"{self.ctx.base}/{case.name}/forums/f.1/index.rss"
            else:
                url = f"{self.ctx.base}/{case.name}/feed"
            out.append({"id": case.name, "url": url, "kind": "forum" if case.platform == "xenforo" else "news",
                        "platform": case.platform, "allow_private": case.allow_private})
        out += [{"id": name, "url": f"{self.ctx.base}/{name}/feed", "kind": "news", "allow_private": True} for name in GOOD]
        return out
