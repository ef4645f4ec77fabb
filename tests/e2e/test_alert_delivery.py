"""End to end on the real broker: framed records -> aggregator -> alert -> notifier -> one signed webhook."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.processing.alerts import signing
from framewatch.settings import ALERTS, FRAMED_ITEMS, Settings
from tests.helpers.aggregator import run, seed
from tests.helpers.alerts import notify_until_committed
from tests.helpers.framed_records import history_and_spike
from tests.helpers.ports import refusing_port
from tests.helpers.webhooks import Receiver

pytestmark = pytest.mark.integration


def test_spike_reaches_the_subscriber_once_signed_with_evidence(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    settings = settings_factory(notify_max_attempts=2, notify_backoff_base_s=0.05, notify_timeout_s=2)
    topic_factory(settings, FRAMED_ITEMS)
    seed(settings, history_and_spike())
    run(settings)  # the aggregator clock says 09:59: the window 09:00-10:00 is current
    alerts = [contracts.decode(Alert, v) for _, v in topic_reader(settings.topic(ALERTS))]
    assert [(a.frame, a.rule) for a in alerts] == [("a", "share_spike")], "one record for the planted spike"
    receiver = Receiver()
    refusing = refusing_port()
    closed = refusing.__enter__()  # a subscriber whose endpoint refuses every connection
    monkeypatch.setenv("E2E_HOOK_SECRET", "e2e-secret")
    subs = tmp_path / "subs.yaml"
    subs.write_text(
        "subscriptions:\n"
        f"  - subscriber: desk\n    watch: scs\n    frames: [a]\n    min_score: 3\n"
        f"    channel: {{type: webhook, url: '{receiver.url}', secret_env: E2E_HOOK_SECRET}}\n"
        "  - subscriber: dead-end\n    watch: scs\n"
        f"    channel: {{type: webhook, url: 'http://127.0.0.1:{closed}/hook', secret_env: E2E_HOOK_SECRET}}\n"
    )
    registry, restarted = CollectorRegistry(), CollectorRegistry()
    try:
        notify_until_committed(settings, subs, registry)
        # the same alert produced again (an aggregator re-run) and a notifier restart: no repeat
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        producer.send(settings.topic(ALERTS), key=alerts[0].key.encode(), value=contracts.encode(alerts[0]))
        producer.flush()
        producer.close()
        notify_until_committed(settings, subs, restarted)
    finally:
        receiver.close()
        refusing.__exit__(None, None, None)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    # signed per Standard Webhooks; the tolerance covers the test's own length, not a replay window
    assert signing.verify(b"e2e-secret", headers, body, time.time(), tolerance_s=900)
    payload = json.loads(body)
    alert = payload["alert"]
    assert payload["subscriber"] == "desk" and alert["frame"] == "a" and alert["watch_id"] == "scs"
    # as planted: 24 of the 40 items of 09:00-10:00 framed a, against 20% the day before
    assert (alert["observed_count"], alert["window_items"]) == (24, 40)
    assert alert["observed_share"] == pytest.approx(0.6)
    assert alert["baseline_share"] == pytest.approx(0.2, abs=0.02)
    assert alert["score"] >= 4
    assert len(alert["top_items"]) == 3
    assert all(it["title"].startswith("Spike story") and it["url"] and it["passage"] for it in alert["top_items"])
    g = registry.get_sample_value
    assert g("framewatch_notifications_total", {"channel": "webhook", "outcome": "delivered"}) == 1
    assert g("framewatch_notifications_total", {"channel": "webhook", "outcome": "failed"}) >= 1
    g2 = restarted.get_sample_value
    assert g2("framewatch_notifications_total", {"channel": "webhook", "outcome": "duplicate"}) >= 1
    assert g2("framewatch_notifications_total", {"channel": "webhook", "outcome": "delivered"}) is None
