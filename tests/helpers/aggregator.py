"""Driving the aggregator on the real broker: seed framed records, run it until its group has
committed everything, and check what a consumer group has committed."""

from __future__ import annotations

import threading
from datetime import timedelta

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CoordinatorNotAvailableError
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import FramedItem
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.settings import FRAMED_ITEMS, Settings
from tests.helpers.framed_records import T0
from tests.helpers.waiting import wait_until


def seed(settings: Settings, records: list[FramedItem], extra: list[tuple[str, bytes]] = ()) -> None:  # type: ignore[assignment]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    topic = settings.topic(FRAMED_ITEMS)
    for r in records:
        producer.send(topic, key=r.key.encode(), value=contracts.encode(r))
    for key, value in extra:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def committed_to_end(settings: Settings, group: str, topic: str) -> bool:
    """Whether *group* has committed the end of every partition of *topic*."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        end = consumer.end_offsets(tps)
        return bool(tps) and all((consumer.committed(tp) or 0) >= end[tp] for tp in tps)
    finally:
        consumer.close()


def wait_committed(settings: Settings, group: str, topic: str, timeout_s: float) -> bool:
    """Wait until *group* has committed the end of every partition of *topic*."""
    return wait_until(f"group {group} to commit the end of {topic}",
                      lambda: committed_to_end(settings, group, topic), timeout_s, every_s=0.5)


def run(settings: Settings, timeout_s: float = 40, registry: CollectorRegistry | None = None) -> int:
    """Run one aggregator until its group has committed the end of the framed topic."""
    stop = threading.Event()
    handled: list[int] = []
    thread = threading.Thread(target=lambda: handled.append(run_aggregator(
        settings, stop, serve_metrics=False, registry=registry, clock=lambda: T0 + timedelta(minutes=59))))
    thread.start()
    try:
        assert wait_committed(settings, group_id(settings), settings.topic(FRAMED_ITEMS), timeout_s)
    finally:
        stop.set()
        thread.join(timeout=20)
    return handled[0] if handled else -1


def stable_members(settings: Settings, group: str) -> int:
    """Members of *group* once it is Stable (0 while it rebalances)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        info = admin.describe_groups([group]).get(group) or {}
    except CoordinatorNotAvailableError:  # a fresh broker still creating __consumer_offsets
        return 0
    finally:
        admin.close()
    state = str(info.get("group_state") or info.get("state") or "")
    return len(info.get("members") or []) if state.lower() == "stable" else 0
