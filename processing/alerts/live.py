"""Live subscriptions: the subscriptions file is the starting state, the compacted ``subscriptions``
topic (written by the API; latest record per id, a tombstone deletes) is laid over it, and a
running notifier follows the topic, so an edit in the API takes effect without a restart.

A subscription is checked by the same loader that reads the file (one YAML entry written from the
spec), so the API accepts exactly what the file accepts and the notifier reads exactly that.
Secrets stay named by environment variable and are resolved in the process that sends.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from framewatch.contracts import stable_id
from framewatch.errors import ConfigError
from framewatch.kafka_io import Tail, ensure_topics, read_to_end
from framewatch.processing.alerts.subscriptions import Subscription, load_subscriptions
from framewatch.settings import SUBSCRIPTIONS, Settings

log = logging.getLogger(__name__)

ENTRY_FIELDS = ("subscriber", "watch", "frames", "min_score", "rules", "kinds", "digest", "sensitivity")
FOLLOW_INTERVAL_S = 1.0


class AnyEnv(Mapping[str, str]):
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


def _entry(spec: dict[str, Any]) -> dict[str, Any]:
    """The file's form of a spec: ``from`` for the sender, no empty fields, no API-only fields."""
    channel = {("from" if k == "sender" else k): v for k, v in spec["channel"].items() if v is not None}
    entry = {k: spec[k] for k in ENTRY_FIELDS if spec.get(k) is not None}
    return {**entry, "channel": channel}


def load_one(spec: dict[str, Any], env: Mapping[str, str] | None = None, sensitivity: str = "medium") -> Subscription:
    """The notifier's Subscription for *spec*, through the file loader; ConfigError when invalid.
    *sensitivity*: the level of a spec that names none (the deployment's)."""
    try:
        text = yaml.safe_dump({"subscriptions": [_entry(spec)]}, allow_unicode=True, sort_keys=False)
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"subscription: malformed spec ({type(exc).__name__})") from exc
    with tempfile.TemporaryDirectory(prefix="framewatch-sub-") as tmp:
        path = Path(tmp) / "subscription.yaml"
        try:
            path.write_text(text, encoding="utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"subscription: not valid text: {exc.reason}") from exc
        subs = load_subscriptions(path, env=AnyEnv() if env is None else env, sensitivity=sensitivity)
    return subs[0]


def file_specs(path: Path) -> dict[str, dict[str, Any]]:
    """Specs of the subscriptions file by id (validated by the loader first, form only)."""
    load_subscriptions(path, env=AnyEnv())
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


def overlay(specs: dict[str, dict[str, Any]], records: list[tuple[bytes | None, bytes | None]]) -> int:
    """Lay the topic's *records* over *specs* in place; returns how many were unreadable (skipped)."""
    bad = 0
    for key, value in records:
        try:
            sub_id = key.decode("utf-8") if key is not None else None
            spec = None if value is None else json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            sub_id, spec = None, None
        if sub_id is None or (spec is not None and not isinstance(spec, dict)):
            bad += 1
            continue
        if spec is None:
            specs.pop(sub_id, None)
        else:
            specs[sub_id] = spec
    return bad


def resolve(specs: dict[str, dict[str, Any]], env: Mapping[str, str],
            sensitivity: str = "medium") -> tuple[list[Subscription], dict[str, str]]:
    """The subscriptions *specs* describe, secrets from *env*, *sensitivity* where a spec names no
    level; the ones that cannot be used, with why."""
    subs: list[Subscription] = []
    rejected: dict[str, str] = {}
    for sub_id, spec in sorted(specs.items()):
        try:
            subs.append(load_one(spec, env, sensitivity))
        except ConfigError as exc:
            rejected[sub_id] = str(exc)
    return subs, rejected


class SubscriptionFollower:
    """Follows the subscriptions topic in a thread and hands each new set to *on_change*."""

    def __init__(self, settings: Settings, file: Path | None, env: Mapping[str, str],
                 on_change: Callable[[list[Subscription], dict[str, str]], None]) -> None:
        self.settings, self.env, self.on_change = settings, env, on_change
        self.specs = file_specs(file) if file is not None else {}
        self._thread: threading.Thread | None = None
        self._tail: Tail | None = None

    def start(self, stop: threading.Event) -> list[Subscription]:
        """Read the topic to its end, apply it, then follow it until *stop*; the starting set."""
        topic = self.settings.topic(SUBSCRIPTIONS)
        ensure_topics(self.settings, [topic], compacted=True)
        self._report(overlay(self.specs, list(read_to_end(self.settings, topic))))
        # the tail starts from the beginning too: re-applying what was read is a no-op
        self._tail = Tail(self.settings, topic, "framewatch-notify-subscriptions")
        self._thread = threading.Thread(target=self._follow, args=(stop,), name="subscriptions", daemon=True)
        self._thread.start()
        return resolve(self.specs, self.env, self.settings.alert_sensitivity)[0]

    def _follow(self, stop: threading.Event) -> None:
        assert self._tail is not None
        while not stop.wait(FOLLOW_INTERVAL_S):
            try:
                records = self._tail.poll_keyed()
            except Exception as exc:  # a broker hiccup must not end the follower
                log.warning("subscriptions: reading the topic failed (%s); retrying", type(exc).__name__)
                continue
            if records:
                self._report(overlay(self.specs, records))
        self._tail.close()

    def _report(self, unreadable: int) -> None:
        if unreadable:
            log.warning("subscriptions: skipped %d unreadable record(s) on the topic", unreadable)
        subs, rejected = resolve(self.specs, self.env, self.settings.alert_sensitivity)
        for sub_id, why in rejected.items():
            log.warning("subscriptions: %s not used: %s", sub_id, why)
        self.on_change(subs, rejected)
