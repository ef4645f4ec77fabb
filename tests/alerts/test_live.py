"""The notifier follows the subscriptions the API edits: the file is the starting state, the
compacted topic is laid over it, and an edit reaches a running notifier without a restart.
Bad records on the topic are skipped and counted; an unusable subscription is left out with why."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.processing.alerts import cli as notify_cli
from framewatch.processing.alerts.live import overlay, resolve, subscription_id
from framewatch.settings import ALERTS, SUBSCRIPTIONS, Settings
from tests.helpers.aggregator import wait_committed
from tests.helpers.alerts import alert
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import Receiver

HOOK = {"subscriber": "desk", "watch": "scs", "channel": {"type": "webhook", "url": "http://127.0.0.1:9/hook",
                                                         "secret_env": "LIVE_HOOK_SECRET"}}


def test_overlay_applies_the_latest_record_per_id_and_counts_unreadable_ones() -> None:
    specs = {"a": {"subscriber": "file"}}
    records = [(b"b", json.dumps(HOOK).encode()), (b"a", None), (b"\xff", b"{}"), (b"c", b"{not json"),
               (b"d", b"[1, 2]"), (None, b"{}")]
    assert overlay(specs, records) == 4  # bad key, bad JSON, not an object, no key
    assert specs == {"b": HOOK}


def test_a_subscription_whose_secret_is_unset_here_is_left_out_with_the_reason() -> None:
    subs, rejected = resolve({"x": HOOK, "y": {"subscriber": "broken"}}, env={})
    assert subs == []
    assert "LIVE_HOOK_SECRET" in rejected["x"] and "malformed" in rejected["y"]
    subs, rejected = resolve({"x": HOOK}, env={"LIVE_HOOK_SECRET": "s"})
    assert [(s.subscriber, s.watch) for s in subs] == [("desk", "scs")] and rejected == {}


@pytest.fixture
def notifier(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Settings, CollectorRegistry]]:
    settings = settings_factory()
    registry = CollectorRegistry()
    stop = threading.Event()
    thread = threading.Thread(target=notify_cli.run_notifier, args=(settings, None, stop),
                              kwargs={"registry": registry, "serve_metrics": False}, daemon=True)
    thread.start()
    yield settings, registry
    stop.set()
    thread.join(timeout=20)


def _gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


@pytest.mark.integration
def test_an_api_edit_reaches_a_running_notifier(notifier: tuple[Settings, CollectorRegistry],
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings, registry = notifier
    monkeypatch.setenv("LIVE_HOOK_SECRET", "live-secret")
    wait_until("the notifier to start with no subscription",
               lambda: _gauge(registry, "framewatch_notify_subscriptions") == 0, 60)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    sub_id = subscription_id("desk", "scs")
    with Receiver() as receiver:
        spec = {**HOOK, "channel": {**HOOK["channel"], "url": receiver.url}}  # type: ignore[dict-item]
        producer.send(settings.topic(SUBSCRIPTIONS), key=sub_id.encode(), value=json.dumps(spec).encode())
        producer.send(settings.topic(SUBSCRIPTIONS), key=b"junk", value=b"\x00 not json")
        producer.flush()
        wait_until("the new subscription in use",
                   lambda: _gauge(registry, "framewatch_notify_subscriptions") == 1, 30)
        first = alert(frame="surveillance")
        producer.send(settings.topic(ALERTS), key=first.key.encode(), value=contracts.encode(first))
        producer.flush()
        wait_until("the webhook", lambda: len(receiver.requests) == 1, 30)
        # deleted in the API (a tombstone): the next alert goes to nobody
        producer.send(settings.topic(SUBSCRIPTIONS), key=sub_id.encode(), value=None)
        producer.flush()
        wait_until("the deletion in use", lambda: _gauge(registry, "framewatch_notify_subscriptions") == 0, 30)
        second = alert(frame="trust")
        producer.send(settings.topic(ALERTS), key=second.key.encode(), value=contracts.encode(second))
        producer.flush()
        assert wait_committed(settings, notify_cli.group_id(settings), settings.topic(ALERTS), 30)
    producer.close()
    assert [json.loads(body)["alert"]["frame"] for _, body in receiver.requests] == ["surveillance"]
