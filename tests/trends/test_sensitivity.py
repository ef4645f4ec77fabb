"""One shift detector per sensitivity in the aggregator: a planted step raises each level's own
alert (its own key, level and rate), the alert metric counts the deployment's level only, and a
restart restores each level's memory from that level's alerts on the real broker."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import SENSITIVITIES, Alert
from framewatch.metrics import TrendMetrics
from framewatch.processing.changes.detector import SENSITIVITY_RATES
from framewatch.processing.trends.cli import change_detectors
from framewatch.processing.trends.recovery import restore_cooldowns
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.settings import ALERTS, Settings
from tests.trends.planted import FRAME, STEP_H, WATCH, StepWatch

SHIFT_LABELS = {"watch": WATCH, "frame": FRAME, "rule": "binomial_cusum", "kind": "shift"}


def test_each_level_alerts_on_its_own_and_the_metric_counts_the_deployments() -> None:
    watch = StepWatch(Settings(alert_sensitivity="high"))
    alerts = watch.until(STEP_H + 6)
    shifts = {a.sensitivity: a for a in alerts if a.kind == "shift"}
    assert sorted(shifts) == sorted(SENSITIVITIES) and len(shifts) == len([a for a in alerts if a.kind == "shift"])
    for level, alert in shifts.items():
        assert alert.key.endswith(f":{level}:shift") and alert.false_alarm_rate_per_week == round(SENSITIVITY_RATES[level], 6)
    assert len({a.key for a in alerts}) == len(alerts)  # compaction keeps every level's alert
    assert all(a.sensitivity is None for a in alerts if a.kind in ("spike", "emergent"))
    # three shift alerts, one counted: the deployment's level, as Grafana's annotations show it
    assert watch.registry.get_sample_value("framewatch_alerts_total", SHIFT_LABELS) == 1.0


@pytest.mark.integration
def test_a_restart_restores_each_levels_memory_from_its_own_alerts(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
) -> None:
    settings = settings_factory(alert_sensitivity="medium")
    topic_factory(settings, ALERTS)
    first = StepWatch(settings).until(STEP_H + 1)
    by_level = {a.sensitivity: a for a in first if a.kind == "shift"}
    spikes = [a for a in first if a.kind == "spike"]
    assert set(by_level) == set(SENSITIVITIES) and spikes
    # on the topic: high's alert, medium's as an Alert v2 wrote it (no level), no low one
    medium_v2 = dataclasses.replace(by_level["medium"], key=by_level["medium"].key.replace(":medium", ""),
                                    sensitivity=None, schema_version=2)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for alert in (by_level["high"], medium_v2, *spikes):
        producer.send(settings.topic(ALERTS), key=alert.key.encode(), value=contracts.encode(alert))
    producer.flush()
    producer.close()
    changes, spike_detector = change_detectors(settings), SpikeDetector(SpikeConfig())
    assert restore_cooldowns(settings, spike_detector, TrendMetrics(CollectorRegistry()), changes) == 2 + len(spikes)
    again: list[Alert] = StepWatch(settings, changes, spike_detector).until(STEP_H + 1)
    # high and medium (the deployment's level, for a v2 alert) remember theirs; low never alerted
    assert [(a.kind, a.sensitivity) for a in again] == [("shift", "low")]
