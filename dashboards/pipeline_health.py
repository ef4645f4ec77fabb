"""*Pipeline health*: is every stage fetching, consuming, keeping up and staying up."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from framewatch.dashboards.panels import (
    base,
    label_variable,
    query,
    single_stat,
    time_series,
)

UID = "framewatch-pipeline-health"
SLUG = "pipeline-health"
COMPONENT = 'component=~"$component"'
RATE = "[$__rate_interval]"


def _p95(bucket: str, by: str) -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({bucket}{RATE})))"


def build() -> Dashboard:
    """The Pipeline health dashboard."""
    return (
        base(
            "framewatch / Pipeline health",
            UID,
            ["operations"],
            "Fetch outcomes per feed, records per stage, consumer lag, dead letters, latencies and component liveness.",
        )
        .with_variable(label_variable("component", "Component", "framewatch_component_up", multi=True))
        .with_row(Row("Liveness"))
        .with_panel(
            single_stat(
                "Components up",
                "1 when the component reports itself up.",
                [query(f"framewatch_component_up{{{COMPONENT}}}", "{{component}}")],
                width=12,
            )
        )
        .with_panel(
            single_stat(
                "Scrape targets up",
                "Prometheus' own view: framewatch targets it could scrape.",
                [query('sum(up{job=~".*framewatch.*"})', "up"), query('count(up{job=~".*framewatch.*"})', "targets")],
                width=6,
            )
        )
        .with_panel(
            single_stat(
                "Failing feeds",
                "Feeds past the consecutive-failure threshold.",
                [query("sum(framewatch_ingest_feed_failing)", "failing")],
                width=6,
            )
        )
        .with_row(Row("Ingest"))
        .with_panel(
            time_series(
                "Fetches per second by feed and outcome",
                "Feed fetches by outcome (ok, not_modified, and the failure reasons).",
                [query(f"sum by (feed, outcome) (rate(framewatch_ingest_fetches_total{RATE}))", "{{feed}} {{outcome}}")],
                unit="reqps",
            )
        )
        .with_panel(
            time_series(
                "Seconds since last successful fetch",
                "Per feed; a rising line is a feed that stopped answering.",
                [query("time() - framewatch_ingest_last_success_timestamp_seconds", "{{feed}}")],
                unit="s",
            )
        )
        .with_panel(
            time_series(
                "Fetch latency p95 by outcome",
                "95th percentile of whole-fetch duration.",
                [query(_p95("framewatch_ingest_fetch_duration_seconds_bucket", "outcome"), "{{outcome}}")],
                unit="s",
            )
        )
        .with_panel(
            time_series(
                "Items produced per second by feed",
                "New items ingest wrote to Kafka.",
                [query(f"sum by (feed) (rate(framewatch_ingest_items_produced_total{RATE}))", "{{feed}}")],
                unit="ops",
            )
        )
        .with_row(Row("Stages"))
        .with_panel(
            time_series(
                "Records per second per stage",
                "Records each stage consumed and produced; a gap between them is filtering or loss.",
                [
                    query(f"sum(rate(framewatch_ingest_items_produced_total{RATE}))", "ingest produced"),
                    query(
                        f"sum by (component) (rate(framewatch_consumed_records_total{{{COMPONENT}}}{RATE}))",
                        "{{component}} consumed",
                    ),
                    query(
                        f"sum by (component) (rate(framewatch_produced_records_total{{{COMPONENT}}}{RATE}))",
                        "{{component}} produced",
                    ),
                ],
                unit="ops",
            )
        )
        .with_panel(
            time_series(
                "Consumer lag",
                "Records behind the end of each topic, per consumer component.",
                [query(f"sum by (component, topic) (framewatch_consumer_lag{{{COMPONENT}}})", "{{component}} {{topic}}")],
            )
        )
        .with_panel(
            time_series(
                "Dead letters per second",
                "Records sent to the dead-letter topic, by reason.",
                [
                    query(
                        f"sum by (component, reason) (rate(framewatch_dead_letters_total{{{COMPONENT}}}{RATE}))",
                        "{{component}} {{reason}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_panel(
            time_series(
                "Errors per second",
                "Errors by component and reason.",
                [
                    query(
                        f"sum by (component, reason) (rate(framewatch_errors_total{{{COMPONENT}}}{RATE}))",
                        "{{component}} {{reason}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_panel(
            time_series(
                "Batch duration p95",
                "95th percentile of one micro-batch's handling time, per component.",
                [query(_p95(f"framewatch_batch_duration_seconds_bucket{{{COMPONENT}}}", "component"), "{{component}}")],
                unit="s",
            )
        )
        .with_panel(
            time_series(
                "Embedding latency",
                "Median and 95th percentile of one embedding call.",
                [
                    query(
                        f"histogram_quantile(0.5, sum by (le) (rate(framewatch_embedding_duration_seconds_bucket{RATE})))",
                        "p50",
                    ),
                    query(
                        f"histogram_quantile(0.95, sum by (le) (rate(framewatch_embedding_duration_seconds_bucket{RATE})))",
                        "p95",
                    ),
                ],
                unit="s",
            )
        )
    )
