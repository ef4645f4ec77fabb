"""A fixture lake written with polars exactly as docs/read-model.md describes the sink's files.

Three watches (one with ``:`` in its id, so its partition folder is percent-encoded), items over
today, yesterday and last week, three outlets, folded duplicates, one key re-delivered in two
files (an older offset with another title, and an identical copy in a compacted file), aggregate
rows from two framed-items partitions, alerts with evidence, raw items with quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

DT = pl.Datetime("us", "UTC")
SEGMENT = pl.Struct({
    "index": pl.Int64, "text": pl.String, "text_hash": pl.String, "frame": pl.String, "score": pl.Float64,
    "margin": pl.Float64, "labels": pl.List(pl.String), "top": pl.List(pl.Struct({"frame": pl.String, "score": pl.Float64})),
    "nearest_examples": pl.List(pl.String), "duplicate_of": pl.String, "cluster": pl.String, "flags": pl.List(pl.String),
})
FRAMED_SCHEMA = {
    "_partition": pl.Int32, "_offset": pl.Int64, "_written_at": DT, "key": pl.String, "item_id": pl.String,
    "watch_id": pl.String, "source_id": pl.String, "kind": pl.String, "published_at": DT, "processed_at": DT,
    "frame": pl.String, "frame_shares": pl.List(pl.Struct({"frame": pl.String, "share": pl.Float64})),
    "segments": pl.List(SEGMENT), "codebook_version": pl.String, "model_id": pl.String, "method": pl.String,
    "url": pl.String, "title": pl.String, "outlet": pl.String, "duplicate_of": pl.String, "schema_version": pl.Int64,
}
AGG_SCHEMA = {
    "_partition": pl.Int32, "_offset": pl.Int64, "_written_at": DT, "key": pl.String, "watch_id": pl.String,
    "frame": pl.String, "granularity": pl.String, "bucket_start": DT, "outlet": pl.String, "partition": pl.Int64,
    "items": pl.Int64, "segments": pl.Int64, "schema_version": pl.Int64,
}
ALERT_ITEM = pl.Struct({"title": pl.String, "url": pl.String, "outlet": pl.String, "passage": pl.String, "published_at": DT})
ALERT_SCHEMA = {
    "_partition": pl.Int32, "_offset": pl.Int64, "_written_at": DT, "key": pl.String, "watch_id": pl.String,
    "frame": pl.String, "rule": pl.String, "window_start": DT, "window_end": DT, "baseline_share": pl.Float64,
    "observed_share": pl.Float64, "observed_count": pl.Int64, "window_items": pl.Int64, "score": pl.Float64,
    "detected_at": DT, "top_items": pl.List(ALERT_ITEM), "schema_version": pl.Int64,
}
QUOTE = pl.Struct({"text": pl.String, "author": pl.String, "source_post": pl.String, "origin": pl.String})
ITEMS_SCHEMA = {
    "_partition": pl.Int32, "_offset": pl.Int64, "_written_at": DT, "item_id": pl.String, "source_id": pl.String,
    "feed_url": pl.String, "kind": pl.String, "url": pl.String, "title": pl.String, "author": pl.String,
    "published_at": DT, "fetched_at": DT, "text": pl.String, "quotes": pl.List(QUOTE), "outlet": pl.String,
    "schema_version": pl.Int64,
}
WATCHES = ("china-scs", "climate", "odd:watch")
FRAMES = ("surveillance", "trade", "military")
OUTLETS = ("a.example", "b.example", "c.example")


def write(root: Path, table: str, rows: list[dict[str, Any]], schema: dict[str, Any], day_of: str, name: str) -> None:
    """Write *rows* into their date=/watch= partitions, one file *name* per partition."""
    frame = pl.DataFrame(rows, schema=schema)
    day_col = pl.col(day_of).dt.strftime("%Y-%m-%d").alias("_day")
    watch_col = (pl.col("watch_id") if "watch_id" in schema else pl.lit("_all")).alias("_watch")
    for (day, watch), part in frame.with_columns(day_col, watch_col).group_by("_day", "_watch"):
        folder = root / table / f"date={day}" / f"watch={quote(str(watch), safe='')}"
        folder.mkdir(parents=True, exist_ok=True)
        part.drop("_day", "_watch").write_parquet(folder / name)


def segment(index: int, text: str, frame: str | None, cluster: str | None = None, margin: float = 0.2) -> dict[str, Any]:
    """One segment row."""
    return {"index": index, "text": text, "text_hash": f"h{abs(hash(text)) % 10**8}", "frame": frame, "score": 0.7,
            "margin": margin, "labels": [], "top": [{"frame": frame or "trade", "score": 0.7}],
            "nearest_examples": [f"example of {frame}"], "duplicate_of": None, "cluster": cluster, "flags": []}


@dataclass
class Lake:
    """What the fixture wrote, for the tests to compare against."""

    root: Path
    now: datetime
    framed: list[dict[str, Any]] = field(default_factory=list)
    agg_counts: dict[tuple[str, datetime, str], int] = field(default_factory=dict)  # (watch, bucket, frame) -> items


def framed_row(n: int, watch: str, published: datetime, offset: int, *, dup_of: str | None = None,
               title: str | None = None, text: str = "", cluster: str | None = None) -> dict[str, Any]:
    """One framed item; frame and outlet cycle with *n*."""
    frame = FRAMES[n % 3]
    item_id = f"item{n:03d}"
    segs = [segment(0, text or f"passage {n} about {frame}", frame, cluster), segment(1, f"second passage {n}", frame, margin=0.01 * (n % 17))]
    return {
        "_partition": n % 2, "_offset": offset, "_written_at": published, "key": f"{watch}:{item_id}",
        "item_id": item_id, "watch_id": watch, "source_id": "src", "kind": "article", "published_at": published,
        "processed_at": published + timedelta(minutes=1), "frame": frame,
        "frame_shares": [{"frame": frame, "share": 1.0}], "segments": segs, "codebook_version": "cb0123456789",
        "model_id": "fake-model", "method": "zero-shot", "url": f"https://{OUTLETS[n % 3]}/{item_id}",
        "title": title or f"Title {n}", "outlet": OUTLETS[n % 3], "duplicate_of": dup_of, "schema_version": 1,
    }


def build(root: Path, now: datetime | None = None) -> Lake:
    """Write the fixture lake under *root*."""
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) + timedelta(minutes=30)
    lake = Lake(root, now)
    rows: list[dict[str, Any]] = []
    for n in range(40):
        watch = WATCHES[0] if n < 30 else WATCHES[1 + n % 2]
        published = now - timedelta(hours=n * 1.5)
        dup = "item001" if n in (4, 7, 10) and watch == WATCHES[0] else None
        text = "The Zanzibar channel surveillance" if n == 12 else ""
        cluster = f"emergent:{1 + n % 2}" if n % 5 == 0 else None
        rows.append(framed_row(n, watch, published, 100 + n, dup_of=dup, text=text, cluster=cluster))
    lake.framed = rows
    write(root, "framed_items", rows[:20], FRAMED_SCHEMA, "published_at", "b-0-000000000100-000000000119.parquet")
    write(root, "framed_items", rows[20:], FRAMED_SCHEMA, "published_at", "b-1-000000000120-000000000139.parquet")
    # item002 delivered earlier with another title (lower offset: loses), and again identically (a compaction)
    stale = framed_row(2, WATCHES[0], rows[2]["published_at"], 5, title="stale title")
    write(root, "framed_items", [stale], FRAMED_SCHEMA, "published_at", "b-0-000000000005-000000000005.parquet")
    write(root, "framed_items", [rows[2]], FRAMED_SCHEMA, "published_at", "c-00000000000000aa.parquet")
    write_aggregates(lake, now, hours=6, offset0=1000, name="b-0-000000001000-000000001999.parquet")
    write_alerts(root, now)
    write_raw(root, rows[:3])
    return lake


def aggregate_rows(lake: Lake, watch: str, starts: list[datetime], offset0: int, scale: int = 1) -> list[dict[str, Any]]:
    """Hourly rows of *watch* from two framed-items partitions; records expected totals in *lake*."""
    out = []
    offset = offset0
    for b, start in enumerate(starts):
        for part in (0, 1):
            counts = {f: scale * (1 + (b + i + part) % 4) for i, f in enumerate(FRAMES)}
            for frame, items in [*counts.items(), ("*", sum(counts.values()))]:
                key = "|".join((watch, "1h", start.isoformat().replace("+00:00", "Z"), frame, "*", f"p{part}"))
                out.append({"_partition": 0, "_offset": offset, "_written_at": start, "key": key, "watch_id": watch,
                            "frame": frame, "granularity": "1h", "bucket_start": start, "outlet": "*",
                            "partition": part, "items": items, "segments": 2 * items, "schema_version": 1})
                offset += 1
    totals: dict[tuple[str, datetime, str], int] = {}
    for row in out:
        k = (watch, row["bucket_start"], row["frame"])
        totals[k] = totals.get(k, 0) + row["items"]
    lake.agg_counts.update(totals)
    return out


def write_aggregates(lake: Lake, now: datetime, hours: int, offset0: int, name: str) -> None:
    """The last *hours* hourly buckets of china-scs (the newest one still running), plus a stale
    earlier value of one key that must lose, and last week's buckets."""
    current = now.replace(minute=0)
    starts = [current - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    rows = aggregate_rows(lake, WATCHES[0], starts, offset0)
    stale = {**rows[0], "_offset": 1, "items": 999}
    week = [current - timedelta(days=8, hours=h) for h in range(3)]
    rows += aggregate_rows(lake, WATCHES[0], week, offset0 + 10_000)
    write(lake.root, "aggregates", rows, AGG_SCHEMA, "bucket_start", name)
    write(lake.root, "aggregates", [stale], AGG_SCHEMA, "bucket_start", "b-0-000000000001-000000000001.parquet")


def write_alerts(root: Path, now: datetime) -> None:
    """Three alerts of china-scs (today, yesterday, last week) and one of climate."""
    rows = []
    for i, (watch, ago) in enumerate([(WATCHES[0], 1), (WATCHES[0], 25), (WATCHES[0], 24 * 8), (WATCHES[1], 2)]):
        start = now - timedelta(hours=ago + 1)
        key = f"{watch}:surveillance:{start.isoformat().replace('+00:00', 'Z')}"
        rows.append({"_partition": 0, "_offset": i, "_written_at": now, "key": key, "watch_id": watch,
                     "frame": "surveillance", "rule": "share_spike", "window_start": start,
                     "window_end": start + timedelta(hours=1), "baseline_share": 0.1, "observed_share": 0.4,
                     "observed_count": 12, "window_items": 30, "score": 5.0 + i, "detected_at": now - timedelta(hours=ago),
                     "top_items": [{"title": f"evidence {i}", "url": "https://a.example/x", "outlet": "a.example",
                                    "passage": "watching everyone", "published_at": start}], "schema_version": 1})
    write(root, "alerts", rows, ALERT_SCHEMA, "detected_at", "b-0-000000000000-000000000003.parquet")


def write_raw(root: Path, framed: list[dict[str, Any]]) -> None:
    """Raw items of some framed items, with quotes."""
    rows = [{"_partition": 0, "_offset": i, "_written_at": r["published_at"], "item_id": r["item_id"], "source_id": "src",
             "feed_url": "https://a.example/feed", "kind": "article", "url": r["url"], "title": r["title"], "author": None,
             "published_at": r["published_at"], "fetched_at": r["published_at"], "text": "text",
             "quotes": [{"text": f"quoted words {i}", "author": "someone", "source_post": None, "origin": "markup"}],
             "outlet": r["outlet"], "schema_version": 1} for i, r in enumerate(framed)]
    write(root, "items", rows, ITEMS_SCHEMA, "published_at", "b-0-000000000000-000000000002.parquet")
