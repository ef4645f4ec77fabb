"""Every framewatch metric, declared in one place under the ``framewatch`` namespace.

Each component builds its metric group on a registry it is given, so tests use a fresh
``CollectorRegistry`` and read values back with ``registry.get_sample_value``. Label values come
from fixed sets (outcome and reason names, watch and frame ids from the codebook): never an item
id or URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from framewatch.contracts import DECODE_REASONS

NAMESPACE = "framewatch"

# Errors a consumer loop survives or reports before it stops (``errors_total{reason}``).
PIPELINE_ERROR_REASONS = ("kafka_error", "commit_failed")

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

SHARE_WINDOWS = {"5m": 300, "1h": 3600, "1d": 86400}
NOTIFY_OUTCOMES = ("delivered", "retried", "failed", "duplicate", "skipped_failing")


class FramingMetrics:
    """Counters the aggregator raises; the figures derived from its state come from
    :class:`FramingCollector` at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "alerts", "Alerts raised, by watch, frame and rule.", ["watch", "frame", "rule"],
            namespace=NAMESPACE, registry=registry,
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


class FramingCollector:
    """Share of voice, framed items, spike scores and emergent framings, computed at scrape time.

    ``counts`` returns the aggregator's merged counts as a polars frame with columns watch,
    outlet, granularity, bucket (epoch s), frame (``*`` = watch total), items; ``scores``
    returns (watch, frame) -> (score, baseline share) of the latest evaluation. With several
    aggregator instances, ``counts`` is the merged view (every instance reports whole-watch
    shares: aggregate with max) and ``own_counts`` this instance's partitions, which
    ``framed_items_total`` counts (sum over instances). Emergent
    framings are capped to the ``max_emergent`` largest per watch to keep labels bounded; the
    outlet label appears only when ``by_outlet``.
    """

    def __init__(
        self,
        counts: Callable[[], Any],
        scores: Callable[[], Mapping[tuple[str, str], tuple[float, float]]],
        clock: Callable[[], float] = time.time,
        max_emergent: int = 20,
        by_outlet: bool = False,
        own_counts: Callable[[], Any] | None = None,
    ) -> None:
        self._counts = counts
        self._own_counts = own_counts or counts
        self._scores = scores
        self._clock = clock
        self._max_emergent = max_emergent
        self._by_outlet = by_outlet

    def describe(self) -> list[Metric]:
        """Families without samples, so registering does not compute anything."""
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        """Compute every family from the current state."""
        import polars as pl

        fam = self._families()
        df = self._counts()
        now = int(self._clock())
        if df.height:
            five = df.filter(pl.col("granularity") == "5m")
            emergent = self._emergent(five, now)
            allowed = set(emergent.select(["watch", "frame"]).iter_rows())

            def keep(watch: str, frame: str) -> bool:
                return not frame.startswith("emergent:") or (watch, frame) in allowed

            outlets = ["*"]
            if self._by_outlet:
                outlets += sorted(set(five.get_column("outlet").to_list()) - {"*"})
            own = self._own_counts() if self._own_counts is not self._counts else df
            totals = (
                own.filter((pl.col("granularity") == "1d") & (pl.col("frame") != "*"))
                .group_by(["watch", "frame", "outlet"]).agg(pl.col("items").sum())
                .sort(["watch", "frame", "outlet"])
            )
            for watch, frame, outlet, items in totals.iter_rows():
                if not keep(watch, frame):
                    continue
                if self._by_outlet and outlet != "*":
                    fam["items"].add_metric([watch, frame, outlet], items)
                elif not self._by_outlet and outlet == "*":
                    fam["items"].add_metric([watch, frame], items)
            for window, seconds in SHARE_WINDOWS.items():
                for outlet in outlets:
                    for watch, frame, share in _window_shares(five, now, seconds, outlet).iter_rows():
                        if keep(watch, frame):
                            labels = [watch, frame, window] + (["all" if outlet == "*" else outlet] if self._by_outlet else [])
                            fam["share"].add_metric(labels, share)
            for watch, n in emergent.group_by("watch").agg(pl.len()).sort("watch").iter_rows():
                fam["emergent"].add_metric([watch], n)
            for watch, frame, items in emergent.sort(["watch", "frame"]).iter_rows():
                fam["emergent_size"].add_metric([watch, frame], items)
            for (watch, frame), (score, base) in sorted(self._scores().items()):
                if keep(watch, frame):
                    fam["score"].add_metric([watch, frame], score)
                    fam["baseline"].add_metric([watch, frame], base)
        yield from fam.values()

    def _families(self) -> dict[str, Any]:
        outlet = ["outlet"] if self._by_outlet else []
        return {
            "items": CounterMetricFamily(
                f"{NAMESPACE}_framed_items", "Framed items by watch and primary frame (distinct keys).",
                labels=["watch", "frame", *outlet]),
            "share": GaugeMetricFamily(
                f"{NAMESPACE}_share_of_voice", "Share of a watch's items framed so, over the trailing window.",
                labels=["watch", "frame", "window", *outlet]),
            "score": GaugeMetricFamily(
                f"{NAMESPACE}_spike_score", "Spike score (z) of the frame in the current 1 h window.",
                labels=["watch", "frame"]),
            "baseline": GaugeMetricFamily(
                f"{NAMESPACE}_frame_baseline_share", "EWMA baseline share the spike score compares with.",
                labels=["watch", "frame"]),
            "emergent": GaugeMetricFamily(
                f"{NAMESPACE}_emergent_frames", "Emergent framings with items in the last day.",
                labels=["watch"]),
            "emergent_size": GaugeMetricFamily(
                f"{NAMESPACE}_emergent_frame_size", "Items of an emergent framing in the last day.",
                labels=["watch", "frame"]),
        }

    def _emergent(self, five: Any, now: int) -> Any:
        import polars as pl

        return (
            five.filter(
                pl.col("frame").str.starts_with("emergent:") & (pl.col("outlet") == "*")
                & (pl.col("bucket") >= now - 86400) & (pl.col("bucket") < now)
            )
            .group_by(["watch", "frame"]).agg(pl.col("items").sum())
            .filter(pl.col("items") > 0)
            .sort(["watch", "items", "frame"], descending=[False, True, False])
            .group_by("watch", maintain_order=True).head(self._max_emergent)
        )


def _window_shares(five: Any, now: int, seconds: int, outlet: str) -> Any:
    import polars as pl

    first = -(-(now - seconds) // 300) * 300
    summed = (
        five.filter((pl.col("outlet") == outlet) & (pl.col("bucket") >= first) & (pl.col("bucket") <= now))
        .group_by(["watch", "frame"]).agg(pl.col("items").sum())
    )
    totals = summed.filter(pl.col("frame") == "*").select(["watch", pl.col("items").alias("total")])
    return (
        summed.filter(pl.col("frame") != "*").join(totals, on="watch", how="left")
        .select(["watch", "frame", (pl.col("items") / pl.col("total")).fill_null(0.0).fill_nan(0.0).alias("share")])
        .sort(["watch", "frame"])
    )


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
