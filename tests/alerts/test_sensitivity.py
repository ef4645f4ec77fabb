"""Per-subscription sensitivity: the file's and the API's ``sensitivity`` (default: the
deployment's), the matching rule (a shift or drift of the subscription's level; spikes and
emergent framings at every level), and on the real broker two subscribers at high and low on one
planted change, each told only of its own level's shift."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.errors import ConfigError
from framewatch.processing.alerts.live import load_one, resolve
from framewatch.processing.alerts.subscriptions import (
    Channel,
    Subscription,
    load_subscriptions,
    matches,
)
from framewatch.settings import ALERTS, Settings
from tests.helpers.alerts import alert, notify_until_committed
from tests.helpers.webhooks import Receiver
from tests.trends.planted import STEP_H, WATCH, StepWatch

FILE = """subscriptions:
  - subscriber: desk
    watch: scs
    channel: {type: slack, url: "https://hooks.slack.com/services/T/B/X"}
  - subscriber: night-desk
    watch: scs
    sensitivity: low
    channel: {type: slack, url: "https://hooks.slack.com/services/T/B/Y"}
"""
SLACK = {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}


def test_the_file_names_a_level_or_takes_the_deployments(tmp_path: Path) -> None:
    path = tmp_path / "subs.yaml"
    path.write_text(FILE)
    assert [s.sensitivity for s in load_subscriptions(path, {})] == ["medium", "low"]
    assert [s.sensitivity for s in load_subscriptions(path, {}, sensitivity="high")] == ["high", "low"]
    path.write_text(FILE.replace("sensitivity: low", "sensitivity: paranoid"))
    with pytest.raises(ConfigError) as err:
        load_subscriptions(path, {})
    assert str(err.value).startswith(f"{path}:7: field 'subscriptions[1].sensitivity': 'paranoid' is not one of")


def test_an_api_spec_takes_the_deployments_level_unless_it_names_one() -> None:
    spec = {"subscriber": "desk", "watch": "scs", "channel": SLACK}
    assert load_one(spec, sensitivity="high").sensitivity == "high"
    assert load_one({**spec, "sensitivity": "low"}, sensitivity="high").sensitivity == "low"
    assert load_one({**spec, "sensitivity": None}).sensitivity == "medium"
    subs, rejected = resolve({"a": spec, "b": {**spec, "subscriber": "x", "sensitivity": "max"}}, {}, "low")
    assert [s.sensitivity for s in subs] == ["low"] and "sensitivity" in rejected["b"]


def test_shifts_and_drifts_match_their_level_only_spikes_and_emergent_every_level() -> None:
    ch = Channel("slack", url="http://x")
    high, low = (Subscription("s", "scs", None, 0.0, ch, sensitivity=level) for level in ("high", "low"))
    shift_high = dataclasses.replace(alert(), kind="shift", sensitivity="high")
    drift_low = dataclasses.replace(alert(), kind="drift", sensitivity="low")
    emergent = alert(frame="emergent:3", rule="emergent_growth")
    assert matches(high, shift_high) and not matches(low, shift_high)
    assert matches(low, drift_low) and not matches(high, drift_low)
    assert all(matches(sub, a) for sub in (high, low) for a in (alert(), emergent))
    legacy_shift = dataclasses.replace(alert(), kind="shift")  # an Alert v2: raised before levels, no level
    assert matches(high, legacy_shift) and matches(low, legacy_shift)
    only_spikes = dataclasses.replace(high, kinds=("spike",))
    assert matches(only_spikes, alert()) and not matches(only_spikes, shift_high)


@pytest.mark.integration
def test_a_high_and_a_low_subscriber_each_get_only_their_levels_shift_of_one_change(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = settings_factory(notify_max_attempts=2)
    topic_factory(settings, ALERTS)
    raised = StepWatch(settings).until(STEP_H + 6)
    shifts = {a.sensitivity: a.key for a in raised if a.kind == "shift"}
    assert sorted(shifts) == ["high", "low", "medium"]  # the one change, found by every level
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for a in raised:
        producer.send(settings.topic(ALERTS), key=a.key.encode(), value=contracts.encode(a))
    producer.flush()
    producer.close()
    monkeypatch.setenv("LEVEL_SECRET", "level-secret")
    with Receiver() as receiver:
        subs = tmp_path / "subs.yaml"
        subs.write_text("subscriptions:\n" + "".join(
            f"  - subscriber: {name}\n    watch: {WATCH}\n    sensitivity: {level}\n"
            f"    channel: {{type: webhook, url: '{receiver.url}', secret_env: LEVEL_SECRET}}\n"
            for name, level in (("hi-desk", "high"), ("lo-desk", "low"))))
        notify_until_committed(settings, subs, CollectorRegistry())
    got: dict[str, list[dict[str, object]]] = {}
    for _, body in receiver.requests:
        payload = json.loads(body)
        got.setdefault(payload["subscriber"], []).append(payload["alert"])
    level_less = sorted(a.key for a in raised if a.sensitivity is None)
    for name, level in (("hi-desk", "high"), ("lo-desk", "low")):
        assert sorted(a["key"] for a in got[name] if a["kind"] in ("shift", "drift")) == [shifts[level]], name
        assert sorted(a["key"] for a in got[name] if a["sensitivity"] is None) == level_less, name
