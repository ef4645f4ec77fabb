"""*Watch drill-down*: one framing of one watch, by outlet and against its baseline."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from framewatch.dashboards.panels import (
    base,
    label_variable,
    query,
    single_stat,
    time_series,
    window_variable,
)

UID = "framewatch-watch-drilldown"
SLUG = "watch-drilldown"
WATCH = 'watch="$watch"'
FRAME = 'watch="$watch",frame="$frame"'
# See framing_overview.ALL_OUTLETS: the whole watch, whether or not outlets are configured.
ALL_OUTLETS = 'outlet=~"all|"'
ITEMS_PER_MIN = "sum(rate(framewatch_framed_items_total{{{sel}}}[$__rate_interval])) * 60"


def build() -> Dashboard:
    """The Watch drill-down dashboard."""
    return (
        base(
            "framewatch / Watch drill-down",
            UID,
            ["framing"],
            "One framing of one watch: its share against its baseline, its volume, and its share per outlet.",
        )
        .with_variable(label_variable("watch", "Watch", "framewatch_share_of_voice"))
        .with_variable(label_variable("frame", "Framing", 'framewatch_share_of_voice{watch="$watch"}'))
        .with_variable(window_variable())
        .with_row(Row("$frame in $watch"))
        .with_panel(
            time_series(
                "Share of voice against baseline",
                "The framing's share over the chosen window, and the baseline share spikes are measured from.",
                [
                    query(f'framewatch_share_of_voice{{{FRAME},window="$window",{ALL_OUTLETS}}}', "share ($window)"),
                    query(f"framewatch_frame_baseline_share{{{FRAME}}}", "baseline"),
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            time_series(
                "Volume against baseline",
                "Items per minute carrying this framing, and the volume its baseline share of the watch's whole volume would give.",
                [
                    query(ITEMS_PER_MIN.format(sel=FRAME), "items/min"),
                    query(
                        f"sum(framewatch_frame_baseline_share{{{FRAME}}}) * scalar({ITEMS_PER_MIN.format(sel=WATCH)})",
                        "expected at baseline",
                    ),
                ],
            )
        )
        .with_panel(
            time_series(
                "Share by outlet",
                "Share of each outlet's items carrying this framing, over the chosen window "
                "(only where outlets are configured).",
                [
                    query(
                        f'framewatch_share_of_voice{{{FRAME},window="$window",outlet!~"all|"}}',
                        "{{outlet}}",
                    ),
                ],
                unit="percentunit",
                width=24,
            )
        )
        .with_panel(
            time_series(
                "Spike score",
                "How far the framing's share is above its baseline.",
                [query(f"framewatch_spike_score{{{FRAME}}}", "spike score")],
                width=18,
            )
        )
        .with_panel(
            single_stat(
                "Alerts in range by rule",
                "Alerts fired for this framing in the dashboard's time range, per rule.",
                [
                    query(
                        f"sum by (rule) (increase(framewatch_alerts_total{{{FRAME}}}[$__range]))",
                        "{{rule}}",
                        instant=True,
                    )
                ],
                width=6,
                height=8,
            )
        )
    )
