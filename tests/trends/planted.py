"""A planted step, watched by the aggregator's stage at every sensitivity: watch w1 at 120 items an
hour, frame a at 20% for eight days and at 40% from then on, counted into a real AggregateState
hour by hour while the stage (one ChangeDetector per level, as `framewatch aggregate` builds them)
is called once a completed hour."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import ANY, Alert
from framewatch.metrics import TrendMetrics
from framewatch.processing.changes.detector import ChangeDetector
from framewatch.processing.trends.cli import change_detectors
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from framewatch.settings import Settings

T0_S = 1_767_225_600  # 2026-01-01 00:00 UTC
WATCH, FRAME = "w1", "a"
STEP_H = 8 * 24  # the hour the step begins
PER_BUCKET, BEFORE, AFTER = 10, 2, 4  # items of a 5 min bucket, and frame a's of them before and after


def hour_cells(h: int) -> list[tuple[str, int, str, str, int, int]]:
    """Counts of hour *h* (5 min buckets and the hour) as AggregateState cells."""
    a = AFTER if h >= STEP_H else BEFORE
    start = T0_S + h * 3600
    cells = [("1h", start, ANY, ANY, 12 * PER_BUCKET, 12 * PER_BUCKET), ("1h", start, FRAME, ANY, 12 * a, 12 * a)]
    for b in range(12):
        cells += [("5m", start + b * 300, ANY, ANY, PER_BUCKET, PER_BUCKET), ("5m", start + b * 300, FRAME, ANY, a, a)]
    return cells


class StepWatch:
    """The stage over the planted watch, with its history counted up to the step."""

    def __init__(self, settings: Settings, changes: dict[str, ChangeDetector] | None = None,
                 spikes: SpikeDetector | None = None) -> None:
        self.state = AggregateState()
        for h in range(STEP_H):
            self.state.install_cells(0, WATCH, hour_cells(h))
        self.counted = STEP_H
        self.now = datetime.fromtimestamp(T0_S, UTC)
        self.registry = CollectorRegistry()
        self.stage = AggregateStage(
            self.state, spikes or SpikeDetector(SpikeConfig()), state_topic="s", aggregates_topic="a",
            alerts_topic="alerts", clock=lambda: self.now, metrics=TrendMetrics(self.registry),
            changes=change_detectors(settings) if changes is None else changes, sensitivity=settings.alert_sensitivity,
        )

    def until(self, end_h: int) -> list[Alert]:
        """Count the hours up to *end_h* (exclusive), calling the stage after each; the alerts raised."""
        alerts: list[Alert] = []
        for h in range(self.counted, end_h):
            self.state.install_cells(0, WATCH, hour_cells(h))
            self.now = datetime.fromtimestamp(T0_S + (h + 1) * 3600 + 60, UTC)  # a minute past the hour's end
            self.stage.pending = {WATCH}
            alerts += [contracts.decode(Alert, o.value) for o in self.stage([]).produce if o.topic == "alerts"]
        self.counted = max(self.counted, end_h)
        return alerts
