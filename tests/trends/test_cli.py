"""The aggregator on the real broker: dead letters, two instances, kill -9 and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import ANY, AggregateRow, DeadLetter, FramedItem
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.processing.trends.counts import merge_partials
from framewatch.settings import AGGREGATES, DEAD_LETTERS, FRAMED_ITEMS, Settings
from tests.helpers.aggregator import run, seed, stable_members, wait_committed
from tests.helpers.framed_records import T0, framed
from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

FRAMES = ("surveillance", "trust", "fairness")


def items(n: int, start: int = 0) -> list[FramedItem]:
    """*n* framed records over two watches, spread over 10 hours."""
    return [
        framed(i, watch=f"w{i % 2}", frame=FRAMES[i % 3], at=T0 + timedelta(minutes=(i * 7) % 600))
        for i in range(start, start + n)
    ]


def expected_totals(records: list[FramedItem]) -> dict[tuple[str, str], int]:
    latest = {r.key: r for r in records}
    out: dict[tuple[str, str], int] = {}
    for r in latest.values():
        for frame in (r.frame or "unframed", ANY):
            out[(r.watch_id, frame)] = out.get((r.watch_id, frame), 0) + 1
    return out


def topic_totals(reader: Callable[..., list[tuple[bytes | None, bytes]]], settings: Settings) -> dict[tuple[str, str], int]:
    rows = [contracts.decode(AggregateRow, v) for _, v in reader(settings.topic(AGGREGATES))]
    merged = merge_partials(rows)
    out: dict[tuple[str, str], int] = {}
    for (watch, outlet, gran, _, frame), (n, _) in merged.items():
        if gran == "1d" and outlet == ANY:
            out[(watch, frame)] = out.get((watch, frame), 0) + n
    return out


def committed_total(settings: Settings) -> int:
    """Records of the framed topic the aggregator group has committed so far."""
    topic = settings.topic(FRAMED_ITEMS)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group_id(settings),
                             enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(settings.topic_partitions))
    finally:
        consumer.close()


def test_undecodable_record_is_dead_lettered_and_the_rest_counted(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list]
) -> None:
    settings = settings_factory()
    topic_factory(settings, FRAMED_ITEMS)
    records = items(30)
    seed(settings, records, [("w0:bad", b"{not json"), ("w0:bad2", b'{"key": "w0:x"}')])
    registry = CollectorRegistry()
    stop = threading.Event()
    thread = threading.Thread(target=run_aggregator, args=(settings, stop), kwargs={
        "serve_metrics": False, "registry": registry, "clock": lambda: T0 + timedelta(hours=10)})
    thread.start()
    g = registry.get_sample_value
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (g("framewatch_consumed_records_total", {
                "component": "aggregate", "topic": settings.topic(FRAMED_ITEMS)}) or 0) < 32:
            time.sleep(0.2)
        # scraped while running: the collector computes these from the aggregator's state
        assert g("framewatch_framed_items_total", {"watch": "w0", "frame": "surveillance"}) == 5
        assert g("framewatch_share_of_voice", {"watch": "w0", "frame": "trust", "window": "1d"}) == pytest.approx(5 / 15)
        assert g("framewatch_component_up", {"component": "aggregate"}) == 1
    finally:
        stop.set()
        thread.join(timeout=20)
    assert g("framewatch_dead_letters_total", {"component": "aggregate", "reason": "not_json"}) == 1
    dead = [contracts.decode(DeadLetter, v) for _, v in topic_reader(settings.topic(DEAD_LETTERS))]
    assert sorted((d.component, d.reason) for d in dead) == [("aggregate", "invalid_field"), ("aggregate", "not_json")]
    assert {d.raw for d in dead} == {b"{not json", b'{"key": "w0:x"}'}
    assert topic_totals(topic_reader, settings) == expected_totals(records)
    # Parquet is the sink's job now (framewatch sink): the aggregator writes none
    assert not any(settings.state_dir.rglob("*.parquet"))


def test_two_aggregators_in_one_group_give_the_same_totals_as_one(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list]
) -> None:
    records = items(300)
    redelivered = records[:40]  # the same keys again: must not count twice
    one = settings_factory(topic_prefix=f"{settings_factory().topic_prefix}one.", batch_max_records=50)
    two = settings_factory(topic_prefix=f"{settings_factory().topic_prefix}two.", batch_max_records=50,
                           state_dir=one.state_dir.parent / "state2")
    for s in (one, two):
        topic_factory(s, FRAMED_ITEMS)
    seed(one, records + redelivered)
    run(one)
    stop = threading.Event()
    handled: list[int] = []
    registries = [CollectorRegistry(), CollectorRegistry()]

    def instance(registry: CollectorRegistry) -> None:
        handled.append(run_aggregator(two, stop, serve_metrics=False, registry=registry,
                                      clock=lambda: T0 + timedelta(hours=10)))

    threads = [threading.Thread(target=instance, args=(r,)) for r in registries]
    for t in threads:
        t.start()
    try:
        # both join the group and split the partitions before the records arrive
        wait_until("both instances in the group", lambda: stable_members(two, group_id(two)) == 2,
                   timeout_s=60, every_s=0.5)
        seed(two, records + redelivered)
        assert wait_committed(two, group_id(two), two.topic(FRAMED_ITEMS), timeout_s=40)
        # each instance's merged view covers every partition: whole-watch shares everywhere,
        # and the framed-items counters (own partitions) add up across instances
        labels = {"watch": "w0", "frame": "surveillance"}
        def views() -> tuple[list[float | None], float]:
            shares = [r.get_sample_value("framewatch_share_of_voice", {**labels, "window": "1d"}) for r in registries]
            return shares, sum(r.get_sample_value("framewatch_framed_items_total", labels) or 0 for r in registries)

        try:
            wait_until("both merged views", lambda: views() == ([pytest.approx(50 / 150)] * 2, 50), timeout_s=15, every_s=0.5)
        except AssertionError:
            raise AssertionError(f"shares and counted items: {views()}") from None
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert len(handled) == 2 and all(n > 0 for n in handled), handled
    assert topic_totals(topic_reader, one) == expected_totals(records)
    assert topic_totals(topic_reader, two) == topic_totals(topic_reader, one)


AGGREGATOR = """
import threading
from datetime import timedelta
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.settings import Settings
from tests.helpers.framed_records import T0
run_aggregator(Settings(), threading.Event(), serve_metrics=False, clock=lambda: T0 + timedelta(hours=10),
               consumer_overrides={'session_timeout_ms': 6000, 'heartbeat_interval_ms': 1000})
"""


def test_kill_9_and_restart_mid_stream_keeps_every_count_exact(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list]
) -> None:
    settings = settings_factory(batch_max_records=10)
    topic_factory(settings, FRAMED_ITEMS)
    first = items(3000)
    seed(settings, first)
    env = {**os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix, "FRAMEWATCH_TOPIC_PARTITIONS": "3",
           "FRAMEWATCH_STATE_DIR": str(settings.state_dir), "FRAMEWATCH_BATCH_MAX_RECORDS": "10",
           "FRAMEWATCH_PARQUET_ENABLED": "false", "FRAMEWATCH_METRICS_PORT": "0"}
    root = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-c", AGGREGATOR], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # kill -9 as soon as some batches are committed, with most of the stream still unread
        wait_until("the first committed batches", lambda: committed_total(settings) >= 200, timeout_s=60, every_s=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    at_kill = committed_total(settings)  # final: the instance is dead
    assert 200 <= at_kill < len(first), f"not killed mid-stream: {at_kill} of {len(first)} committed"
    seen = topic_totals(topic_reader, settings)
    assert 0 < seen.get(("w0", ANY), 0) + seen.get(("w1", ANY), 0) < 3000, "killed mid-stream"
    # more records after the crash, some of them re-deliveries and one a changed record
    changed = framed(3, watch="w1", frame="trust", at=first[3].published_at)
    later = items(200, start=3000) + first[:50] + [changed]
    seed(settings, later)
    run(settings)
    assert topic_totals(topic_reader, settings) == expected_totals(first + later)
