"""Shift alerts through the aggregator's stage: the v2 Alert record with its evidence, the
metric's kind label, and v1 records still decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.errors import DecodeError
from framewatch.metrics import TrendMetrics
from framewatch.processing.changes.detector import ChangeDetector
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from tests.changes.streams import FRAME, T0_S, five_minute_counts, load, step_lift

HISTORY_H = 8 * 24


def stage_at(counts: np.ndarray, totals: np.ndarray, hour: int, metrics: TrendMetrics) -> list[Alert]:
    """The alerts an idle stage call raises at *hour* (a minute past it) on these counts."""
    state = load(counts[:hour * 12], totals[:hour * 12])
    stage = AggregateStage(
        state, SpikeDetector(SpikeConfig()), state_topic="s", aggregates_topic="a", alerts_topic="alerts",
        clock=lambda: datetime.fromtimestamp(T0_S + hour * 3600 + 60, UTC), metrics=metrics,
        changes=ChangeDetector(),
    )
    stage.pending = {"w1"}
    out = stage([])
    return [contracts.decode(Alert, o.value) for o in out.produce if o.topic == "alerts"]


def test_a_step_raises_a_shift_alert_with_its_evidence() -> None:
    rng = np.random.default_rng(3)
    start = (HISTORY_H + 10) * 12 + 3
    counts, totals = five_minute_counts(rng, HISTORY_H + 24, 100, 0.3, step_lift(HISTORY_H + 24, start, 144, 0.5))
    registry = CollectorRegistry()
    metrics = TrendMetrics(registry)
    shifts = []
    for hour in range(HISTORY_H + 11, HISTORY_H + 16):
        shifts = [a for a in stage_at(counts, totals, hour, metrics) if a.kind == "shift"]
        if shifts:
            break
    assert len(shifts) == 1
    alert = shifts[0]
    assert alert.schema_version >= 2 and alert.rule == alert.detector == "binomial_cusum"
    assert alert.change_point is not None and abs(alert.change_point.timestamp() - (T0_S + start * 300)) <= 3600
    assert alert.share_before is not None and alert.share_after_low is not None and alert.share_after_high is not None
    assert alert.share_before < alert.share_after_low < alert.observed_share < alert.share_after_high
    assert alert.delay_s == alert.detected_at.timestamp() - alert.change_point.timestamp()
    assert alert.false_alarm_rate_per_week == round(1 / 32, 6)
    assert alert.key.endswith(":shift")
    labels = {"watch": "w1", "frame": FRAME, "rule": "binomial_cusum", "kind": "shift"}
    assert registry.get_sample_value("framewatch_alerts_total", labels) == 1.0


def test_v1_alerts_still_decode_and_v2_round_trips() -> None:
    v1 = {"key": "w:f:2026-01-01T00:00:00Z", "watch_id": "w", "frame": "f", "rule": "share_spike",
          "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z", "baseline_share": 0.2,
          "observed_share": 0.4, "observed_count": 20, "window_items": 50, "score": 4.1,
          "detected_at": "2026-01-01T01:01:00Z", "top_items": [], "schema_version": 1}
    old = contracts.decode(Alert, json.dumps(v1).encode())
    assert old.kind == "spike" and old.change_point is None and old.delay_s is None
    new = Alert(**{**contracts.to_dict(old), "window_start": old.window_start, "window_end": old.window_end,
                   "detected_at": old.detected_at, "top_items": (), "schema_version": 2, "kind": "drift",
                   "change_point": old.window_start, "share_before": 0.2, "share_after": 0.4, "share_after_low": 0.3,
                   "share_after_high": 0.5, "detector": "ramp_glr", "false_alarm_rate_per_week": 0.03, "delay_s": 3660.0})
    assert contracts.decode(Alert, contracts.encode(new)) == new
    bad = {**v1, "kind": "tsunami"}
    try:
        contracts.decode(Alert, json.dumps(bad).encode())
    except DecodeError as exc:
        assert exc.reason == "invalid_field"
    else:
        raise AssertionError("an unknown kind decoded")
