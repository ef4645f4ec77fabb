"""Fetcher against a real HTTP server on 127.0.0.1: every misbehaviour gets its outcome.

The server is on loopback, so these fetches are opted in (``LOCAL``, as for a URL the user typed);
the refusals of the fetch policy are tested in test_fetch_policy.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from framewatch.ingest import outcomes as oc
from framewatch.ingest.addresses import FetchPolicy
from framewatch.ingest.fetcher import (
    Fetcher,
    FetchResult,
    conditional_headers,
    declared_too_large,
    is_modified,
    is_rate_limited,
    retry_delay_s,
)
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.ports import refusing_port
from tests.helpers.waiting import wait_until

FEED = rss("News", [("a1", "Budget"), ("a2", "Housing")])
LM = "Wed, 19 Nov 2025 08:00:00 GMT"
LOCAL = FetchPolicy(allow_private=True)


@pytest.fixture
def server():
    srv = FeedServer().start()
    yield srv
    srv.stop()


def fetch(url: str, **kw: object) -> FetchResult:
    limits: dict[str, object] = {
        "timeout_s": 2.0, "max_bytes": 1_000_000, "max_redirects": 3, "per_host": 2, "total": 8,
        "user_agent": "framewatch-test/1",
    }
    validators = {k: kw.pop(k) for k in ("etag", "last_modified") if k in kw}
    policy = kw.pop("policy", LOCAL)
    limits.update(kw)

    async def go() -> FetchResult:
        fetcher = Fetcher(**limits)  # type: ignore[arg-type]
        try:
            return await fetcher.fetch(url, **validators, policy=policy)  # type: ignore[arg-type]
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


# --- predicates -------------------------------------------------------------------------------


def test_predicates() -> None:
    assert not is_modified(304) and is_modified(200)
    assert is_rate_limited(429) and is_rate_limited(503) and not is_rate_limited(500)
    assert conditional_headers('"x"', LM) == {"If-None-Match": '"x"', "If-Modified-Since": LM}
    assert conditional_headers(None, None) == {}
    assert declared_too_large({"content-length": "2000"}, 1000)
    assert not declared_too_large({"content-length": "junk"}, 1000)


def test_retry_delay_seconds_date_and_garbage() -> None:
    now = datetime(2025, 11, 19, 8, 0, tzinfo=UTC)
    assert retry_delay_s({"retry-after": "120"}, now) == 120.0
    date = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_delay_s({"retry-after": date}, now) == pytest.approx(90.0)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert retry_delay_s({"retry-after": past}, now) == 0.0
    assert retry_delay_s({"retry-after": "soon"}, now) is None
    assert retry_delay_s({}, now) is None
    assert retry_delay_s({"retry-after": "99999999999"}, now) == 7 * 86400.0


# --- real HTTP ---------------------------------------------------------------------------------


def test_ok_then_not_modified_by_etag(server: FeedServer) -> None:
    server.routes["/feed"] = Route(FEED, etag='"v1"', last_modified=LM)
    first = fetch(server.url("/feed"))
    assert first.outcome == oc.OK and first.body == FEED and first.status == 200
    assert first.etag == '"v1"' and first.last_modified == LM
    assert first.content_type and first.content_type.startswith("application/rss+xml")
    second = fetch(server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert second.outcome == oc.NOT_MODIFIED and second.body == b""
    sent = server.headers_of("/feed")
    assert sent[0]["user-agent"] == "framewatch-test/1" and "if-none-match" not in sent[0]
    assert sent[1]["if-none-match"] == '"v1"' and sent[1]["if-modified-since"] == LM


def test_not_modified_by_last_modified_only(server: FeedServer) -> None:
    server.routes["/lm"] = Route(FEED, last_modified=LM)
    assert fetch(server.url("/lm"), last_modified=LM).outcome == oc.NOT_MODIFIED
    assert fetch(server.url("/lm"), last_modified="Mon, 01 Jan 2024 00:00:00 GMT").outcome == oc.OK


def test_gzip_is_decoded(server: FeedServer) -> None:
    server.routes["/gz"] = Route(FEED, gzip=True)
    result = fetch(server.url("/gz"))
    assert result.outcome == oc.OK and result.body == FEED
    assert "gzip" in server.headers_of("/gz")[0]["accept-encoding"]


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome", "delay"),
    [
        (429, "120", oc.RATE_LIMITED, 120.0),
        (503, "30", oc.RATE_LIMITED, 30.0),
        (429, None, oc.RATE_LIMITED, None),
        (500, None, oc.HTTP_ERROR, None),
        (404, None, oc.HTTP_ERROR, None),
        (410, None, oc.HTTP_ERROR, None),
    ],
)
def test_error_statuses(server: FeedServer, status: int, retry_after: str | None, outcome: str, delay: float | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    server.routes["/e"] = Route(b"busy", status=status, headers=headers)
    result = fetch(server.url("/e"))
    assert (result.outcome, result.status, result.retry_after_s) == (outcome, status, delay)


def test_retry_after_http_date(server: FeedServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    server.routes["/d"] = Route(b"", status=503, headers={"Retry-After": when})
    result = fetch(server.url("/d"))
    assert result.outcome == oc.RATE_LIMITED and 590 <= (result.retry_after_s or 0) <= 600


def test_fifty_megabytes_streamed_is_too_large_and_not_read_to_the_end(server: FeedServer) -> None:
    server.routes["/big"] = Route(b"x" * 50_000_000, stream=True)
    result = fetch(server.url("/big"), max_bytes=1_000_000)
    assert result.outcome == oc.TOO_LARGE and result.body == b""
    # the fetcher hung up after the cap: the server could write only what the sockets buffer
    wait_until("the server to notice the hang-up", lambda: server._inflight["/big"] == 0, timeout_s=30)
    assert server.sent["/big"] < 50_000_000


def test_declared_length_is_too_large_without_reading(server: FeedServer) -> None:
    server.routes["/big"] = Route(b"x" * 10_000_000)
    assert fetch(server.url("/big"), max_bytes=1_000_000).outcome == oc.TOO_LARGE


def test_gzip_bomb_is_capped_on_decoded_size(server: FeedServer) -> None:
    server.routes["/bomb"] = Route(b"\0" * 5_000_000, gzip=True)  # ~5 kB on the wire
    assert fetch(server.url("/bomb"), max_bytes=1_000_000).outcome == oc.TOO_LARGE


def test_redirect_followed(server: FeedServer) -> None:
    server.routes["/old"] = Route(status=301, location="/new")
    server.routes["/new"] = Route(FEED)
    result = fetch(server.url("/old"))
    assert result.outcome == oc.OK and result.url == server.url("/new") and result.body == FEED


def test_redirect_loop(server: FeedServer) -> None:
    server.routes["/a"] = Route(status=302, location="/b")
    server.routes["/b"] = Route(status=302, location=server.url("/a"))
    result = fetch(server.url("/a"))
    assert result.outcome == oc.REDIRECT_LOOP
    assert server.hits["/a"] == 1 and server.hits["/b"] == 1


def test_too_many_redirects(server: FeedServer) -> None:
    for i in range(6):
        server.routes[f"/r{i}"] = Route(status=307, location=f"/r{i + 1}")
    server.routes["/r6"] = Route(FEED)
    assert fetch(server.url("/r0"), max_redirects=3).outcome == oc.REDIRECT_LOOP
    assert fetch(server.url("/r0"), max_redirects=6).outcome == oc.OK


def test_slow_server_times_out_on_the_whole_request(server: FeedServer) -> None:
    # the answer would come after 30 s: a fetcher that ignored its 0.3 s timeout would get it (OK)
    server.routes["/slow"] = Route(FEED, delay_s=30)
    result = fetch(server.url("/slow"), timeout_s=0.3)
    assert result.outcome == oc.TIMEOUT and result.body == b""
    assert server.hits["/slow"] == 1


def test_empty_body_is_fetched_ok(server: FeedServer) -> None:
    server.routes["/empty"] = Route(b"")
    result = fetch(server.url("/empty"))
    assert result.outcome == oc.OK and result.body == b""  # the parser calls it "empty"


def test_closed_port_is_connection_error() -> None:
    with refusing_port() as port:
        result = fetch(f"http://127.0.0.1:{port}/feed")
    assert result.outcome == oc.CONNECTION_ERROR and result.detail


def test_unsupported_scheme_is_refused_url() -> None:
    result = fetch("gopher://127.0.0.1/feed")
    assert result.outcome == oc.REFUSED_URL and "gopher" in result.detail


def test_per_host_and_total_limits(server: FeedServer) -> None:
    # each request waits until a second one is in flight: a limit of 2 is reached every time
    server.routes["/s"] = Route(FEED, delay_s=0.05, hold_until_inflight=2)

    async def go(per_host: int, total: int) -> list[FetchResult]:
        fetcher = Fetcher(timeout_s=5, max_bytes=100_000, max_redirects=0, per_host=per_host,
                          total=total, user_agent="t")
        try:
            return await asyncio.gather(*(fetcher.fetch(server.url("/s"), policy=LOCAL) for _ in range(6)))
        finally:
            await fetcher.aclose()

    assert all(r.ok for r in asyncio.run(go(2, 8)))
    assert server.peak["/s"] == 2
    server.peak.clear()
    server.routes["/s"] = Route(FEED, delay_s=0.15)
    asyncio.run(go(8, 1))
    assert server.peak["/s"] == 1


def test_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    first = fetch(path.as_uri())
    assert first.outcome == oc.OK and first.body == FEED and first.last_modified
    assert first.content_type == "application/xml" or first.content_type == "text/xml"
    assert fetch(path.as_uri(), last_modified=first.last_modified).outcome == oc.NOT_MODIFIED
    assert fetch(path.as_uri(), max_bytes=10).outcome == oc.TOO_LARGE
    assert fetch((tmp_path / "missing.xml").as_uri()).outcome == oc.CONNECTION_ERROR


def test_fetch_results_use_the_fixed_outcome_set() -> None:
    assert set(oc.FETCH_OUTCOMES) <= set(oc.OUTCOMES)
    from framewatch.ingest.parse.detect import PARSE_REASONS

    assert set(PARSE_REASONS) <= set(oc.OUTCOMES)
