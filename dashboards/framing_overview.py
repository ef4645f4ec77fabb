"""*Framing overview*: how one watch's coverage divides between its framings, over time."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from framewatch.dashboards.panels import (
    annotation,
    bar_gauge,
    base,
    label_variable,
    query,
    single_stat,
    time_series,
    window_variable,
)

UID = "framewatch-framing-overview"
SLUG = "framing-overview"
WATCH = 'watch="$watch"'
# With outlets configured the share gauge also carries outlet (outlet="all" is the whole watch);
# without, it has no outlet label, which the empty alternative matches.
ALL_OUTLETS = 'outlet=~"all|"'


def alerts_of(kinds: str) -> str:
    """Where the watch raised alerts of *kinds* (a regex of Alert.kind values). A counter's series
    is born at 1 with its first alert, which increase() cannot see: the second term marks it."""
    series = f'framewatch_alerts_total{{{WATCH},kind=~"{kinds}"}}'
    by = "sum by (frame, rule, kind)"
    return f"({by} (increase({series}[$__interval])) > 0) or ({by} ({series}) unless {by} ({series} offset $__interval))"


def build() -> Dashboard:
    """The Framing overview dashboard."""
    return (
        base(
            "framewatch / Framing overview",
            UID,
            ["framing"],
            "Share of voice per framing for one watch, item volume, spike scores, alerts and emergent framings.",
        )
        .with_variable(label_variable("watch", "Watch", "framewatch_share_of_voice"))
        .with_variable(window_variable())
        # one marker series per kind of change: spikes (and emergent framings), shifts, drifts
        .annotation(annotation("Spikes", alerts_of("spike|emergent"), "red"))
        .annotation(annotation("Shifts", alerts_of("shift"), "orange"))
        .annotation(annotation("Drifts", alerts_of("drift"), "purple"))
        .with_row(Row("Framing"))
        .with_panel(
            time_series(
                "Share of voice by framing",
                "Fraction of the watch's items carrying each framing, over the chosen window; stacked, so the bands add up to the whole.",
                [query(f'framewatch_share_of_voice{{{WATCH},window="$window",{ALL_OUTLETS}}}', "{{frame}}")],
                unit="percentunit",
                stacked=True,
                width=24,
                height=10,
            )
        )
        .with_panel(
            time_series(
                "Framed items per minute by framing",
                "Volume behind the shares: items framed per minute, per framing.",
                [
                    query(
                        f"sum by (frame) (rate(framewatch_framed_items_total{{{WATCH}}}[$__rate_interval])) * 60",
                        "{{frame}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            time_series(
                "Spike score by framing",
                "How far each framing's share is above its baseline; alerts fire above the rule's threshold.",
                [query(f"framewatch_spike_score{{{WATCH}}}", "{{frame}}")],
            )
        )
        .with_row(Row("Alerts and emergent framings"))
        .with_panel(
            single_stat(
                "Alerts in range",
                "Alerts fired for this watch in the dashboard's time range.",
                [query(f"sum(increase(framewatch_alerts_total{{{WATCH}}}[$__range]))", "alerts", instant=True)],
                width=6,
                height=8,
            )
        )
        .with_panel(
            single_stat(
                "Emergent framings",
                "Clusters of items that fit no codebook framing well: candidates for a new framing.",
                [query(f"framewatch_emergent_frames{{{WATCH}}}", "emergent")],
                width=6,
                height=8,
            )
        )
        .with_panel(
            bar_gauge(
                "Emergent framing sizes",
                "Items in each emergent framing (largest first).",
                [query(f"sort_desc(framewatch_emergent_frame_size{{{WATCH}}})", "{{frame}}", instant=True)],
                width=12,
                height=8,
            )
        )
    )
