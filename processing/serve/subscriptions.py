"""Subscriptions through the API: the file as starting state, edits on the compacted topic, and a
test alert sent by the notifier's own delivery code.

A subscription is checked by the same loader that reads the subscriptions file (one YAML entry
written from the request), so the API accepts exactly what the file accepts. Secrets stay named
by environment variable; the test send resolves them from this process's environment.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from framewatch.contracts import Alert, AlertItem, stable_id
from framewatch.errors import ConfigError
from framewatch.processing.alerts.delivery import deliver_with_retries, redact, send
from framewatch.processing.alerts.subscriptions import Subscription, load_subscriptions
from framewatch.processing.serve.topics import TopicWriter
from framewatch.settings import SUBSCRIPTIONS
from framewatch.timeutil import utcnow


class _AnyEnv(Mapping[str, str]):
    """Every variable "set": validation checks a name's form, not this process's environment."""

    def __getitem__(self, key: str) -> str:
        return "placeholder"

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())

    def __len__(self) -> int:
        return 0


def subscription_id(subscriber: str, watch: str) -> str:
    """Stable id of a subscriber's subscription to a watch (the file's uniqueness rule)."""
    return stable_id(subscriber, watch)[:16]


ENTRY_FIELDS = ("subscriber", "watch", "frames", "min_score", "rules")


def _entry(spec: dict[str, Any]) -> dict[str, Any]:
    """The file's form of a spec: ``from`` for the sender, no empty fields, no API-only fields."""
    channel = {("from" if k == "sender" else k): v for k, v in spec["channel"].items() if v is not None}
    entry = {k: spec[k] for k in ENTRY_FIELDS if spec.get(k) is not None}
    return {**entry, "channel": channel}


def load_one(spec: dict[str, Any], env: Mapping[str, str] | None = None) -> Subscription:
    """The notifier's Subscription for *spec*, through the file loader; ConfigError when invalid."""
    text = yaml.safe_dump({"subscriptions": [_entry(spec)]}, allow_unicode=True, sort_keys=False)
    with tempfile.TemporaryDirectory(prefix="framewatch-sub-") as tmp:
        path = Path(tmp) / "subscription.yaml"
        try:
            path.write_text(text, encoding="utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"subscription: not valid text: {exc.reason}") from exc
        subs = load_subscriptions(path, env=_AnyEnv() if env is None else env)
    return subs[0]


def file_specs(path: Path) -> dict[str, dict[str, Any]]:
    """Specs of the subscriptions file by id (validated by the loader first, form only)."""
    load_subscriptions(path, env=_AnyEnv())
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, Any]] = {}
    for entry in data.get("subscriptions") or []:
        channel = dict(entry["channel"])
        if "from" in channel:
            channel["sender"] = channel.pop("from")
        frames = entry.get("frames")
        spec = {**entry, "channel": channel, "frames": None if frames in (None, "any", "*") else frames}
        out[subscription_id(entry["subscriber"], entry["watch"])] = spec | {"source": "file"}
    return out


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


def live_subscriptions(writer: TopicWriter, file: Path | None, env: Mapping[str, str]) -> list[Subscription]:
    """The notifier's subscriptions as the API left them (file overlaid with the topic), secrets
    resolved from *env*; the notifier can call this instead of reading the file alone."""
    return [load_one(spec, env) for spec in SubscriptionBook(writer, file).list()]


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
