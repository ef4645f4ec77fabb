"""What each page shows, read in-process through the API's own read functions (never the whole lake)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from framewatch.contracts import ANY, BUCKETS
from framewatch.processing.serve import items as item_queries
from framewatch.processing.serve import reads
from framewatch.processing.serve.lake import AGGREGATES, FRAMED_ITEMS, ITEMS
from framewatch.processing.workbench import charts

if TYPE_CHECKING:
    from framewatch.processing.serve.app import ServeContext

RANGES = {"6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = {"5m": "6h", "1h": "24h", "1d": "30d"}
ALERTS_SHOWN = 10
LATEST_SHOWN = 3  # newest items per watch on the overview
CONTEXT_BEFORE = 24  # buckets of chart before an alert's window


@dataclass(frozen=True, slots=True)
class ChartQuery:
    """The overview's chart controls: bucket, time range, share or counts."""

    bucket: str = "1h"
    range: str = "24h"
    measure: str = "share"

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) of the range, ending after the running bucket."""
        end = now + timedelta(seconds=BUCKETS[self.bucket])
        return end - RANGES[self.range], end


def chart_query(bucket: str | None, range_: str | None, measure: str | None) -> ChartQuery:
    """Controls from a query string; unknown values fall back to the defaults."""
    b = bucket if bucket in BUCKETS else "1h"
    r = range_ if range_ in RANGES else DEFAULT_RANGE[b]
    return ChartQuery(b, r, measure if measure in ("share", "count") else "share")


def watch_ids(ctx: ServeContext) -> list[dict[str, Any]]:
    """Every watch with its frames (cached like the API's /watches)."""
    key = ctx.signature("watches", (AGGREGATES, None), (FRAMED_ITEMS, None))
    return list(ctx.cache.get(key, lambda: reads.watches(ctx.lake)).to_dicts())


def frames_of(ctx: ServeContext, watch: str) -> list[str]:
    """The frames a watch's aggregates and items show."""
    return next((list(w["frames"]) for w in watch_ids(ctx) if w["id"] == watch), [])


def alert_rows(ctx: ServeContext, watch: str | None, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    """Alerts detected in [start, end), newest first, as the API shows them."""
    frame = reads.alerts(ctx.lake, watch, start, end)
    return [reads.alert_record(r) for r in frame.to_dicts()] if frame.height else []


def watch_chart(ctx: ServeContext, watch: str, q: ChartQuery, now: datetime, *, width: int = charts.WIDTH) -> str:
    """The share-of-voice SVG of one watch over the query's range, with its alerts marked."""
    start, end = q.bounds(now)
    buckets = reads.series(ctx.lake, watch, q.bucket, start, end, frame=None, outlet=ANY, measure=q.measure, now=now)
    if not buckets:
        return charts.svg(charts.empty_spec(watch, width))
    marks = [a for a in alert_rows(ctx, watch, start - RANGES["24h"], None) if start <= a["window_start"] < end]
    return charts.svg(charts.share_spec(buckets, marks, bucket=q.bucket, measure=q.measure, title=watch, width=width))


def overview(ctx: ServeContext, q: ChartQuery) -> list[dict[str, Any]]:
    """Each watch: id, frames, chart SVG and its alerts in range."""
    now = ctx.now()
    start = q.bounds(now)[0]
    out = []
    for w in watch_ids(ctx):
        alerts = alert_rows(ctx, w["id"], start, None)
        latest = item_queries.listing(ctx.lake, item_queries.ItemQuery(watch=w["id"], start=start), ctx.cache)
        out.append({"id": w["id"], "frames": w["frames"], "chart": watch_chart(ctx, w["id"], q, now), "alerts": alerts,
                    "items": [{**r, "passages": [], "other_passages": [], "term": None, "quotes": []}
                              for r in latest.head(LATEST_SHOWN).to_dicts()]})
    return out


def frame_now_vs_baseline(ctx: ServeContext, watch: str, now: datetime) -> list[dict[str, Any]]:
    """Each frame's share in the latest hourly bucket against its mean share over the day before."""
    buckets = reads.series(ctx.lake, watch, "1h", now - timedelta(hours=25), now + timedelta(hours=1), frame=None,
                           outlet=ANY, measure="share", now=now)
    if not buckets:
        return []
    latest, before = buckets[-1], buckets[:-1]
    frames = sorted({f for b in buckets for f in b["values"]})
    rows = []
    for f in frames:
        base = sum(b["values"].get(f, 0.0) for b in before) / len(before) if before else None
        share = latest["values"].get(f, 0.0)
        rows.append({"frame": f, "share": share, "baseline": base, "delta": None if base is None else share - base,
                     "complete": latest["complete"], "bucket": latest["start"]})
    return rows


def alert_context(ctx: ServeContext, alert: dict[str, Any]) -> dict[str, Any]:
    """The chart around an alert (its watch, buckets before and after its window) and the items in its window."""
    now = ctx.now()
    span = alert["window_end"] - alert["window_start"]
    bucket = "5m" if span < timedelta(hours=1) else "1h"
    size = timedelta(seconds=BUCKETS[bucket])
    start, end = alert["window_start"] - CONTEXT_BEFORE * size, min(alert["window_end"] + 12 * size, now + size)
    buckets = reads.series(ctx.lake, alert["watch_id"], bucket, start, end, frame=None, outlet=ANY, measure="share", now=now)
    if not buckets and bucket == "5m":  # no 5-minute aggregates kept: fall back to hours
        bucket, size = "1h", timedelta(hours=1)
        start, end = alert["window_start"] - CONTEXT_BEFORE * size, min(alert["window_end"] + 12 * size, now + size)
        buckets = reads.series(ctx.lake, alert["watch_id"], bucket, start, end, frame=None, outlet=ANY,
                               measure="share", now=now)
    title = f"{alert['watch_id']} around the alert"
    spec = (charts.share_spec(buckets, [alert], bucket=bucket, measure="share", title=title) if buckets
            else charts.empty_spec(title))
    query = item_queries.ItemQuery(watch=alert["watch_id"], frame=alert["frame"], start=alert["window_start"],
                                   end=alert["window_end"])
    return {"chart": charts.svg(spec), "spec": spec, "query": query}


def alert_png(ctx: ServeContext, alert: dict[str, Any]) -> bytes:
    """PNG of the chart around an alert, for messages."""
    return charts.png(alert_context(ctx, alert)["spec"])


def segments_of(ctx: ServeContext, keys: list[str], watch: str | None) -> dict[str, list[dict[str, Any]]]:
    """Segments of the listed items only (a page of keys, its watch's partitions)."""
    if not keys:
        return {}
    lf = ctx.lake.scan(FRAMED_ITEMS, watch=watch)
    if lf is None:
        return {}
    found = lf.filter(pl.col("key").is_in(keys)).select("key", "segments").collect()
    return {r["key"]: list(r["segments"] or []) for r in found.to_dicts()}


def quotes_of(ctx: ServeContext, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Quotes of the listed items (raw items of the page's publication days only), by item id."""
    if not rows:
        return {}
    days = [r["published_at"].replace(hour=0, minute=0, second=0, microsecond=0) for r in rows]
    lf = ctx.lake.scan(ITEMS, start=min(days), end=max(days) + timedelta(days=1))
    if lf is None:
        return {}
    found = lf.filter(pl.col("item_id").is_in([r["item_id"] for r in rows])).select("item_id", "quotes").collect()
    return {r["item_id"]: list(r["quotes"] or []) for r in found.to_dicts()}
