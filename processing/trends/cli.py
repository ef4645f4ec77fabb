"""``framewatch aggregate``: the aggregator component (framed items -> aggregates and alerts).

Wiring only: the state restore from Kafka, the rebalance listener, the metrics endpoint and the
one loop (``run_stage``) around :class:`~framewatch.processing.trends.stage.AggregateStage`.
The durability design is in :mod:`framewatch.processing.trends.counts`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import click
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, TopicAlreadyExistsError
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import AggregateRow, Alert
from framewatch.errors import DecodeError
from framewatch.health import HealthServer
from framewatch.kafka_io import (
    Message,
    StageOutput,
    ensure_topics,
    make_consumer,
    make_producer,
    run_stage,
)
from framewatch.metrics import FramingCollector, FramingMetrics, PipelineMetrics
from framewatch.processing.trends.codec import contribution_from_json
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.parquet import ParquetSink
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from framewatch.settings import (
    AGGREGATE_STATE,
    AGGREGATES,
    ALERTS,
    DEAD_LETTERS,
    FRAMED_ITEMS,
    Settings,
)
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

COMPONENT = "aggregate"


def group_id(settings: Settings) -> str:
    """Consumer group of the aggregate component."""
    return settings.group_id(COMPONENT)


def spike_config(settings: Settings) -> SpikeConfig:
    """Spike thresholds from settings."""
    return SpikeConfig(
        z_threshold=settings.spike_z_threshold, min_count=settings.spike_min_count,
        min_lift=settings.spike_min_lift, baseline_hours=settings.spike_baseline_hours,
        halflife_h=settings.spike_baseline_halflife_h,
        min_baseline_items=settings.spike_min_baseline_items, cooldown_s=settings.spike_cooldown_s,
        emergent_min_count=settings.emergent_min_count,
        emergent_growth_factor=settings.emergent_growth_factor,
        emergent_new_within_s=settings.emergent_new_within_s,
    )


def ensure_state_topic(settings: Settings) -> str:
    """Create the compacted state topic if needed; returns its full name."""
    name = settings.topic(AGGREGATE_STATE)
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="framewatch-admin")
    try:
        if name not in set(admin.list_topics()):
            topic = NewTopic(
                name, settings.topic_partitions, settings.topic_replication,
                topic_configs={"cleanup.policy": "compact"},
            )
            # another instance may create it between list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([topic])
    finally:
        admin.close()
    return name


def read_topic_to_end(settings: Settings, topic: str) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Every record of *topic* up to its end offsets at call time (no group, nothing committed)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
        client_id="framewatch-restore",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for rec in records:
                    if rec.offset < end[tp]:
                        yield rec.key, rec.value
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()


class StateRestorer(ConsumerRebalanceListener):
    """Keeps the in-memory state equal to the state topic for the assigned partitions."""

    def __init__(
        self, settings: Settings, state: AggregateState, framed_topic: str, lock: threading.Lock | None = None
    ) -> None:
        self.lock = lock or threading.Lock()
        self.settings = settings
        self.state = state
        self.framed_topic = framed_topic
        self.ready = threading.Event()
        self.owned: set[int] = set()

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Hand partitions over: the new owner reloads them from the state topic; their counts
        stay here as foreign partials until the new owner publishes newer rows."""
        gone = {tp.partition for tp in revoked if tp.topic == self.framed_topic}
        with self.lock:
            self.owned -= gone
            self.state.demote_partitions(gone)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Load the contributions of newly assigned partitions from the state topic."""
        wanted = {tp.partition for tp in assigned if tp.topic == self.framed_topic} - self.state.partitions()
        if wanted:
            latest = {}
            for key, value in read_topic_to_end(self.settings, self.settings.topic(AGGREGATE_STATE)):
                if value is None or key is None:
                    continue
                c = contribution_from_json(value)
                if c.partition in wanted:
                    latest[c.key] = c
            with self.lock:
                self.state.drop_partitions(wanted)  # nothing half-known survives
                n = self.state.load(latest.values())
            log.info("restored %d contributions of partitions %s", n, sorted(wanted))
        with self.lock:
            self.owned |= {tp.partition for tp in assigned if tp.topic == self.framed_topic}
        self.ready.set()


class PartialsTail:
    """Reads the partial rows every instance publishes (no group), for the merged view."""

    def __init__(self, settings: Settings) -> None:
        topic = settings.topic(AGGREGATES)
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
            client_id="framewatch-aggregate-tail",
        )
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)

    def poll(self) -> list[AggregateRow]:
        """Rows published since the last call (non-blocking)."""
        rows = []
        for records in self.consumer.poll(timeout_ms=0, max_records=50_000).values():
            for rec in records:
                try:
                    rows.append(contracts.decode(AggregateRow, rec.value or b""))
                except DecodeError:
                    continue
        return rows

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def owner_partition(watch_id: str, partitions: int) -> int:
    """The framed-items partition whose owner evaluates spikes of *watch_id* (one instance per watch)."""
    return zlib.crc32(watch_id.encode("utf-8")) % max(1, partitions)


def restore_cooldowns(settings: Settings, detector: SpikeDetector, framing: FramingMetrics | None = None) -> int:
    """Remember the alerts already raised, so a restart does not raise them again.

    Their alert counters start at 0 in this process, so ``increase()`` over a window that spans
    the restart still sees the series."""
    n = 0
    for _, value in read_topic_to_end(settings, settings.topic(ALERTS)):
        try:
            alert = contracts.decode(Alert, value or b"")
        except DecodeError:
            continue
        detector.remember(alert.watch_id, alert.frame, int(alert.window_start.timestamp()))
        if framing is not None:
            framing.alerts.labels(alert.watch_id, alert.frame, alert.rule)
        n += 1
    return n


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
    registry = registry or CollectorRegistry()
    framed_topic = settings.topic(FRAMED_ITEMS)
    ensure_topics(settings, [framed_topic, settings.topic(AGGREGATES), settings.topic(ALERTS), settings.topic(DEAD_LETTERS)])
    state_topic = ensure_state_topic(settings)
    state = AggregateState(by_outlet=settings.aggregate_by_outlet)
    detector = SpikeDetector(spike_config(settings))
    pipeline = PipelineMetrics(registry, COMPONENT)
    framing = FramingMetrics(registry)
    log.info("remembered %d earlier alerts", restore_cooldowns(settings, detector, framing))
    sink = None
    if settings.parquet_enabled:
        sink = ParquetSink(settings.parquet_dir or settings.state_dir / "parquet")
    lock = threading.Lock()  # the loop, rebalances and /metrics scrapes share the state
    restorer = StateRestorer(settings, state, framed_topic, lock)
    n_partitions = settings.topic_partitions  # replaced by the topic's real count below
    consumer = make_consumer(settings, group_id(settings), [framed_topic], **(consumer_overrides or {}))
    stage = AggregateStage(
        state, detector, owned=lambda: restorer.owned,
        evaluates=lambda watch: owner_partition(watch, n_partitions) in restorer.owned, state_topic=state_topic, aggregates_topic=settings.topic(AGGREGATES),
        alerts_topic=settings.topic(ALERTS), clock=clock, metrics=framing, sink=sink,
        caught_up=lambda: backlog(consumer) == 0,
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

    def merged_stage(batch: Sequence[Message]) -> StageOutput:
        with lock:
            # other instances' rows first, so that detection sees every partition
            stage.absorb(tail.poll(), restorer.owned)
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

    registry.register(FramingCollector(
        merged_counts, scores, clock=lambda: clock().timestamp(),
        max_emergent=settings.metrics_max_emergent_frames, by_outlet=settings.aggregate_by_outlet,
        own_counts=own_counts,
    ))

    producer = make_producer(settings)
    server = None
    if serve_metrics:
        server = HealthServer(registry, settings.metrics_host, settings.metrics_port, ready=restorer.ready.is_set).start()
        if on_ready is not None:
            on_ready(server.port)
    handled = 0
    try:
        while True:
            try:
                return handled + run_stage(
                    consumer=consumer, producer=producer, stage=merged_stage, settings=settings,
                    metrics=pipeline, stop=stop, max_batches=max_batches, idle_stop_s=idle_stop_s,
                )
            except CommitFailedError:
                # the group rebalanced under the batch: its offsets go uncommitted and the
                # partition's new owner reads it again, which is a no-op for the state
                log.warning("commit failed after a rebalance; carrying on")
                pipeline.errors.labels(COMPONENT, "commit_failed").inc()
    finally:
        consumer.close()
        producer.close()
        tail.close()
        if server is not None:
            server.stop()


def backlog(consumer: Any) -> int:
    """Records between the consumer's positions and the high watermarks of its last fetches; a
    partition not fetched yet counts as one (unknown is not caught up: the stage's
    ``max_defer_s`` keeps that from deferring spikes for long)."""
    behind = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        behind += 1 if high is None else max(0, high - consumer.position(tp))
    return behind


@click.command("aggregate")
def aggregate() -> None:
    """Aggregate framed items into framing shares over time, and raise spike alerts."""
    settings = Settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_aggregator(settings, stop)
