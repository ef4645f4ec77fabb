"""Subscriptions through the API: the file as starting state, edits on the compacted topic (the
notifier follows it, see alerts.live), and a test alert sent by the notifier's own delivery code.
The test send resolves secrets from this process's environment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from framewatch.contracts import Alert, AlertItem
from framewatch.errors import ConfigError
from framewatch.processing.alerts.delivery import deliver_with_retries, redact, send
from framewatch.processing.alerts.live import file_specs, load_one
from framewatch.processing.serve.topics import TopicWriter
from framewatch.settings import SUBSCRIPTIONS
from framewatch.timeutil import utcnow


class SubscriptionBook:
    """The live subscriptions: file entries overlaid with the topic's records."""

    def __init__(self, writer: TopicWriter, file: Path | None) -> None:
        self.writer = writer
        self._lock = threading.Lock()
        self._subs: dict[str, dict[str, Any]] = file_specs(file) if file is not None else {}
        for key, value in writer.read(SUBSCRIPTIONS).items():
            if value is None:
                self._subs.pop(key, None)
            else:
                self._subs[key] = value

    def list(self) -> list[dict[str, Any]]:
        """Every subscription, by subscriber then watch."""
        with self._lock:
            return sorted(({**v, "id": k} for k, v in self._subs.items()),
                          key=lambda s: (s["subscriber"], s["watch"], s["id"]))

    def get(self, sub_id: str) -> dict[str, Any] | None:
        """One subscription by id."""
        with self._lock:
            found = self._subs.get(sub_id)
        return None if found is None else {**found, "id": sub_id}

    def put(self, sub_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a subscription (validated by the file loader first)."""
        load_one(spec)
        value = {**spec, "source": "api"}
        with self._lock:
            self.writer.put(SUBSCRIPTIONS, sub_id, value)
            self._subs[sub_id] = value
        return {**value, "id": sub_id}

    def delete(self, sub_id: str) -> bool:
        """Delete a subscription (a tombstone on the topic); False when there is none."""
        with self._lock:
            if sub_id not in self._subs:
                return False
            self.writer.put(SUBSCRIPTIONS, sub_id, None)
            del self._subs[sub_id]
        return True


def test_alert(watch: str) -> Alert:
    """A harmless alert that says it is a test."""
    now = utcnow().replace(microsecond=0)
    return Alert(
        key=f"{watch}:test:{now.isoformat()}", watch_id=watch, frame="test", rule="test",
        window_start=now - timedelta(hours=1), window_end=now, baseline_share=0.0, observed_share=0.0,
        observed_count=0, window_items=0, score=0.0, detected_at=now,
        top_items=(AlertItem("framewatch test alert", None, None, "This is a test of your subscription.", now),),
    )


def send_test(spec: dict[str, Any], env: Mapping[str, str], timeout_s: float, attempts: int) -> str | None:
    """Deliver a test alert through the notifier's ``send``; the error (secrets redacted) or None."""
    try:
        sub = load_one(spec, env)
    except ConfigError as exc:
        return str(exc)
    alert = test_alert(sub.watch if sub.watch != "*" else "test")
    ok, _, error = deliver_with_retries(lambda: send(alert, sub, timeout_s), attempts, 0.2)
    return None if ok else redact(error or "failed", sub.channel)
