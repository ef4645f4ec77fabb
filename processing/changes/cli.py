"""``framewatch shifts``: replay shift and drift detection over the lake's history and print what would have alerted."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from framewatch.processing.changes.baseline import HOUR_S
from framewatch.processing.changes.detector import (
    SENSITIVITY_RATES,
    Change,
    ChangeConfig,
    ChangeDetector,
)
from framewatch.processing.changes.lake import LakeCounts, history_start, read_counts


def replay(counts: LakeCounts, start: datetime, end: datetime, cfg: ChangeConfig) -> list[Change]:
    """Every change the detectors would have raised hour by hour from *start* to *end*."""
    detector = ChangeDetector(cfg)
    found: list[Change] = []
    first = int(start.timestamp()) // HOUR_S * HOUR_S + HOUR_S
    for hour in range(first, int(end.timestamp()) + 1, HOUR_S):
        for watch in sorted(counts.frames):
            found += detector.evaluate(counts, watch, counts.frames[watch], hour)
    return found


def describe(ch: Change) -> str:
    """One line an analyst reads."""
    cp = datetime.fromtimestamp(ch.change_point_s, UTC).strftime("%Y-%m-%d %H:%M")
    seen = datetime.fromtimestamp(ch.detected_hour_s, UTC).strftime("%Y-%m-%d %H:%M")
    delay_h = (ch.detected_hour_s - ch.change_point_s) / 3600
    return (f"{ch.kind:<5} {ch.watch} / {ch.frame}: since {cp} UTC (seen {seen}, {delay_h:.1f} h later) "
            f"share {ch.share_before:.1%} -> {ch.share_after:.1%} [{ch.share_after_low:.1%}, {ch.share_after_high:.1%}] "
            f"({ch.count}/{ch.total} items; {ch.detector}, {ch.false_alarms_per_week:.3g} false alarms/week)")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@click.command("shifts")
@click.option("--from", "start", type=click.DateTime(), required=True, help="Start of the replay (UTC).")
@click.option("--to", "end", type=click.DateTime(), required=True, help="End of the replay (UTC).")
@click.option("--watch", default=None, help="Only this watch (default: every watch in the lake).")
@click.option("--sensitivity", type=click.Choice(sorted(SENSITIVITY_RATES)), default=None,
              help="low, medium or high (default FRAMEWATCH_ALERT_SENSITIVITY).")
def shifts(start: datetime, end: datetime, watch: str | None, sensitivity: str | None) -> None:
    """Replay shift and drift detection over the sink's Parquet history; print what would have alerted."""
    from framewatch.processing.sink.storage import open_storage
    from framewatch.service import load_settings

    settings = load_settings()
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise click.BadParameter("--to must be after --from")
    cfg = ChangeConfig(sensitivity=sensitivity or settings.alert_sensitivity, shift_lift=settings.shift_design_lift)
    counts = read_counts(open_storage(settings), history_start(start), end, watch)
    found = replay(counts, start, end, cfg)
    for ch in found:
        click.echo(describe(ch))
    click.echo(f"{len(found)} alerts ({cfg.sensitivity} sensitivity: {cfg.rate_per_week:.3g} false alarms a week "
               f"per watch, frame and detector) over {len(counts.frames)} watches")
