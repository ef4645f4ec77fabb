"""Every framewatch metric, declared in one place under the ``framewatch`` namespace.

Each component builds its metric group on a registry it is given, so tests use a fresh
``CollectorRegistry`` and read values back with ``registry.get_sample_value``. Label values come
from fixed sets (outcome and reason names, watch and frame ids from the codebook): never an item
id or URL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "framewatch"

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
