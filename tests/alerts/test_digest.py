"""Digests: a subscription with ``digest: daily`` gets one message a day listing each change,
queued durably and sent once after the day ends, also across a notifier restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.processing.alerts import cli as notify_cli
from framewatch.processing.alerts import signing
from framewatch.processing.alerts.digest import DigestBook, period_of
from framewatch.processing.alerts.subscriptions import Channel, Subscription
from framewatch.settings import ALERTS, Settings
from tests.helpers.aggregator import wait_committed
from tests.helpers.alerts import alert
from tests.helpers.framed_records import T0
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import Receiver


def test_periods_are_utc_days_and_weeks_from_monday() -> None:
    wed = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert period_of(wed, "daily") == (datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC))
    assert period_of(wed, "weekly") == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))


def test_the_book_queues_once_and_hands_a_period_out_once_it_ended(tmp_path: Path) -> None:
    sub = Subscription("desk", "scs", None, 0.0, Channel("webhook", url="http://127.0.0.1:9/h"), digest="daily")
    book = DigestBook(tmp_path / "d.sqlite3")
    a, b = alert(frame="trust"), alert(frame="surveillance")
    assert book.add(sub, a) and book.add(sub, b) and not book.add(sub, a)  # a re-read alert is queued once
    day_end = period_of(a.detected_at, "daily")[1]
    assert book.due(day_end - timedelta(seconds=1)) == []
    book.close()
    book = DigestBook(tmp_path / "d.sqlite3")  # durable across a restart
    (digest,) = book.due(day_end)
    assert [x.frame for x in digest.alerts] == ["surveillance", "trust"]  # by detection time, then key
    book.mark_sent(digest)
    assert book.due(day_end + timedelta(days=3)) == []


@pytest.mark.integration
def test_a_daily_digest_goes_out_once_after_the_day_with_every_change(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = settings_factory(notify_max_attempts=2, notify_backoff_base_s=0.05)
    topic_factory(settings, ALERTS)
    monkeypatch.setenv("DIGEST_SECRET", "digest-secret")
    monkeypatch.setattr(notify_cli, "DIGEST_EVERY_S", 0.0)
    alerts = [alert(frame="trust"), alert(frame="surveillance", score=6.0)]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for a in alerts:
        producer.send(settings.topic(ALERTS), key=a.key.encode(), value=contracts.encode(a))
    producer.flush()
    producer.close()
    with Receiver() as now_hook, Receiver() as digest_hook:
        subs = tmp_path / "subs.yaml"
        subs.write_text(
            "subscriptions:\n"
            f"  - subscriber: desk\n    watch: scs\n    channel: {{type: webhook, url: '{now_hook.url}', secret_env: DIGEST_SECRET}}\n"
            f"  - subscriber: editor\n    watch: scs\n    digest: daily\n"
            f"    channel: {{type: webhook, url: '{digest_hook.url}', secret_env: DIGEST_SECRET}}\n")
        day_end = period_of(alerts[0].detected_at, "daily")[1]
        for clock in (T0 + timedelta(hours=2), day_end + timedelta(minutes=1), day_end + timedelta(minutes=2)):
            stop = threading.Event()
            runner = threading.Thread(target=notify_cli.run_notifier, args=(settings, subs, stop), daemon=True,
                                      kwargs={"registry": CollectorRegistry(), "serve_metrics": False,
                                              "clock": lambda c=clock: c})
            runner.start()
            try:
                assert wait_committed(settings, notify_cli.group_id(settings), settings.topic(ALERTS), 60)
                if clock > day_end:
                    wait_until("the digest", lambda: len(digest_hook.requests) >= 1, 30)
            finally:
                stop.set()
                runner.join(timeout=30)
            if clock < day_end:
                assert digest_hook.requests == []  # the day is not over: queued, not sent
        assert len(now_hook.requests) == 2  # the immediate subscriber: one message per alert
        assert len(digest_hook.requests) == 1  # the digest: once, also after a restart
        headers, body = digest_hook.requests[0]
        assert signing.verify(b"digest-secret", headers, body, datetime.now(UTC).timestamp(), tolerance_s=900)
        digest = json.loads(body)["digest"]
        assert digest["kind"] == "daily" and sorted(a["frame"] for a in digest["alerts"]) == ["surveillance", "trust"]
