"""The worker over a real HTTP server and a stand-in producer: every bad input gets its outcome,
is counted, and the other feeds keep going; state decides what is produced again."""

from __future__ import annotations

import gzip
import logging
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch.contracts import RawItem, decode
from framewatch.ingest import outcomes as oc
from framewatch.ingest.sources import Source
from framewatch.ingest.state import IngestState
from framewatch.ingest.worker import CycleSummary, Worker, in_shard, shard_of
from framewatch.metrics import IngestMetrics
from framewatch.settings import Settings
from tests.helpers.fake_producer import FakeProducer
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.paths import FEEDS as FIXTURES
from tests.helpers.ports import refusing_port

NEWS = rss("News", [("n1", "Budget"), ("n2", "Housing"), ("n3", "Transit")])


@pytest.fixture
def server():
    srv = FeedServer().start()
    yield srv
    srv.stop()


class Rig:
    """A worker wired to a fresh registry, a fake producer and a state file under tmp_path."""

    def __init__(self, tmp_path: Path, sources: list[Source], producer: FakeProducer | None = None, **settings: object) -> None:
        values: dict[str, object] = {
            "state_dir": tmp_path / "state", "fetch_timeout_s": 1.0, "fetch_max_bytes": 1_000_000,
            "fetch_max_redirects": 3, "failing_after": 2, "topic_prefix": "t.",
        }
        values.update(settings)
        self.settings = Settings(**values)  # type: ignore[arg-type]
        self.registry = CollectorRegistry()
        self.producer = producer or FakeProducer()
        self.state = IngestState.for_shard(self.settings.state_dir, 0, 1)
        self.worker = Worker(settings=self.settings, sources=sources, producer=self.producer,
                             state=self.state, metrics=IngestMetrics(self.registry))

    def once(self) -> CycleSummary:
        return self.worker.run(once=True)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def fetches(self, feed: str, outcome: str) -> float:
        return self.value("framewatch_ingest_fetches_total", feed=feed, outcome=outcome) or 0.0


def news(server: FeedServer, sid: str, path: str, **kw: object) -> Source:
    # the test server is on loopback: its feeds are opted in, as an intranet feed would be
    return Source(sid, server.url(path), "news", allow_private=True, **kw)  # type: ignore[arg-type]


BAD = {
    # feed id: (route, expected outcome)
    "rate-limited": (Route(b"slow down", status=429, headers={"Retry-After": "3600"}), oc.RATE_LIMITED),
    "unavailable": (Route(b"", status=503, headers={"Retry-After": "120"}), oc.RATE_LIMITED),
    "huge": (Route(b"<rss>" + b"x" * 10_000_000, stream=True), oc.TOO_LARGE),
    "server-error": (Route(b"oops", status=500), oc.HTTP_ERROR),
    "gone": (Route(b"", status=404), oc.HTTP_ERROR),
    "slow": (Route(NEWS, delay_s=2.5), oc.TIMEOUT),
    "empty": (Route(b""), "empty"),
    "html": (Route((FIXTURES / "html_page.html").read_bytes(), content_type="text/html"), "not_a_feed"),
    "broken": (Route((FIXTURES / "broken.xml").read_bytes()), "malformed"),
    "utf16-no-bom": (Route(NEWS.decode().encode("utf-16-le")), "bad_encoding"),
    "double-gzip": (Route(gzip.compress(NEWS), gzip=True), "bad_encoding"),
}


def test_every_bad_input_gets_its_outcome_and_the_good_feeds_still_produce(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/good"] = Route(NEWS, etag='"g1"')
    server.routes["/gz"] = Route(rss("Gz", [("z1", "Zoning")]), gzip=True)
    server.routes["/moved"] = Route(status=301, location="/good-too")
    server.routes["/good-too"] = Route((FIXTURES / "atom_news.xml").read_bytes(), content_type="application/atom+xml")
    server.routes["/latin"] = Route((FIXTURES / "wrong_encoding.xml").read_bytes())
    server.routes["/loop-a"] = Route(status=302, location="/loop-b")
    server.routes["/loop-b"] = Route(status=302, location="/loop-a")
    sources = [news(server, "good", "/good"), news(server, "gz", "/gz"), news(server, "moved", "/moved"),
               news(server, "latin", "/latin"), news(server, "loop", "/loop-a")]
    for sid, (route, _) in BAD.items():
        server.routes[f"/{sid}"] = route
        sources.append(news(server, sid, f"/{sid}"))
    with refusing_port() as port:
        sources.append(Source("refused", f"http://127.0.0.1:{port}/feed", "news", allow_private=True))
        rig = Rig(tmp_path, sources)
        summary = rig.once()

    expected = {sid: outcome for sid, (_, outcome) in BAD.items()}
    expected.update(good=oc.OK, gz=oc.OK, moved=oc.OK, latin=oc.OK, loop=oc.REDIRECT_LOOP,
                    refused=oc.CONNECTION_ERROR)
    got = {sid: outcome for sid, outcome in expected.items() if rig.fetches(sid, outcome) == 1}
    assert got == expected
    states = rig.state.feeds()
    for sid, outcome in expected.items():
        assert states[sid].last_outcome == outcome
        assert rig.value("framewatch_ingest_consecutive_failures", feed=sid) == (0 if oc.is_success(outcome) else 1)
        assert rig.value("framewatch_ingest_feed_failing", feed=sid) == 0
    assert summary.feeds == len(expected)
    assert sum(summary.outcomes.values()) == len(expected)
    assert rig.value("framewatch_ingest_fetch_duration_seconds_count", outcome=oc.TIMEOUT) == 1
    # good feeds produced every entry, keyed by item_id, as RawItem
    produced = {sid: rig.value("framewatch_ingest_items_produced_total", feed=sid) for sid in ("good", "gz", "moved", "latin")}
    assert produced == {"good": 3, "gz": 1, "moved": 2, "latin": 1}
    assert len(rig.producer.sent) == 7
    for topic, key, value in rig.producer.sent:
        item = decode(RawItem, value)
        assert topic == "t.raw-items" and key == item.item_id.encode()
    assert rig.state.produced_count() == 7
    # Retry-After pushed the rate-limited feed an hour out
    assert (states["rate-limited"].next_poll_at - states["good"].last_success).total_seconds() >= 3600


def test_second_poll_with_validators_is_not_modified_and_produces_nothing(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/e"] = Route(NEWS, etag='"e1"')
    server.routes["/lm"] = Route(rss("LM", [("l1", "Tax")]), last_modified="Wed, 19 Nov 2025 08:00:00 GMT")
    rig = Rig(tmp_path, [news(server, "e", "/e"), news(server, "lm", "/lm")])
    assert rig.once().items_produced == 4
    second = rig.once()
    assert second.outcomes == {oc.NOT_MODIFIED: 2} and second.items_produced == 0
    assert len(rig.producer.sent) == 4
    assert server.headers_of("/e")[-1]["if-none-match"] == '"e1"'
    assert rig.fetches("e", oc.NOT_MODIFIED) == 1
    assert (rig.value("framewatch_ingest_last_success_timestamp_seconds", feed="lm") or 0) > 0


def test_entries_produced_before_are_skipped_after_a_restart(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/f"] = Route(NEWS)  # no validators: every poll returns the whole feed
    rig = Rig(tmp_path, [news(server, "f", "/f")])
    rig.once()
    rig.state.close()
    again = Rig(tmp_path, [news(server, "f", "/f")])  # a new process, same state file
    server.routes["/f"] = Route(rss("News", [("n1", "Budget"), ("n2", "Housing"), ("n3", "Transit"), ("n4", "Parks")]))
    summary = again.once()
    assert summary.items_produced == 1 and summary.items_skipped == 3
    assert again.value("framewatch_ingest_items_skipped_total", feed="f", reason=oc.SKIP_ALREADY_PRODUCED) == 3


def test_kafka_outage_marks_nothing_and_keeps_the_validators(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/k"] = Route(NEWS, etag='"k1"')
    down = Rig(tmp_path, [news(server, "k", "/k")], producer=FakeProducer(down=True))
    summary = down.once()
    assert summary.items_produced == 0 and summary.produce_failed_feeds == 1
    assert down.state.produced_count() == 0
    assert down.state.feed("k").etag is None  # so the next poll refetches, not 304
    assert down.value("framewatch_ingest_items_skipped_total", feed="k", reason=oc.SKIP_PRODUCE_FAILED) == 3
    down.state.close()
    up = Rig(tmp_path, [news(server, "k", "/k")])
    assert up.once().items_produced == 3
    assert "if-none-match" not in server.headers_of("/k")[-1]
    assert up.state.feed("k").etag == '"k1"'


def test_failing_feed_is_reported_and_recovers(tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    server.routes["/bad"] = Route(b"", status=500)
    server.routes["/ok"] = Route(NEWS)
    rig = Rig(tmp_path, [news(server, "bad", "/bad"), news(server, "ok", "/ok")], failing_after=2)
    with caplog.at_level(logging.INFO, logger="framewatch.ingest.worker"):
        assert rig.once().failing == ()
        assert rig.once().failing == ("bad",)
    assert rig.value("framewatch_ingest_feed_failing", feed="bad") == 1
    assert rig.value("framewatch_ingest_consecutive_failures", feed="bad") == 2
    assert rig.value("framewatch_ingest_feed_failing", feed="ok") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bad" in m and oc.HTTP_ERROR in m for m in warnings)
    assert rig.fetches("ok", oc.OK) == 2
    server.routes["/bad"] = Route(NEWS)
    rig.once()
    assert rig.value("framewatch_ingest_feed_failing", feed="bad") == 0
    assert rig.state.feed("bad").failures == 0


def test_xenforo_threads_are_followed_incrementally(tmp_path: Path, server: FeedServer) -> None:
    host = server.url("").encode()
    forum = (FIXTURES / "xenforo_forum.rss").read_bytes().replace(b"https://xf.example.com", host)
    page1 = (FIXTURES / "xenforo_thread_page1.html").read_bytes().replace(b"https://xf.example.com", host)
    page2 = (FIXTURES / "xenforo_thread_page2.html").read_bytes().replace(b"https://xf.example.com", host)
    t1 = "/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/"
    server.routes["/forums/world-politics.12/index.rss"] = Route(forum)
    server.routes[t1] = Route(page1, content_type="text/html")
    server.routes[t1 + "page-2"] = Route(page2, content_type="text/html")
    server.routes["/threads/eu-ai-act-bans-social-scoring.4517/"] = Route(b"", status=404)
    src = Source("xf", server.url("/forums/world-politics.12/index.rss"), "forum", platform="xenforo", allow_private=True)
    rig = Rig(tmp_path, [src])
    first = rig.once()
    assert first.outcomes == {oc.OK: 1}
    assert server.hits[t1] == 1 and server.hits[t1 + "page-2"] == 1
    cursor = rig.state.thread("xf", "4521")
    assert cursor is not None and cursor.last_page == 2 and not cursor.has_more
    keys = rig.producer.keys()
    assert len(keys) == len(set(keys)) and first.items_produced == len(keys) >= 5
    # the same forum feed again: thread 4521 has no newer post, so its pages are not read again
    second = rig.once()
    assert server.hits[t1 + "page-2"] == 1 and second.items_produced == 0
    assert rig.fetches("xf", oc.OK) == 2 + 2  # two feed polls and two thread pages


def test_thread_page_budget_resumes_next_cycle(tmp_path: Path, server: FeedServer) -> None:
    host = server.url("").encode()
    forum = (FIXTURES / "xenforo_forum.rss").read_bytes().replace(b"https://xf.example.com", host)
    page1 = (FIXTURES / "xenforo_thread_page1.html").read_bytes().replace(b"https://xf.example.com", host)
    page2 = (FIXTURES / "xenforo_thread_page2.html").read_bytes().replace(b"https://xf.example.com", host)
    t1 = "/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/"
    server.routes["/f.rss"] = Route(forum, etag='"f"')
    server.routes[t1] = Route(page1, content_type="text/html")
    server.routes[t1 + "page-2"] = Route(page2, content_type="text/html")
    server.routes["/threads/eu-ai-act-bans-social-scoring.4517/"] = Route(page2, content_type="text/html")
    rig = Rig(tmp_path, [Source("xf", server.url("/f.rss"), "forum", platform="xenforo", allow_private=True)])
    rig.worker.max_thread_pages = 1
    rig.once()
    assert server.hits[t1] == 1 and server.hits[t1 + "page-2"] == 0
    assert rig.state.thread("xf", "4521").has_more  # type: ignore[union-attr]
    rig.once()  # the forum feed is 304 now, the thread still continues on page 2
    assert server.hits[t1 + "page-2"] == 1
    assert not rig.state.thread("xf", "4521").has_more  # type: ignore[union-attr]


def test_stable_shards() -> None:
    ids = [f"feed-{i}" for i in range(400)]
    counts = [sum(in_shard(i, s, 4) for i in ids) for s in range(4)]
    assert sum(counts) == 400 and min(counts) > 60
    assert shard_of("scmp-china", 4) == shard_of("scmp-china", 4)
    assert [shard_of(f"f{i}", 3) for i in range(6)] == [shard_of(f"f{i}", 3) for i in range(6)]
    assert all(shard_of(i, 1) == 0 for i in ids)


def test_worker_picks_only_its_shard(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/x"] = Route(NEWS)
    sources = [news(server, f"feed-{i}", "/x") for i in range(12)]
    rig = Rig(tmp_path, sources, shard_index=1, shard_count=3)
    assert {s.id for s in rig.worker.sources} == {s.id for s in sources if shard_of(s.id, 3) == 1}


def test_loop_stops_on_the_stop_event(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/x"] = Route(NEWS, etag='"x"')
    rig = Rig(tmp_path, [news(server, "x", "/x")])
    stop = threading.Event()
    result: list[CycleSummary] = []
    thread = threading.Thread(target=lambda: result.append(rig.worker.run(stop=stop)))
    thread.start()
    deadline = time.monotonic() + 10
    while rig.worker.cycles == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and result and result[0].items_produced == 3
    assert server.hits["/x"] == 1  # not due again within its interval


def test_parser_failure_of_any_kind_is_contained(tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from framewatch.ingest.parse import detect as parser

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(parser, "parse_feed", boom)
    server.routes["/x"] = Route(NEWS)
    rig = Rig(tmp_path, [news(server, "x", "/x")])
    assert rig.once().outcomes == {oc.PARSE_ERROR: 1}




def test_thread_page_parser_failure_is_contained(tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from framewatch.ingest.parse import detect as parser

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("thread parser bug")

    monkeypatch.setattr(parser, "parse_thread_page", boom)
    host = server.url("").encode()
    server.routes["/f.rss"] = Route((FIXTURES / "xenforo_forum.rss").read_bytes().replace(b"https://xf.example.com", host))
    server.routes["/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/"] = Route(b"<html></html>", content_type="text/html")
    server.routes["/threads/eu-ai-act-bans-social-scoring.4517/"] = Route(b"<html></html>", content_type="text/html")
    rig = Rig(tmp_path, [Source("xf", server.url("/f.rss"), "forum", platform="xenforo", allow_private=True)])
    summary = rig.once()
    assert summary.outcomes == {oc.OK: 1} and summary.items_produced == 2  # the feed's own items
    assert rig.fetches("xf", oc.PARSE_ERROR) == 2
    assert rig.state.thread("xf", "4521") is None  # not advanced: read again next time


def test_due_feeds_follow_the_schedule(tmp_path: Path, server: FeedServer) -> None:
    from datetime import timedelta

    server.routes["/x"] = Route(NEWS)
    server.routes["/bad"] = Route(b"", status=500)
    sources = [news(server, "x", "/x", poll_interval_s=600.0), news(server, "bad", "/bad", poll_interval_s=60.0)]
    rig = Rig(tmp_path, sources, backoff_base_s=300.0)
    assert [s.id for s in rig.worker.due(rig.worker.clock())] == ["x", "bad"]  # never polled
    rig.once()
    now = rig.worker.clock()
    assert rig.worker.due(now) == []
    assert [s.id for s in rig.worker.due(now + timedelta(seconds=301 * 1.1))] == ["bad"]  # backoff, not 60 s
    assert [s.id for s in rig.worker.due(now + timedelta(seconds=661))] == ["x", "bad"]


def test_file_url_sources(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(NEWS)
    rig = Rig(tmp_path, [Source("local", feed.as_uri(), "news", allow_private=True)])
    assert rig.once().items_produced == 3
    assert rig.once().outcomes == {oc.NOT_MODIFIED: 1}
