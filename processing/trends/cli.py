"""``framewatch aggregate``: the trends component (framed items -> aggregates and alerts).

Wiring only: the state protocol is :mod:`~framewatch.processing.trends.recovery`, the stage
:class:`~framewatch.processing.trends.stage.AggregateStage`, the life cycle
:func:`~framewatch.service.run_component`, and the durability design is told in
:mod:`framewatch.processing.trends.counts`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from framewatch.contracts import SENSITIVITIES
from framewatch.kafka_io import (
    Message,
    StageOutput,
    backlog,
    ensure_topics,
    make_consumer,
    make_producer,
    run_stage,
)
from framewatch.metrics import PipelineMetrics, TrendMetrics
from framewatch.processing.changes.detector import ChangeConfig, ChangeDetector
from framewatch.processing.trends.collector import ShareOfVoiceCollector
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.recovery import (
    PartialsTail,
    StateRestorer,
    ensure_state_topic,
    owner_partition,
    restore_cooldowns,
)
from framewatch.processing.trends.retention import Horizons, Retention
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from framewatch.service import Component, load_settings, run_component
from framewatch.settings import AGGREGATES, ALERTS, DEAD_LETTERS, FRAMED_ITEMS, Settings
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

COMPONENT = "aggregate"


def group_id(settings: Settings) -> str:
    """Consumer group of the aggregate component."""
    return settings.group_id(COMPONENT)


def spike_config(settings: Settings) -> SpikeConfig:
    """Spike thresholds from settings."""
    return SpikeConfig(
        z_threshold=settings.spike_z_threshold, false_alarms_per_week=settings.spike_false_alarms_per_week or None,
        min_count=settings.spike_min_count,
        min_lift=settings.spike_min_lift, baseline_hours=settings.spike_baseline_hours,
        halflife_h=settings.spike_baseline_halflife_h,
        min_baseline_items=settings.spike_min_baseline_items, cooldown_s=settings.spike_cooldown_s,
        emergent_min_count=settings.emergent_min_count,
        emergent_growth_factor=settings.emergent_growth_factor,
        emergent_new_within_s=settings.emergent_new_within_s,
    )


def change_config(settings: Settings, sensitivity: str | None = None) -> ChangeConfig:
    """Shift and drift tuning from settings, at *sensitivity* (default: the deployment's)."""
    return ChangeConfig(sensitivity=sensitivity or settings.alert_sensitivity, shift_lift=settings.shift_design_lift)


def change_detectors(settings: Settings) -> dict[str, ChangeDetector]:
    """One detector per sensitivity, each calibrated to its own rate and with its own memory, so
    a subscription at any level gets exactly that level's alerts."""
    return {level: ChangeDetector(change_config(settings, level)) for level in SENSITIVITIES}


def run_aggregator(
    settings: Settings,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utcnow,
    serve_metrics: bool = True,
    max_batches: int | None = None,
    idle_stop_s: float | None = None,
    on_ready: Callable[[int], None] | None = None,
    consumer_overrides: dict[str, Any] | None = None,
) -> int:
    """Run the aggregator until *stop* is set; returns the records handled.

    Serves /metrics on ``settings.metrics_port`` when *serve_metrics*; *on_ready* gets the
    bound port once the endpoint is up. *consumer_overrides* go to the KafkaConsumer (e.g. a
    short ``session_timeout_ms`` so a killed instance's partitions move on quickly).
    """

    def body(component: Component) -> int:
        return _aggregate(component, clock, max_batches, idle_stop_s, consumer_overrides)

    return run_component(
        COMPONENT, settings, body, stop=stop, registry=registry, serve_health=serve_metrics,
        on_health=on_ready,
    )


def _aggregate(
    component: Component,
    clock: Callable[[], datetime],
    max_batches: int | None,
    idle_stop_s: float | None,
    consumer_overrides: dict[str, Any] | None,
) -> int:
    settings, registry = component.settings, component.registry
    framed_topic = settings.topic(FRAMED_ITEMS)
    ensure_topics(settings, [framed_topic, settings.topic(AGGREGATES), settings.topic(ALERTS), settings.topic(DEAD_LETTERS)])
    state_topic = ensure_state_topic(settings)
    state = AggregateState(by_outlet=settings.aggregate_by_outlet)
    detector = SpikeDetector(spike_config(settings))
    changes = change_detectors(settings)
    pipeline = PipelineMetrics(registry, COMPONENT)
    trend_metrics = TrendMetrics(registry)
    log.info("remembered %d earlier alerts", restore_cooldowns(settings, detector, trend_metrics, changes))
    lock = threading.Lock()  # the loop, rebalances and /metrics scrapes share the state
    retention = Retention(Horizons.from_settings(settings), wall_s=lambda: clock().timestamp())
    restorer = StateRestorer(settings, state, framed_topic, lock, retention)
    component.ready = restorer.ready
    n_partitions = settings.topic_partitions  # replaced by the topic's real count below
    consumer = make_consumer(settings, group_id(settings), [framed_topic], **(consumer_overrides or {}))
    component.closing("consumer", consumer.close)
    stage = AggregateStage(
        state, detector, owned=lambda: restorer.owned,
        evaluates=lambda watch: owner_partition(watch, n_partitions) in restorer.owned, state_topic=state_topic, aggregates_topic=settings.topic(AGGREGATES),
        alerts_topic=settings.topic(ALERTS), clock=clock, metrics=trend_metrics,
        caught_up=lambda: backlog(consumer) == 0, retention=retention, changes=changes,
        sensitivity=settings.alert_sensitivity,
    )
    quiet = logging.getLogger("kafka.consumer.subscription_state")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # re-subscribing only to add the listener is not news
    try:
        consumer.subscribe([framed_topic], listener=restorer)
    finally:
        quiet.setLevel(level)
    n_partitions = len(consumer.partitions_for_topic(framed_topic) or ()) or settings.topic_partitions
    tail = PartialsTail(settings)
    component.closing("partials tail", tail.close)

    def merged_stage(batch: Sequence[Message]) -> StageOutput:
        with lock:
            # other instances' rows first, so that detection sees every partition
            stage.absorb(tail.poll(), restorer.owned)
            stage.pending |= restorer.take_moved()
            return stage(batch)

    def merged_counts() -> Any:
        with lock:
            stage.absorb(tail.poll(), restorer.owned)
            return state.frame()

    def own_counts() -> Any:
        with lock:
            return state.frame(own=True)

    def scores() -> dict[tuple[str, str], tuple[float, float]]:
        with lock:
            return {k: (ev.score, ev.baseline_share) for k, ev in detector.latest.items()}

    registry.register(ShareOfVoiceCollector(
        merged_counts, scores, clock=lambda: clock().timestamp(),
        max_emergent=settings.metrics_max_emergent_frames, by_outlet=settings.aggregate_by_outlet,
        own_counts=own_counts,
    ))
    producer = make_producer(settings)
    component.closing("producer", producer.close)
    handled = 0
    while True:
        try:
            return handled + run_stage(
                consumer=consumer, producer=producer, stage=merged_stage, settings=settings,
                metrics=pipeline, stop=component.stop, max_batches=max_batches, idle_stop_s=idle_stop_s,
                heartbeat=component.heartbeat.beat, idle=lambda: merged_stage(()),
                replayable=False,  # its output is a delta of its state: a failure restarts it
            )
        except CommitFailedError:
            # the group rebalanced under the batch: its offsets go uncommitted and the
            # partition's new owner reads it again, which is a no-op for the state
            log.warning("commit failed after a rebalance; carrying on")
            pipeline.errors.labels(COMPONENT, "commit_failed").inc()


@click.command("aggregate")
def aggregate() -> None:
    """Aggregate framed items into framing shares over time, and raise spike alerts."""
    run_aggregator(load_settings(), threading.Event())
