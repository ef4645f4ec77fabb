"""The aggregator's stage: framed records in, state + partial aggregates + alerts out.

Given its in-memory state (``AggregateState``, ``SpikeDetector`` and one ``ChangeDetector`` per
sensitivity) the stage is a function of the batch; the Kafka loop (``run_stage``) produces its
output and commits. Outputs, in order:
changed contributions, then the retention step's sealed days and tombstones to the compacted
``aggregate-state`` topic, absolute partial aggregate rows for every bucket the batch touched to
``aggregates``, and alerts to ``alerts``. Records published before the contribution horizon are
counted into their day's seal, once; only those past the daily horizon are dead-lettered as
``too_late`` (:mod:`~framewatch.processing.trends.retention`). Parquet is not written here:
``framewatch sink`` (:mod:`~framewatch.processing.sink`) stores the topics this stage produces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from framewatch import contracts
from framewatch.contracts import AggregateContribution, Alert, FramedItem, alert_key
from framewatch.errors import DecodeError
from framewatch.kafka_io import Failure, Message, Outgoing, StageOutput
from framewatch.metrics import TrendMetrics
from framewatch.processing.changes.detector import Change, ChangeDetector
from framewatch.processing.trends.codec import (
    contribution_of,
    contribution_to_json,
    encode_row_values,
    fast_contribution,
)
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.retention import ALREADY_SEALED, TOO_LATE, Expired, Retention
from framewatch.processing.trends.spikes import EMERGENT_GROWTH, Evaluation, SpikeDetector
from framewatch.timeutil import format_utc

log = logging.getLogger(__name__)


def decode_contributions(batch: Sequence[Message]) -> tuple[list[AggregateContribution], list[Failure]]:
    """Contributions of the batch's framed records; records that do not decode are failures."""
    pairs, errs = decode_with_messages(batch)
    return [c for _, c in pairs], errs


def decode_with_messages(batch: Sequence[Message]) -> tuple[list[tuple[Message, AggregateContribution]], list[Failure]]:
    """Each decoded record's message and contribution; records that do not decode are failures."""
    oks: list[tuple[Message, AggregateContribution]] = []
    errs: list[Failure] = []
    for msg in batch:
        try:
            oks.append((msg, fast_contribution(msg.value, msg.ctx.partition)))
        except DecodeError:
            try:  # the full decoder names the canonical reason
                item = contracts.decode(FramedItem, msg.value)
            except DecodeError as exc:
                errs.append(Failure(msg.ctx, exc.reason, exc.detail, msg.value))
            else:
                oks.append((msg, contribution_of(item, msg.ctx.partition)))
    return oks, errs


def too_late(msg: Message, c: AggregateContribution, floor_s: int) -> Failure:
    """The dead letter of a record older than the daily horizon: its buckets are gone."""
    detail = (f"published {format_utc(c.published_at)}, before the daily horizon "
              f"{format_utc(datetime.fromtimestamp(floor_s, UTC))}: its buckets are no longer kept")
    return Failure(msg.ctx, TOO_LATE, detail, msg.value)


def state_records(topic: str, expired: Expired) -> list[Outgoing]:
    """The retention step's sealed days and tombstones (value None: compaction deletes the key)."""
    out = [Outgoing(topic, key, value) for key, value in expired.seals]
    # Outgoing.value is typed bytes, but the producer sends None as a tombstone, which is the point
    out += [Outgoing(topic, key, None) for key in expired.tombstones]  # type: ignore[arg-type]
    return out


def alert_of(ev: Evaluation, state: AggregateState, detected_at: datetime) -> Alert:
    """The alert record of a fired evaluation, with its top items as evidence."""
    start = datetime.fromtimestamp(ev.window_start_s, UTC)
    return Alert(
        key=alert_key(ev.watch, ev.frame, start), watch_id=ev.watch, frame=ev.frame, rule=ev.rule,
        window_start=start, window_end=datetime.fromtimestamp(ev.window_end_s, UTC),
        baseline_share=round(ev.baseline_share, 6), observed_share=round(ev.observed_share, 6),
        observed_count=ev.count, window_items=ev.total, score=round(ev.score, 4),
        detected_at=detected_at,
        top_items=state.top_items(ev.watch, ev.frame, ev.window_start_s, ev.window_end_s),
        kind="emergent" if ev.rule == EMERGENT_GROWTH else "spike",
    )


def change_alert(ch: Change, state: AggregateState, detected_at: datetime, sensitivity: str) -> Alert:
    """The alert record of a shift or drift found at *sensitivity*: from its change point to the
    last hour seen, with the share before and after, the detector and its rate, and the top items
    since the change."""
    start = datetime.fromtimestamp(ch.change_point_s, UTC)
    return Alert(
        key=alert_key(ch.watch, ch.frame, start, ch.kind, sensitivity), watch_id=ch.watch, frame=ch.frame,
        rule=ch.detector, window_start=start, window_end=datetime.fromtimestamp(ch.detected_hour_s, UTC),
        baseline_share=ch.share_before, observed_share=ch.share_after, observed_count=ch.count,
        window_items=ch.total, score=ch.score, detected_at=detected_at,
        top_items=state.top_items(ch.watch, ch.frame, ch.change_point_s, int(detected_at.timestamp()) + 1),
        kind=ch.kind,  # type: ignore[arg-type]  # SHIFT or DRIFT
        change_point=start, share_before=ch.share_before, share_after=ch.share_after,
        share_after_low=ch.share_after_low, share_after_high=ch.share_after_high, detector=ch.detector,
        false_alarm_rate_per_week=round(ch.false_alarms_per_week, 6),
        delay_s=round(detected_at.timestamp() - ch.change_point_s, 1),
        sensitivity=sensitivity,  # type: ignore[arg-type]  # a key of SENSITIVITY_RATES
    )


class AggregateStage:
    """Callable stage over framed-item batches (see the module docstring)."""

    def __init__(
        self,
        state: AggregateState,
        detector: SpikeDetector,
        *,
        state_topic: str,
        aggregates_topic: str,
        alerts_topic: str,
        clock: Callable[[], datetime],
        metrics: TrendMetrics | None = None,
        owned: Callable[[], set[int]] | None = None,
        evaluates: Callable[[str], bool] | None = None,
        caught_up: Callable[[], bool] | None = None,
        max_defer_s: float = 60.0,
        retention: Retention | None = None,
        changes: ChangeDetector | Mapping[str, ChangeDetector] | None = None,
        sensitivity: str = "medium",
    ) -> None:
        self.state = state
        self.detector = detector
        # shift and drift detection, one detector per sensitivity (none: spikes only)
        if isinstance(changes, ChangeDetector):
            changes = {changes.cfg.sensitivity: changes}
        self.changes = dict(changes or {})
        self.sensitivity = sensitivity  # the deployment's level: the only one the alert metric counts
        self.topics = (state_topic, aggregates_topic, alerts_topic)
        self.clock = clock
        self.metrics = metrics
        self.retention = retention  # None: keep everything (no horizons)
        self.owned = owned
        self.evaluates = evaluates
        self.pending: set[str] = set()  # watches to evaluate next (moved by other instances' rows, or deferred)
        # While the consumer works through a backlog, the current window and the baselines are
        # only partly loaded: spikes wait until it has caught up (at most max_defer_s)
        self.caught_up = caught_up
        self.max_defer_s = max_defer_s
        self._evaluated_at = time.monotonic()
        self._swept_at = time.monotonic()

    def absorb(self, rows: Sequence[contracts.AggregateRow], owned: set[int]) -> None:
        """Take in partial rows other instances published; their watches get evaluated next."""
        if self.state.merge_foreign(rows, owned):
            self.pending |= {r.watch_id for r in rows if r.partition not in owned}

    def __call__(self, batch: Sequence[Message]) -> StageOutput:
        """Aggregate one micro-batch."""
        state_topic, aggregates_topic, alerts_topic = self.topics
        if self.owned is not None:
            # a rebalance inside the poll may hand partitions away mid-batch: their records
            # belong to the new owner (we do not commit them), and our state for them is gone
            owned = self.owned()
            batch = [m for m in batch if m.ctx.partition in owned]
        if not batch and time.monotonic() - self._swept_at >= self.max_defer_s:
            # idle (the loop's idle hook): windows move on with the clock and with rows that may
            # have come in between, so every watch is evaluated again, once per max_defer_s
            self._swept_at = time.monotonic()
            self.pending |= set(self.state.frames)
        pairs, failures = decode_with_messages(batch)
        contributions = [c for _, c in pairs]
        if self.retention is None:
            applied, late = self.state.apply(contributions), None
        else:
            admitted = self.retention.apply(self.state, contributions)
            applied, late = admitted.live, admitted.late
            floor = self.retention.horizons.kept_from(self.retention.stream_s)["1d"]
            failures += [too_late(pairs[i][0], pairs[i][1], floor) for i in admitted.expired]
            if admitted.already_counted and self.metrics is not None:
                self.metrics.skipped.labels(ALREADY_SEALED).inc(len(admitted.already_counted))
            refused = {*admitted.expired, *admitted.already_counted}
            contributions = [c for i, c in enumerate(contributions) if i not in refused]
        out = [Outgoing(state_topic, c.key, contribution_to_json(c)) for c in applied.changed]
        if self.retention is not None:
            out += [Outgoing(state_topic, key, value) for key, value in admitted.seals]
            out += state_records(state_topic, self.retention.step(self.state))
        row_values = applied.row_values + (late.row_values if late is not None else [])
        out += [Outgoing(aggregates_topic, *encode_row_values(v)) for v in row_values]
        now = self.clock()
        watches = {c.watch_id for c in contributions} | self.pending
        if self.caught_up is not None and not self.caught_up() and time.monotonic() - self._evaluated_at < self.max_defer_s:
            self.pending = watches
            watches = set()
        else:
            self.pending = set()
            self._evaluated_at = time.monotonic()
        for watch in sorted(w for w in watches if self.evaluates is None or self.evaluates(w)):
            frames = self.state.frames.get(watch, ())
            fired = self.detector.evaluate(self.state, watch, frames, now.timestamp(), self.state.first_seen)
            alerts = [alert_of(ev, self.state, now) for ev in fired]
            for level, changes in self.changes.items():
                alerts += [change_alert(ch, self.state, now, level) for ch in changes.evaluate(self.state, watch, frames, now.timestamp())]
            for alert in alerts:
                out.append(Outgoing(alerts_topic, alert.key, contracts.encode(alert)))
                log.info("alert %s %s %s score=%.2f count=%d", alert.kind, alert.rule, alert.key, alert.score, alert.observed_count)
                # one level's alerts in the metric, hence in Grafana's annotations: the others'
                # repeat the same changes, sooner (high) or later (low)
                if self.metrics is not None and alert.sensitivity in (None, self.sensitivity):
                    self.metrics.alerts.labels(alert.watch_id, alert.frame, alert.rule, alert.kind).inc()
        return StageOutput(produce=out, failures=failures)
