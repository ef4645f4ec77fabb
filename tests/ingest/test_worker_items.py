"""One bad item never stops a feed, and one heavy feed never stops the others: repaired text,
items cut to the broker's limit, per-item broker verdicts, and parsing off the event loop."""

from __future__ import annotations

import asyncio
import json
import random
import string
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidRecordError, KafkaError
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import RawItem, decode
from framewatch.ingest import outcomes as oc
from framewatch.ingest.parse import detect
from framewatch.ingest.sources import Source
from framewatch.ingest.state import IngestState
from framewatch.ingest.worker import SKIP_REJECTED, CycleSummary, Worker
from framewatch.kafka_io import make_producer
from framewatch.metrics import IngestMetrics
from framewatch.settings import Settings
from tests.helpers.fake_producer import FakeFuture, FakeProducer
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.raw_records import raw_item
from tests.helpers.waiting import wait_until

JSON = "application/feed+json"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer().start()
    yield srv
    srv.stop()


def source(server: FeedServer, sid: str, path: str) -> Source:
    return Source(sid, server.url(path), "news", allow_private=True)


def json_feed(items: list[dict[str, Any]]) -> bytes:
    """A JSON Feed; json.dumps escapes a lone surrogate as ``\\ud800``, as a real feed would."""
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}).encode()


def random_words(chars: int, seed: int = 7) -> str:
    """Text that gzip cannot shrink much, so the broker sees about its real size."""
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < chars:
        word = "".join(rng.choices(string.ascii_letters, k=rng.randint(2, 9)))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def make_worker(settings: Settings, sources: list[Source], producer: Any, **kw: Any) -> tuple[Worker, CollectorRegistry]:
    state = IngestState.for_shard(settings.state_dir, 0, 1)
    registry = CollectorRegistry()
    worker = Worker(settings=settings, sources=sources, producer=producer, state=state,
                    metrics=IngestMetrics(registry), produce_timeout_s=15, **kw)
    return worker, registry


def local_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_dir": tmp_path / "state", "fetch_timeout_s": 5.0, "topic_prefix": "t."}
    values.update(overrides)
    return Settings(**values)


def fetched(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("framewatch_ingest_fetch_duration_seconds_count", {"outcome": oc.OK}) or 0.0


def flagged(registry: CollectorRegistry, feed: str, reason: str) -> float:
    return registry.get_sample_value("framewatch_ingest_items_flagged_total", {"feed": feed, "reason": reason}) or 0.0


# --- the record --------------------------------------------------------------------------------


def test_flags_round_trip_and_records_without_them_still_decode() -> None:
    item = raw_item(flags=(oc.FLAG_TRUNCATED, oc.FLAG_REPAIRED_TEXT))
    assert decode(RawItem, contracts.encode(item)).flags == (oc.FLAG_TRUNCATED, oc.FLAG_REPAIRED_TEXT)
    old = contracts.to_dict(raw_item())
    del old["flags"]  # a record written before the field existed
    assert decode(RawItem, json.dumps(old).encode()) == raw_item()


# --- one bad item ------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_lone_surrogate_is_repaired_flagged_and_the_other_items_produced(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], server: FeedServer,
) -> None:
    server.routes["/j"] = Route(json_feed([
        {"id": "j1", "title": "Budget", "content_text": "first item"},
        {"id": "j2", "title": "Housing", "content_text": "broken \ud800 text"},
        {"id": "j3\udfff", "title": "Transit", "content_text": "a broken id"},
        {"id": "j4", "title": "Parks", "content_text": "last item"},
    ]), content_type=JSON)
    server.routes["/r"] = Route(rss("R", [("r1", "Ports")]))
    settings = settings_factory(fetch_timeout_s=5)
    topic = topic_factory(settings, "raw-items")
    producer = make_producer(settings)
    try:
        worker, registry = make_worker(settings, [source(server, "j", "/j"), source(server, "r", "/r")], producer)
        summary = worker.run(once=True)
        assert summary.outcomes == {oc.OK: 2} and summary.items_produced == 5
        assert summary.produce_failed_feeds == 0
        assert worker.run(once=True).outcomes == {oc.OK: 2}  # keeps running; nothing new to produce
    finally:
        producer.close(timeout=5)
    items = {i.text: i for i in (decode(RawItem, v) for _, v in topic_reader(topic))}
    assert len(items) == 5
    assert items["broken \ufffd text"].flags == (oc.FLAG_REPAIRED_TEXT,)
    assert items["a broken id"].flags == (oc.FLAG_REPAIRED_TEXT,)
    assert items["first item"].flags == () and items["last item"].flags == ()
    assert flagged(registry, "j", oc.FLAG_REPAIRED_TEXT) == 2


@pytest.mark.integration
def test_an_item_over_the_topics_size_limit_is_cut_flagged_and_produced(
    settings_factory: Callable[..., Settings], topic_reader: Callable[..., list[tuple[bytes | None, bytes]]],
    server: FeedServer,
) -> None:
    settings = settings_factory(fetch_timeout_s=5)
    topic = settings.topic("raw-items")
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:  # a topic whose broker-side limit is far below the worker's own item_max_bytes
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "60000"})])
    finally:
        admin.close()
    big = random_words(200_000)
    server.routes["/big"] = Route(json_feed([
        {"id": "b1", "title": "Small", "content_text": "a small item before"},
        {"id": "b2", "title": "Huge", "content_text": big},
        {"id": "b3", "title": "Small", "content_text": "a small item after"},
    ]), content_type=JSON)
    server.routes["/other"] = Route(rss("O", [("o1", "Wages"), ("o2", "Rents")]))
    producer = make_producer(settings)
    try:
        worker, registry = make_worker(settings, [source(server, "big", "/big"), source(server, "other", "/other")], producer)
        summary = worker.run(once=True)
    finally:
        producer.close(timeout=5)
    assert summary.items_produced == 5 and summary.produce_failed_feeds == 0  # no "Kafka down"
    items = [decode(RawItem, v) for _, v in topic_reader(topic)]
    assert len(items) == 5
    huge = next(i for i in items if i.title == "Huge")
    assert huge.flags == (oc.FLAG_TRUNCATED,)
    assert 1000 < len(huge.text) < len(big) and big.startswith(huge.text)
    assert all(i.flags == () for i in items if i is not huge)
    assert flagged(registry, "big", oc.FLAG_TRUNCATED) == 1


@pytest.mark.integration
def test_an_item_over_the_producers_request_size_is_cut_before_it_is_sent(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], server: FeedServer,
) -> None:
    settings = settings_factory(fetch_timeout_s=5)
    topic = topic_factory(settings, "raw-items")
    server.routes["/big"] = Route(json_feed([
        {"id": "b1", "content_text": random_words(100_000)}, {"id": "b2", "content_text": "small"},
    ]), content_type=JSON)
    producer = make_producer(settings, max_request_size=30_000)
    try:
        worker, registry = make_worker(settings, [source(server, "big", "/big")], producer)
        assert worker.run(once=True).items_produced == 2
    finally:
        producer.close(timeout=5)
    sizes = sorted(len(v) for _, v in topic_reader(topic))
    assert len(sizes) == 2 and sizes[-1] <= 30_000
    assert flagged(registry, "big", oc.FLAG_TRUNCATED) == 1


class RefusingProducer(FakeProducer):
    """Refuses, at send, the records of the given titles, as the producer's own record checks do:
    a verdict on that record, not on the broker."""

    def __init__(self, refused_titles: set[str]) -> None:
        super().__init__()
        self.refused_titles = refused_titles

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        if decode(RawItem, value).title in self.refused_titles:
            raise InvalidRecordError("refused")
        return super().send(topic, key, value)


def test_a_record_the_producer_refuses_is_counted_and_the_feed_goes_on(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/f"] = Route(rss("F", [("f1", "Budget"), ("f2", "Housing"), ("f3", "Transit")]), etag='"f1"')
    server.routes["/g"] = Route(rss("G", [("g1", "Ports")]))
    producer = RefusingProducer({"Housing"})
    worker, registry = make_worker(local_settings(tmp_path), [source(server, "f", "/f"), source(server, "g", "/g")], producer)
    summary = worker.run(once=True)
    assert summary.items_produced == 3 and summary.produce_failed_feeds == 0 and len(producer.sent) == 3
    assert registry.get_sample_value("framewatch_ingest_items_skipped_total", {"feed": "f", "reason": SKIP_REJECTED}) == 1
    assert registry.get_sample_value("framewatch_ingest_items_produced_total", {"feed": "g"}) == 1
    assert worker.state.feed("f").etag == '"f1"'  # the feed advanced: not refetched for one record


def test_a_huge_entry_is_cut_to_the_entry_cap_and_flagged(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/h"] = Route(json_feed([
        {"id": "h1", "content_html": "<p>" + "</p><p>".join(random_words(80, seed=n) for n in range(2_000)) + "</p>"},
        {"id": "h2", "content_text": "short"},
    ]), content_type=JSON)
    producer = FakeProducer()
    worker, registry = make_worker(local_settings(tmp_path, entry_max_chars=5_000), [source(server, "h", "/h")], producer)
    assert worker.run(once=True).items_produced == 2
    items = {i.item_id: i for i in (decode(RawItem, v) for _, _, v in producer.sent)}
    huge = next(i for i in items.values() if i.text != "short")
    assert huge.flags == (oc.FLAG_TRUNCATED,) and 4_000 < len(huge.text) <= 5_000
    assert [i.flags for i in items.values() if i is not huge] == [()]
    assert flagged(registry, "h", oc.FLAG_TRUNCATED) == 1


# --- parsing off the event loop ----------------------------------------------------------------

GATE = b"<!-- gate:"


def gated_parse(body: bytes, **kwargs: Any) -> Any:
    """parse_feed, but a body naming a gate first says it started, then waits for the gate to open
    (module level, so the parse process can import it)."""
    if GATE in body:
        folder = Path(body.split(GATE, 1)[1].split(b" -->", 1)[0].decode())
        (folder / "started").touch()
        deadline = time.monotonic() + 60
        while not (folder / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return detect.parse_feed(body, **kwargs)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_feed_still_parsing_does_not_hold_up_another_feeds_poll(
    tmp_path: Path, server: FeedServer, processes: bool
) -> None:
    other = FeedServer().start()  # another site, so another parse slot
    try:
        heavy = rss("Heavy", [("h1", "Budget")]).replace(b"<channel>", b"<channel>" + GATE + str(tmp_path).encode() + b" -->")
        server.routes["/heavy"] = Route(heavy)
        other.routes["/good"] = Route(rss("Good", [("g1", "Ports"), ("g2", "Wages")]))
        polls_done: list[int] = []
        worker, registry = make_worker(
            local_settings(tmp_path, parse_workers=2, parse_in_processes=processes),
            [source(server, "heavy", "/heavy"), source(other, "good", "/good")], FakeProducer(),
            parse_feed=gated_parse, heartbeat=lambda: polls_done.append(1),
        )
        result: list[CycleSummary] = []
        cycle = threading.Thread(target=lambda: result.append(worker.run(once=True)))
        cycle.start()
        try:
            wait_until("the heavy feed's parse to start", lambda: (tmp_path / "started").exists(), 30)
            # the event loop is free, and the other site has its own parse worker: the good feed's
            # whole poll (fetch and parse) ends while the heavy one is held in its parse
            wait_until("the good feed's poll to finish", lambda: len(polls_done) == 1, 30)
            assert fetched(registry) == 2
            assert registry.get_sample_value("framewatch_ingest_parse_duration_seconds_count") == 1
            assert cycle.is_alive() and not result and not (tmp_path / "open").exists()
        finally:
            (tmp_path / "open").touch()
            cycle.join(60)
        assert result and result[0].outcomes == {oc.OK: 2} and result[0].items_produced == 3
        assert len(polls_done) == 2
    finally:
        other.stop()


def test_a_parse_process_that_dies_costs_one_poll_not_the_worker(tmp_path: Path, server: FeedServer) -> None:
    server.routes["/die"] = Route(rss("Die", [("d1", "Budget")]).replace(b"<channel>", b"<channel><!-- die -->"))
    worker, registry = make_worker(local_settings(tmp_path, parse_workers=1, parse_in_processes=True), [source(server, "d", "/die")], FakeProducer(),
                                   parse_feed=dying_parse)

    async def two_cycles() -> tuple[CycleSummary, CycleSummary]:
        async with worker.session():  # one pool for both cycles
            first = await worker.cycle(worker.sources)
            server.routes["/die"] = Route(rss("Die", [("d1", "Budget")]))
            return first, await worker.cycle(worker.sources)

    first, second = asyncio.run(two_cycles())
    assert first.outcomes == {oc.PARSE_ERROR: 1}
    assert registry.get_sample_value("framewatch_ingest_fetches_total", {"feed": "d", "outcome": oc.PARSE_ERROR}) == 1
    assert second.outcomes == {oc.OK: 1} and second.items_produced == 1  # a fresh parse process took over


def dying_parse(body: bytes, **kwargs: Any) -> Any:
    """parse_feed, but a body saying so kills its parse process, as the kernel's OOM killer would."""
    if b"<!-- die -->" in body:
        import os

        os._exit(9)
    return detect.parse_feed(body, **kwargs)


def test_only_a_records_own_faults_are_per_item() -> None:
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

    from framewatch.ingest import worker as w

    assert issubclass(MessageSizeTooLargeError, w._RECORD_ERRORS) and issubclass(InvalidRecordError, w._RECORD_ERRORS)
    assert all(issubclass(e, KafkaError) for e in w._RECORD_ERRORS)
    assert not issubclass(KafkaTimeoutError, w._RECORD_ERRORS) and not issubclass(KafkaConnectionError, w._RECORD_ERRORS)
