"""The fetch policy against real servers: every hostile answer gets its refusal, and a refused
address never sees a connection.

Every server here is on loopback, which the policy refuses unless the fetch is opted in, so a
fetch that must reach the test server is opted in (``LOCAL``) and the refusal under test comes
from a redirect, a link or a second host name of the same server.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import subprocess
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch.errors import ConfigError
from framewatch.ingest import outcomes as oc
from framewatch.ingest.addresses import (
    FetchPolicy,
    address_refusal,
    redirect_refusal,
    same_site,
    url_refusal,
)
from framewatch.ingest.fetcher import BadContentEncoding, Fetcher, FetchResult, content_coding
from framewatch.ingest.sources import Source, load_sources
from framewatch.ingest.state import IngestState
from framewatch.ingest.worker import Worker
from framewatch.metrics import IngestMetrics
from framewatch.settings import Settings
from tests.helpers.fake_producer import FakeProducer
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.paths import FEEDS as FIXTURES

FEED = rss("News", [("a1", "Budget")])
LOCAL = FetchPolicy(allow_private=True)
CAP = 1_000_000
BOMB_SIZE = 50_000_000


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer().start()
    yield srv
    srv.stop()


class Sentinel:
    """A listener on 127.0.0.2 that answers nothing and counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.count = 0

    def connections(self) -> int:
        """Connections so far: the kernel queues each one until accepted, so none is missed."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.count
            conn.close()
            self.count += 1


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    s = Sentinel()
    yield s
    s.sock.close()


def fetch(url: str, policy: FetchPolicy = LOCAL, **kw: object) -> FetchResult:
    fetcher = make_fetcher(**kw)

    async def go() -> FetchResult:
        try:
            return await fetcher.fetch(url, policy=policy)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def make_fetcher(**kw: object) -> Fetcher:
    limits: dict[str, object] = {"timeout_s": 2.0, "max_bytes": CAP, "max_redirects": 3,
                                 "per_host": 2, "total": 8, "user_agent": "framewatch-test/1"}
    limits.update(kw)
    return Fetcher(**limits)  # type: ignore[arg-type]


def zeros_gzip(size: int) -> bytes:
    """gzip of *size* zero bytes, built in 1 MB steps so the test itself never holds them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1_000_000)
    return b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()


# --- pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0", "240.0.0.1",
    "169.254.169.254", "224.0.0.1", "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1",
    "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::7f00:1",
    "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "100.100.100.200",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    import ipaddress

    assert address_refusal(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize(("address", "opted_in"), [
    ("93.184.216.34", None), ("2606:4700::1111", None), ("::ffff:93.184.216.34", None),
    ("127.0.0.1", "ok"), ("10.1.2.3", "ok"), ("fd12:3456::1", "ok"), ("100.64.0.1", "ok"),
    # no feed lives on a metadata service or a link-local address: refused even when opted in
    ("169.254.169.254", "refused"), ("fe80::1", "refused"), ("fd00:ec2::254", "refused"),
    ("::ffff:169.254.169.254", "refused"), ("224.0.0.1", "refused"),
])
def test_public_addresses_pass_and_opt_in_lifts_only_the_private_ranges(address: str, opted_in: str | None) -> None:
    import ipaddress

    ip = ipaddress.ip_address(address)
    if opted_in is None:
        assert address_refusal(ip, allow_private=False) is None
    else:
        assert bool(address_refusal(ip, allow_private=True)) == (opted_in == "refused")


def test_url_rules() -> None:
    assert url_refusal("https://a.example/feed", FetchPolicy(), given=True) is None
    for bad in ("ftp://a.example/f", "gopher://a.example/", "javascript:alert(1)", "data:,x", "//a.example/x"):
        assert url_refusal(bad, LOCAL, given=True)
    # file: only for an opted-in URL a person gave, never a redirect or a link
    assert url_refusal("file:///tmp/f.xml", LOCAL, given=True) is None
    assert url_refusal("file:///tmp/f.xml", FetchPolicy(), given=True)
    assert url_refusal("file:///tmp/f.xml", LOCAL, given=False)
    assert url_refusal("file:///tmp/f.xml", FetchPolicy(allow_private=True, site="http://a.example/"), given=True)


def test_redirect_rules_refuse_a_downgrade_and_other_schemes() -> None:
    assert redirect_refusal("https://a.example/f", "http://a.example/f") == "redirect from https down to http"
    assert redirect_refusal("http://a.example/f", "https://a.example/f") is None
    assert redirect_refusal("https://a.example/f", "https://b.example/f") is None
    assert redirect_refusal("http://a.example/f", "file:///etc/passwd")


def test_same_site_is_scheme_host_and_port_with_an_upgrade_allowed() -> None:
    feed = "http://Forum.example/forums/1/index.rss"
    assert same_site(feed, "http://forum.example:80/threads/x.1/")
    assert same_site(feed, "https://forum.example/threads/x.1/")  # upgrade
    assert not same_site(feed, "http://forum.example:8080/threads/x.1/")
    assert not same_site(feed, "http://evil.example/threads/x.1/")
    assert not same_site(feed, "http://sub.forum.example/threads/x.1/")
    assert not same_site("https://forum.example/rss", "http://forum.example/threads/x.1/")  # downgrade


def test_content_codings() -> None:
    assert content_coding(None) is None and content_coding("identity") is None
    assert content_coding("GZIP") == "gzip" and content_coding("deflate") == "deflate"
    for bad in ("gzip, gzip", "gzip,deflate", "br", "compress", "zstd"):
        with pytest.raises(BadContentEncoding):
            content_coding(bad)


# --- content encodings on the wire --------------------------------------------------------------


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _peaks(run: Callable[[], FetchResult]) -> tuple[FetchResult, int, int | None]:
    """*run*'s result, the peak of Python allocations during it, and the growth of the process's
    peak RSS (None where the kernel does not let us reset the peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before: int | None = _vm("VmRSS")
    except OSError:
        before = None
    tracemalloc.start()
    try:
        result = run()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, traced, None if before is None else _vm("VmHWM") - before


def test_stacked_gzip_is_bad_content_encoding_and_never_decoded(server: FeedServer) -> None:
    # 50 MB of zeros, gzipped twice: a few hundred bytes on the wire
    server.routes["/stacked"] = Route(gzip.compress(zeros_gzip(BOMB_SIZE)), headers={"Content-Encoding": "gzip, gzip"})
    result, traced, rss = _peaks(lambda: fetch(server.url("/stacked")))
    assert result.outcome == oc.BAD_CONTENT_ENCODING and result.body == b""
    assert "stacked" in result.detail and server.hits["/stacked"] == 1
    assert traced < 5 * CAP and (rss is None or rss < BOMB_SIZE // 3), (traced, rss)


def test_gzip_bomb_stops_at_the_cap_without_expanding_in_memory(server: FeedServer) -> None:
    bomb = zeros_gzip(BOMB_SIZE)
    assert len(bomb) < 100_000
    server.routes["/bomb"] = Route(bomb, headers={"Content-Encoding": "gzip"})
    result, traced, rss = _peaks(lambda: fetch(server.url("/bomb")))
    assert result.outcome == oc.TOO_LARGE and result.body == b""
    # neither Python's allocations nor the process's memory grew anywhere near the bomb's size
    assert traced < 5 * CAP and (rss is None or rss < BOMB_SIZE // 3), (traced, rss)
    # the same bytes under a cap that fits them decode in full: the bomb is real
    assert len(fetch(server.url("/bomb"), max_bytes=BOMB_SIZE).body) == BOMB_SIZE


@pytest.mark.parametrize(("encoding", "body", "outcome"), [
    ("br", b"\x0b\x02\x80hello\x03", oc.BAD_CONTENT_ENCODING),  # not asked for, not decoded
    ("gzip", b"\x1f\x8b\x08\x00garbage-not-deflate-data", oc.BAD_CONTENT_ENCODING),
    ("deflate", zlib.compress(FEED), oc.OK),  # zlib-wrapped, as the RFC says
    ("deflate", zlib.compress(FEED)[2:-4], oc.OK),  # raw deflate, as some servers send
    ("gzip", gzip.compress(FEED[:40]) + gzip.compress(FEED[40:]), oc.OK),  # two gzip members
])
def test_content_encodings_on_the_wire(server: FeedServer, encoding: str, body: bytes, outcome: str) -> None:
    server.routes["/enc"] = Route(body, headers={"Content-Encoding": encoding})
    result = fetch(server.url("/enc"))
    assert result.outcome == outcome
    if outcome == oc.OK:
        assert result.body == FEED


# --- schemes and addresses, hop by hop ----------------------------------------------------------


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/feed", "file:///etc/passwd", "gopher://127.0.0.1:70/1",
                                      "javascript:alert(1)"])
def test_redirect_to_another_scheme_is_refused_url(server: FeedServer, location: str) -> None:
    server.routes["/r"] = Route(status=302, location=location)
    result = fetch(server.url("/r"))
    assert result.outcome == oc.REFUSED_URL and result.status == 302
    assert f"redirect to a {location.split(':')[0]}: URL" in result.detail


def test_loopback_feed_not_opted_in_is_refused_before_any_request(server: FeedServer) -> None:
    server.routes["/feed"] = Route(FEED)
    refused = fetch(server.url("/feed"), FetchPolicy())
    assert refused.outcome == oc.REFUSED_ADDRESS and "loopback" in refused.detail
    assert server.hits["/feed"] == 0
    assert fetch(server.url("/feed"), LOCAL).outcome == oc.OK  # an allow_private feed works


@pytest.mark.parametrize("target", [
    "http://127.0.0.2:{port}/feed", "http://localhost:{port}/feed", "http://[::ffff:127.0.0.2]:{port}/feed",
    "http://10.255.255.1:{port}/feed", "http://169.254.169.254/latest/meta-data/",
])
def test_redirect_to_a_private_address_is_refused_and_never_connected(
    server: FeedServer, sentinel: Sentinel, target: str
) -> None:
    # the feed's own host is opted in; the redirect goes to another host, held to the public rule
    server.routes["/r"] = Route(status=301, location=target.format(port=sentinel.port))
    result = fetch(server.url("/r"))
    assert result.outcome == oc.REFUSED_ADDRESS, result
    assert sentinel.connections() == 0


def test_the_sentinel_does_see_a_connection_that_is_allowed(sentinel: Sentinel) -> None:
    result = fetch(f"http://127.0.0.2:{sentinel.port}/feed", LOCAL, timeout_s=0.5)
    assert result.outcome != oc.REFUSED_ADDRESS
    assert sentinel.connections() == 1


def test_a_name_is_checked_on_every_address_it_resolves_to_and_connected_by_that_address(
    server: FeedServer, sentinel: Sentinel
) -> None:
    server.routes["/feed"] = Route(FEED)
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return {"feed.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "127.0.0.2"]}[host]

    # feed.test exists only in this resolver: an answer proves the socket went to its address
    ok = fetch(f"http://feed.test:{server.port}/feed", LOCAL, resolve=resolve)
    assert ok.outcome == oc.OK and ok.body == FEED
    assert server.headers_of("/feed")[0]["host"] == f"feed.test:{server.port}"
    assert fetch(f"http://feed.test:{server.port}/feed", FetchPolicy(), resolve=resolve).outcome == oc.REFUSED_ADDRESS
    mixed = fetch(f"http://mixed.test:{sentinel.port}/feed", FetchPolicy(), resolve=resolve)
    assert mixed.outcome == oc.REFUSED_ADDRESS and "127.0.0.2" in mixed.detail
    assert sentinel.connections() == 0 and lookups == ["feed.test", "feed.test", "mixed.test"]


# --- https down to http (a real TLS server) -----------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the fetcher's TLS context trusts it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = FeedServer()
    srv._httpd.socket = context.wrap_socket(srv._httpd.socket, server_side=True)  # the helper speaks http only
    srv.start()
    yield srv
    srv.stop()


def test_https_to_http_redirect_is_refused(tls_server: FeedServer, server: FeedServer) -> None:
    server.routes["/feed"] = Route(FEED)
    tls_server.routes["/feed"] = Route(FEED)
    tls_server.routes["/down"] = Route(status=301, location=server.url("/feed"))
    # by name: the socket goes to a checked address, the certificate is still checked for the name
    ok = fetch(f"https://localhost:{tls_server.port}/feed")
    assert ok.outcome == oc.OK and ok.body == FEED
    down = fetch(f"https://localhost:{tls_server.port}/down")
    assert down.outcome == oc.REFUSED_URL and "https down to http" in down.detail
    assert server.hits["/feed"] == 0


# --- idle pools ----------------------------------------------------------------------------------


def test_idle_host_pools_are_closed_and_the_least_recently_used_past_the_bound(server: FeedServer) -> None:
    server.routes["/feed"] = Route(FEED)
    now = [0.0]
    a, b = f"127.0.0.1:{server.port}", f"localhost:{server.port}"

    async def go() -> None:
        fetcher = make_fetcher(client_idle_s=60.0, max_hosts=1, clock=lambda: now[0])
        try:
            assert (await fetcher.fetch(f"http://{a}/feed", policy=LOCAL)).ok
            first = list(fetcher._hosts[a].clients.values())  # peeking: closing is not observable otherwise
            now[0] = 30.0
            assert (await fetcher.fetch(f"http://{a}/feed", policy=LOCAL)).ok
            assert fetcher.open_hosts() == [a] and not first[0].is_closed  # used 30 s ago: kept
            now[0] = 100.0  # 70 s idle
            assert (await fetcher.fetch(f"http://{b}/feed", policy=LOCAL)).ok
            assert fetcher.open_hosts() == [b] and first[0].is_closed
            now[0] = 101.0  # b is not idle, but only one host may keep a pool
            assert (await fetcher.fetch(f"http://{a}/feed", policy=LOCAL)).ok
            assert fetcher.open_hosts() == [a]
        finally:
            await fetcher.aclose()

    asyncio.run(go())


# --- links found in feeds, through the worker ---------------------------------------------------


def _worker(tmp_path: Path, sources: list[Source]) -> tuple[Worker, CollectorRegistry, FakeProducer]:
    settings = Settings(state_dir=tmp_path / "state", fetch_timeout_s=2.0, topic_prefix="t.")  # type: ignore[call-arg]
    registry, producer = CollectorRegistry(), FakeProducer()
    worker = Worker(settings=settings, sources=sources, producer=producer,
                    state=IngestState.for_shard(settings.state_dir, 0, 1), metrics=IngestMetrics(registry))
    return worker, registry, producer


def test_thread_links_off_the_feeds_host_are_refused_and_counted(tmp_path: Path, server: FeedServer) -> None:
    # the same server under another name: a link that were followed would show up in its hits
    forum = (FIXTURES / "xenforo_forum.rss").read_bytes().replace(
        b"https://xf.example.com", f"http://localhost:{server.port}".encode())
    server.routes["/f.rss"] = Route(forum)
    page = (FIXTURES / "xenforo_thread_page1.html").read_bytes()
    for path in ("/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/",
                 "/threads/eu-ai-act-bans-social-scoring.4517/"):
        server.routes[path] = Route(page, content_type="text/html")
    source = Source("xf", server.url("/f.rss"), "forum", platform="xenforo", allow_private=True)
    worker, registry, producer = _worker(tmp_path, [source])
    summary = worker.run(once=True)
    assert summary.outcomes == {oc.OK: 1} and producer.sent  # the feed's own items still go out
    assert registry.get_sample_value("framewatch_ingest_fetches_total", {"feed": "xf", "outcome": oc.REFUSED_URL}) == 2
    assert sum(n for p, n in server.hits.items() if p.startswith("/threads/")) == 0


def test_next_page_link_off_the_feeds_host_is_refused(tmp_path: Path, server: FeedServer) -> None:
    host = server.url("").encode()
    t1 = "/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/"
    forum = (FIXTURES / "xenforo_forum.rss").read_bytes().replace(b"https://xf.example.com", host)
    page1 = (FIXTURES / "xenforo_thread_page1.html").read_bytes().replace(b"https://xf.example.com", host)
    page1 = page1.replace(f'href="{t1}page-2"'.encode(), f'href="http://localhost:{server.port}{t1}page-2"'.encode())
    server.routes["/f.rss"] = Route(forum)
    server.routes[t1] = Route(page1, content_type="text/html")
    server.routes[t1 + "page-2"] = Route(page1, content_type="text/html")
    server.routes["/threads/eu-ai-act-bans-social-scoring.4517/"] = Route(b"", status=404)
    source = Source("xf", server.url("/f.rss"), "forum", platform="xenforo", allow_private=True)
    worker, registry, _ = _worker(tmp_path, [source])
    worker.run(once=True)
    assert server.hits[t1] == 1 and server.hits[t1 + "page-2"] == 0
    assert registry.get_sample_value("framewatch_ingest_fetches_total", {"feed": "xf", "outcome": oc.REFUSED_URL}) == 1


def test_a_source_not_opted_in_gets_refused_address_from_the_worker(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/feed"] = Route(FEED)
    worker, _, producer = _worker(tmp_path, [Source("lan", server.url("/feed"), "news")])
    assert worker.run(once=True).outcomes == {oc.REFUSED_ADDRESS: 1}
    assert server.hits["/feed"] == 0 and producer.sent == []


# --- the sources file ----------------------------------------------------------------------------


def test_sources_file_allow_private(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    entry = "sources:\n  - id: lan\n    url: {url}\n    kind: news\n"
    path.write_text(entry.format(url="http://10.0.0.5/rss") + "    allow_private: true\n")
    assert load_sources(path)[0].allow_private is True
    path.write_text(entry.format(url="http://10.0.0.5/rss"))
    assert load_sources(path)[0].allow_private is False
    path.write_text(entry.format(url="http://10.0.0.5/rss") + "    allow_private: 'yes please'\n")
    with pytest.raises(ConfigError, match=r"sources\.yaml:2: field 'sources\[0\]\.allow_private': expected true or false"):
        load_sources(path)
    path.write_text(entry.format(url="file:///srv/feeds/news.xml"))
    with pytest.raises(ConfigError, match="allow_private: true"):
        load_sources(path)
    path.write_text(entry.format(url="file:///srv/feeds/news.xml") + "    allow_private: true\n")
    assert load_sources(path)[0].url == "file:///srv/feeds/news.xml"
