"""``framewatch sink``: raw items, framed items, aggregates and alerts from Kafka to Parquet.

The loop is the project's one loop, :func:`~framewatch.kafka_io.run_stage`, unchanged. Its
micro-batch *is* the sink's flush window: the loop polls with the sink's bounds
(``sink_flush_rows`` records or ``sink_flush_s`` seconds, no linger), hands the whole window to
:class:`~framewatch.processing.sink.stage.SinkStage`, which writes every file durably before it
returns, and only then commits. So a commit covers exactly the offsets whose rows are written,
with no buffer that outlives a call (a buffer across calls would need the loop to commit less
than it consumed). The component's heartbeat is beaten once per window, so the health check
allows one window more than ``health_stale_after_s``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import click
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from framewatch.kafka_io import ensure_topics, make_consumer, make_producer, run_stage
from framewatch.metrics import PipelineMetrics, SinkMetrics
from framewatch.processing.sink.compact import EVERY_S, MIN_FILES, Compactor
from framewatch.processing.sink.s3 import S3Storage
from framewatch.processing.sink.stage import SinkStage
from framewatch.processing.sink.storage import Storage, StorageError, open_storage
from framewatch.service import EXIT_RUNTIME, Component, fail, load_settings, run_component
from framewatch.settings import AGGREGATES, ALERTS, DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings

log = logging.getLogger(__name__)

COMPONENT = "sink"
LOGICAL_TOPICS = (RAW_ITEMS, FRAMED_ITEMS, AGGREGATES, ALERTS)


@dataclasses.dataclass(frozen=True, slots=True)
class SinkOptions:
    """Knobs for tests and back-fills: loop bounds, the compactor's pace, consumer overrides."""

    max_batches: int | None = None
    idle_stop_s: float | None = None
    compact_every_s: float = EVERY_S
    compact_min_files: int = MIN_FILES
    consumer_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


def window_settings(settings: Settings) -> Settings:
    """The settings the loop polls with: one micro-batch per flush window. Copied without
    validation on purpose: the window may exceed the general batch bounds."""
    window_ms = max(1, int(settings.sink_flush_s * 1000))
    return settings.model_copy(update={
        "batch_max_records": settings.sink_flush_rows, "batch_max_wait_ms": window_ms,
        "batch_linger_ms": window_ms,  # a linger as long as the window: a batch never closes early
    })


def run_sink(
    settings: Settings,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
    serve_metrics: bool = True,
    on_ready: Callable[[int], None] | None = None,
    options: SinkOptions | None = None,
) -> int:
    """Run the sink until *stop* is set (or the options' bounds); returns the records handled."""
    opts = options or SinkOptions()
    return run_component(
        COMPONENT, settings, lambda component: _sink(component, opts), stop=stop, registry=registry,
        serve_health=serve_metrics, on_health=on_ready,
    )


def _sink(component: Component, opts: SinkOptions) -> int:
    settings = component.settings
    storage: Storage = open_storage(settings)
    try:
        if isinstance(storage, S3Storage):
            storage.ensure_bucket()
        removed = storage.clean_temp()
    except StorageError as exc:  # the store is away or refuses us: one line, not a traceback
        fail(f"cannot use the lake at {storage.url}: {exc}", EXIT_RUNTIME)
    log.info("sink: writing to %s (flush every %.0f s or %d rows); removed %d stray temp files",
             storage.url, settings.sink_flush_s, settings.sink_flush_rows, removed)
    topics = {settings.topic(name): name for name in LOGICAL_TOPICS}
    ensure_topics(settings, [*topics, settings.topic(DEAD_LETTERS)])
    component.heartbeat.stale_after_s += settings.sink_flush_s  # one loop turn waits a whole window
    consumer = make_consumer(settings, settings.group_id(COMPONENT), list(topics), **opts.consumer_overrides)
    component.closing("consumer", consumer.close)
    producer = make_producer(settings)
    component.closing("producer", producer.close)
    metrics = SinkMetrics(component.registry)
    compactor = Compactor(storage, every_s=opts.compact_every_s, min_files=opts.compact_min_files,
                          metrics=metrics).start()
    component.closing("compactor", compactor.stop)
    component.ready.set()
    stage = SinkStage(storage, topics, metrics=metrics)
    component.closing("writers", stage.close)
    pipeline = PipelineMetrics(component.registry, COMPONENT)
    window = window_settings(settings)
    handled = 0
    while True:
        try:
            return handled + run_stage(
                consumer=consumer, producer=producer, stage=stage, settings=window, metrics=pipeline,
                stop=component.stop, max_batches=opts.max_batches, idle_stop_s=opts.idle_stop_s,
                heartbeat=component.heartbeat.beat,
            )
        except CommitFailedError:
            # a rebalance under the window: its files are written, its offsets are not committed;
            # the partitions' new owner writes them again (same names, or rows the readers dedupe)
            log.warning("sink: commit failed after a rebalance; carrying on")
            pipeline.errors.labels(COMPONENT, "commit_failed").inc()


@click.command("sink")
def sink() -> None:
    """Write raw items, framed items, aggregates and alerts to Parquet (a folder or S3)."""
    run_sink(load_settings(), threading.Event())
