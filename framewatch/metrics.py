"""Every framewatch metric, declared in one place under the ``framewatch`` namespace.

The one exception is computed, not declared: the share-of-voice families, which the trends
program's collector (``processing/trends/collector.py``) derives from its state at scrape time.

Each component builds its metric group on a registry it is given, so tests use a fresh
``CollectorRegistry`` and read values back with ``registry.get_sample_value``. Label values come
from fixed sets (outcome and reason names, watch and frame ids from the codebook): never an item
id or URL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from framewatch.contracts import DECODE_REASONS

NAMESPACE = "framewatch"

# Errors a consumer loop survives or reports before it stops (``errors_total{reason}``).
PIPELINE_ERROR_REASONS = ("kafka_error", "commit_failed", "stage_error", "stage_retry")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PipelineMetrics:
    """Health of one consuming component (processing, aggregation, notifier)."""

    def __init__(self, registry: CollectorRegistry, component: str) -> None:
        self.component = component
        self.consumed = Counter(
            "consumed_records", "Records read from Kafka.", ["component", "topic"],
            namespace=NAMESPACE, registry=registry,
        )
        self.produced = Counter(
            "produced_records", "Records produced to Kafka.", ["component", "topic"],
            namespace=NAMESPACE, registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters", "Records sent to the dead-letter topic, by reason.",
            ["component", "reason"], namespace=NAMESPACE, registry=registry,
        )
        self.errors = Counter(
            "errors", "Errors handled without stopping the component, by reason.",
            ["component", "reason"], namespace=NAMESPACE, registry=registry,
        )
        self.batch_seconds = Histogram(
            "batch_duration_seconds", "Time to handle one micro-batch, produce and commit.",
            ["component"], namespace=NAMESPACE, registry=registry, buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "batch_records", "Records per micro-batch.", ["component"], namespace=NAMESPACE,
            registry=registry, buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
        )
        self.lag = Gauge(
            "consumer_lag", "Records behind the end of each partition.",
            ["component", "topic", "partition"], namespace=NAMESPACE, registry=registry,
        )
        self.up = Gauge(
            "component_up", "1 while the component's loop runs.", ["component"],
            namespace=NAMESPACE, registry=registry,
        )
        # Known label values start at 0, so rate() and alerts see a series before the first event.
        for reason in DECODE_REASONS:
            self.dead_letters.labels(component, reason)
        for reason in PIPELINE_ERROR_REASONS:
            self.errors.labels(component, reason)


FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)


class IngestMetrics:
    """Health of the ingest worker; the ``feed`` label is a source id (bounded by the sources
    file), ``outcome`` and ``reason`` come from ``framewatch.ingest.outcomes``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fetches = Counter(
            "ingest_fetches", "Feed polls and XenForo thread-page reads by final outcome (ok, not_modified or a failure reason).",
            ["feed", "outcome"], namespace=NAMESPACE, registry=registry,
        )
        self.items_produced = Counter(
            "ingest_items_produced", "Items produced to the raw topic and acknowledged by the broker.",
            ["feed"], namespace=NAMESPACE, registry=registry,
        )
        self.items_skipped = Counter(
            "ingest_items_skipped", "Entries not produced, by reason.", ["feed", "reason"],
            namespace=NAMESPACE, registry=registry,
        )
        self.items_flagged = Counter(
            "ingest_items_flagged", "Items produced changed on the way (truncated, repaired_text), by reason.",
            ["feed", "reason"], namespace=NAMESPACE, registry=registry,
        )
        self.parse_seconds = Histogram(
            "ingest_parse_duration_seconds", "Time of parsing one feed body, off the event loop (queueing included).",
            namespace=NAMESPACE, registry=registry, buckets=FETCH_BUCKETS,
        )
        self.fetch_seconds = Histogram(
            "ingest_fetch_duration_seconds", "Time of one fetch (redirects and body included).",
            ["outcome"], namespace=NAMESPACE, registry=registry, buckets=FETCH_BUCKETS,
        )
        self.last_success = Gauge(
            "ingest_last_success_timestamp_seconds", "Unix time of the feed's last successful poll.",
            ["feed"], namespace=NAMESPACE, registry=registry,
        )
        self.feed_failing = Gauge(
            "ingest_feed_failing", "1 while the feed has failed failing_after polls in a row.",
            ["feed"], namespace=NAMESPACE, registry=registry,
        )
        self.consecutive_failures = Gauge(
            "ingest_consecutive_failures", "Polls of the feed that failed in a row.",
            ["feed"], namespace=NAMESPACE, registry=registry,
        )


# --- framing shifts: aggregation, spikes, notifications ---------------------------------------

NOTIFY_OUTCOMES = ("delivered", "retried", "failed", "duplicate", "skipped_failing", "queued", "digest_delivered",
                   "digest_failed")


class TrendMetrics:
    """Counters the aggregator raises; the figures derived from its state come from
    :class:`~framewatch.processing.trends.collector.ShareOfVoiceCollector` at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "alerts", "Alerts raised, by watch, frame, rule and kind (spike, shift, drift, emergent).",
            ["watch", "frame", "rule", "kind"],
            namespace=NAMESPACE, registry=registry,
        )
        self.skipped = Counter(
            "aggregate_records_skipped", "Framed records not counted again, by reason (already_sealed: "
            "a re-delivery of a record its sealed day counts).", ["reason"], namespace=NAMESPACE, registry=registry,
        )


class NotifyMetrics:
    """Deliveries of the notifier; ``outcome`` comes from NOTIFY_OUTCOMES, ``channel`` is
    webhook, slack or email."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "notifications", "Notification attempts by channel and outcome.", ["channel", "outcome"],
            namespace=NAMESPACE, registry=registry,
        )
        self.subscriber_failing = Gauge(
            "subscriber_failing", "1 while a subscriber's deliveries keep failing.", ["subscriber"],
            namespace=NAMESPACE, registry=registry,
        )
        self.delivery_seconds = Histogram(
            "notification_duration_seconds", "Time to deliver one notification, retries included.",
            ["channel"], namespace=NAMESPACE, registry=registry, buckets=LATENCY_BUCKETS,
        )
        self.subscriptions = Gauge(
            "notify_subscriptions", "Subscriptions in use (the file overlaid with the API's topic).",
            namespace=NAMESPACE, registry=registry,
        )
        self.subscriptions_rejected = Gauge(
            "notify_subscriptions_rejected", "Subscriptions that cannot be used here (e.g. a secret's variable unset); the log says why.",
            namespace=NAMESPACE, registry=registry,
        )


class SinkMetrics:
    """What the sink wrote to the lake, by table, and what its compactor did."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter("sink_rows_written", "Rows written to the lake, by table.", ["table"],
                            namespace=NAMESPACE, registry=registry)
        self.files = Counter("sink_files_written", "Parquet files written by flushes, by table.", ["table"],
                             namespace=NAMESPACE, registry=registry)
        self.bytes = Counter("sink_bytes_written", "Bytes of Parquet written by flushes, by table.", ["table"],
                             namespace=NAMESPACE, registry=registry)
        self.flush_seconds = Histogram(
            "sink_flush_duration_seconds", "Time to write one flush window's files durably.",
            namespace=NAMESPACE, registry=registry, buckets=LATENCY_BUCKETS,
        )
        self.last_flush = Gauge("sink_last_flush_timestamp_seconds", "When the last non-empty window was written.",
                                namespace=NAMESPACE, registry=registry)
        self.compactions = Counter(
            "sink_compactions", "Folders compacted, by outcome (ok, failed: retried next round).", ["outcome"],
            namespace=NAMESPACE, registry=registry,
        )
        self.compacted_files = Counter("sink_compacted_files", "Small files replaced by compaction.",
                                       namespace=NAMESPACE, registry=registry)


class ProcessingMetrics:
    """The frame stage's own figures (items/s come from PipelineMetrics' consumed counter)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.embedding_seconds = Histogram(
            "embedding_duration_seconds", "Time of the one batched embedding call of a micro-batch.",
            namespace=NAMESPACE, registry=registry, buckets=LATENCY_BUCKETS,
        )
        self.segments = Counter(
            "processing_segments", "Segments by outcome (embedded, duplicate, redelivered).",
            ["outcome"], namespace=NAMESPACE, registry=registry,
        )
        self.items_skipped = Counter(
            "processing_items_skipped", "Raw items that got no framed record, by reason.",
            ["reason"], namespace=NAMESPACE, registry=registry,
        )

    def observe(self, report: object) -> None:
        """Record one batch's counts (a frame_stage.BatchReport)."""
        embedded = getattr(report, "embedded_texts", 0)
        if embedded:
            self.embedding_seconds.observe(getattr(report, "embed_seconds", 0.0))
        for outcome, n in getattr(report, "segments", {}).items():
            self.segments.labels(outcome).inc(n)
        for reason, n in getattr(report, "skipped", {}).items():
            self.items_skipped.labels(reason).inc(n)
