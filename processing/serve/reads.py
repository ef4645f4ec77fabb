"""Read queries other than items: watches, share-of-voice series, alerts, emergent clusters.

Series come from the aggregates table: a bucket's count of a frame is the sum over framed-items
partitions of the latest row per aggregate key, and its share is that count over the watch's
total (frame ``*``) in the same bucket. Buckets are publication time, so a back-fill of last
week's items changes last week's buckets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from framewatch.contracts import ANY, BUCKETS
from framewatch.processing.serve.lake import AGGREGATES, ALERTS, FRAMED_ITEMS, Lake

SAMPLES = 3  # passages shown per emergent cluster


def watches(lake: Lake) -> pl.DataFrame:
    """Every watch (``id``) with the frames (``frames``) its aggregates and items show; distinct
    values only, so no per-key rule is needed."""
    found = [lf.select("watch_id", "frame").unique() for table in (AGGREGATES, FRAMED_ITEMS)
             if (lf := lake.scan(table, latest=False)) is not None]
    if not found:
        return pl.DataFrame(schema={"id": pl.String, "frames": pl.List(pl.String)})
    pairs = pl.concat(found).unique().collect()
    frames = (pairs.filter(pl.col("frame").is_not_null() & (pl.col("frame") != ANY))
              .group_by("watch_id").agg(pl.col("frame").unique().sort()))
    joined = pairs.select("watch_id").unique().join(frames, on="watch_id", how="left").sort("watch_id")
    return joined.select(pl.col("watch_id").alias("id"), pl.col("frame").fill_null([]).alias("frames"))


def series(lake: Lake, watch: str, bucket: str, start: datetime, end: datetime, *, frame: str | None,
           outlet: str, measure: str, now: datetime) -> list[dict[str, Any]]:
    """Buckets of [start, end) oldest first: total, per-frame share or count, and completeness."""
    lf = lake.scan(AGGREGATES, watch=watch, start=start, end=end)
    if lf is None:
        return []
    lf = lf.filter((pl.col("watch_id") == watch) & (pl.col("granularity") == bucket) & (pl.col("outlet") == outlet)
                   & (pl.col("bucket_start") >= start) & (pl.col("bucket_start") < end))
    if frame is not None:
        lf = lf.filter(pl.col("frame").is_in([frame, ANY]))
    sums = lf.group_by("bucket_start", "frame").agg(pl.col("items").sum()).collect()
    size = timedelta(seconds=BUCKETS[bucket])
    by_bucket: dict[datetime, dict[str, int]] = {}
    for row in sums.iter_rows(named=True):
        by_bucket.setdefault(row["bucket_start"], {})[row["frame"]] = int(row["items"])
    out = []
    for begin in sorted(by_bucket):
        counts = by_bucket[begin]
        total = counts.pop(ANY, 0)
        values = {f: (c / total if total else 0.0) if measure == "share" else float(c) for f, c in sorted(counts.items())}
        out.append({"start": begin, "complete": begin + size <= now, "total": total, "values": values})
    return out


def alerts(lake: Lake, watch: str | None, start: datetime | None, end: datetime | None,
           sensitivity: str | None = None) -> pl.DataFrame:
    """Alerts detected in [start, end), newest first (the alerts table is partitioned by detection
    date): spikes and emergent framings, and the shifts and drifts of one *sensitivity* (default: the
    deployment's, ``lake.sensitivity``; ``all``: every level's, which repeat the same changes)."""
    lf = lake.scan(ALERTS, watch=watch, start=start, end=end)
    if lf is None:
        return pl.DataFrame()
    if watch is not None:
        lf = lf.filter(pl.col("watch_id") == watch)
    level = sensitivity or lake.sensitivity
    if level != "all":  # rows before Alert v3 have no level (null)
        lf = lf.filter(pl.col("sensitivity").is_null() | (pl.col("sensitivity") == level))
    if start is not None:
        lf = lf.filter(pl.col("detected_at") >= start)
    if end is not None:
        lf = lf.filter(pl.col("detected_at") < end)
    return lf.sort(["detected_at", "key"], descending=[True, False]).collect()


def alert(lake: Lake, key: str) -> dict[str, Any] | None:
    """One alert by key (``watch:frame:window_start``)."""
    lf = lake.scan(ALERTS)
    if lf is None:
        return None
    parts = key.split(":")
    watches_ = [":".join(parts[:i]) for i in range(1, len(parts))]
    found = lf.filter(pl.col("watch").is_in(watches_) & (pl.col("key") == key)).collect()
    return found.row(0, named=True) if found.height else None


def alert_record(row: dict[str, Any]) -> dict[str, Any]:
    """An alerts-table row as the API shows it."""
    return {**row, "top_items": list(row.get("top_items") or []), "kind": row.get("kind") or "spike"}  # v1 rows: spikes


def clusters(lake: Lake, watch: str | None) -> pl.DataFrame:
    """Emergent clusters from segments' ``cluster`` values: size, items, sample passages."""
    lf = lake.scan(FRAMED_ITEMS, watch=watch)
    if lf is None:
        return pl.DataFrame()
    if watch is not None:
        lf = lf.filter(pl.col("watch_id") == watch)
    segs = (lf.select("watch_id", "key", "segments").explode("segments")
            .filter(pl.col("segments").is_not_null())
            .select("watch_id", "key", pl.col("segments").struct.field("cluster").alias("id"),
                    pl.col("segments").struct.field("text").alias("text"))
            .filter(pl.col("id").is_not_null()))
    return (segs.group_by("watch_id", "id")
            .agg(pl.len().alias("size"), pl.col("key").n_unique().alias("items"),
                 pl.col("text").sort().head(SAMPLES).alias("samples"))
            .sort(["size", "watch_id", "id"], descending=[True, False, False]).collect())


def uncertain(lake: Lake, watch: str | None, since: datetime, done: set[str]) -> pl.DataFrame:
    """The labelling queue: segments published since *since*, the most uncertain first (the smallest
    margin between the two closest frames, then the lowest score), without reprints (an item's or a
    segment's duplicate) and without segments in *done* (``item_key#index``: labelled or skipped)."""
    lf = lake.scan(FRAMED_ITEMS, watch=watch, start=since)
    if lf is None:
        return pl.DataFrame()
    if watch is not None:
        lf = lf.filter(pl.col("watch_id") == watch)
    seg = pl.col("segments").struct.field
    rows = (lf.filter((pl.col("published_at") >= since) & pl.col("duplicate_of").is_null())
            .select("key", "watch_id", "title", "published_at", "segments").explode("segments")
            .filter(pl.col("segments").is_not_null())
            .select(pl.col("key").alias("item_key"), "watch_id", "title", "published_at",
                    seg("index").alias("segment_index"), seg("text").alias("text"), seg("frame").alias("frame"),
                    seg("score").alias("score"), seg("margin").alias("margin"), seg("top").alias("top"),
                    seg("duplicate_of").alias("copy_of"))
            .filter(pl.col("copy_of").is_null() & (pl.col("text").str.len_chars() > 0))
            .filter(~pl.format("{}#{}", "item_key", "segment_index").is_in(sorted(done)))
            .drop("copy_of")
            .sort(["margin", "score", "item_key", "segment_index"]))
    return rows.collect()


def segment_texts(lake: Lake, item_keys: set[str]) -> dict[tuple[str, int], tuple[str, str]]:
    """(watch id, text) of every segment of the items *item_keys*, by (item key, segment index)."""
    lf = lake.scan(FRAMED_ITEMS)
    if lf is None or not item_keys:
        return {}
    seg = pl.col("segments").struct.field
    rows = (lf.filter(pl.col("key").is_in(sorted(item_keys))).select("key", "watch_id", "segments").explode("segments")
            .filter(pl.col("segments").is_not_null()).select("key", seg("index"), "watch_id", seg("text")).collect())
    return {(k, int(i)): (w, t) for k, i, w, t in rows.iter_rows()}
