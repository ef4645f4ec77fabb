"""Parquet sink of framed items and aggregates, partitioned by date, idempotent per key.

Layout under the root (``Settings.parquet_dir``, default ``state_dir/parquet``)::

    items/date=YYYY-MM-DD/part-<digest>.parquet       (by publication date)
    aggregates/date=YYYY-MM-DD/part-<digest>.parquet  (by bucket start date)

A part's name is a digest of its content, so writing the same batch again (a re-read after a
crash) replaces the same file. A changed record adds a newer row with the same key; the readers
keep the latest row per key (``written_at``), so every key reads back once.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from framewatch.contracts import AggregateContribution, AggregateRow, aggregate_key

ITEM_SCHEMA: dict[str, Any] = {
    "key": pl.Utf8, "watch_id": pl.Utf8, "published_at": pl.Datetime("us", "UTC"), "frame": pl.Utf8,
    "outlet": pl.Utf8, "title": pl.Utf8, "url": pl.Utf8, "passage": pl.Utf8, "score": pl.Float64,
    "segments": pl.Int64, "partition": pl.Int32,
}
AGGREGATE_SCHEMA: dict[str, Any] = {
    "key": pl.Utf8, "watch_id": pl.Utf8, "frame": pl.Utf8, "granularity": pl.Utf8,
    "bucket_start": pl.Datetime("us", "UTC"), "outlet": pl.Utf8, "partition": pl.Int32,
    "items": pl.Int64, "segments": pl.Int64,
}


def items_frame(contributions: Sequence[AggregateContribution]) -> pl.DataFrame:
    """Framed items as a polars frame (one row per contribution)."""
    return pl.DataFrame(
        [
            (c.key, c.watch_id, c.published_at, c.frame, c.outlet, c.title, c.url, c.passage,
             c.score, sum(c.segment_frames.values()), c.partition)
            for c in contributions
        ],
        schema=ITEM_SCHEMA, orient="row",
    )


def aggregates_frame(rows: Sequence[AggregateRow]) -> pl.DataFrame:
    """Partial aggregate rows as a polars frame."""
    return pl.DataFrame(
        [
            (aggregate_key(r), r.watch_id, r.frame, r.granularity, r.bucket_start, r.outlet,
             r.partition, r.items, r.segments)
            for r in rows
        ],
        schema=AGGREGATE_SCHEMA, orient="row",
    )


class ParquetSink:
    """Writes batches under *root*; callable as the aggregator stage's sink."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __call__(self, contributions: Sequence[AggregateContribution], rows: Sequence[AggregateRow]) -> None:
        """Write one batch's changed items and aggregate rows."""
        if contributions:
            self.write(items_frame(contributions), "items", "published_at")
        if rows:
            self.write(aggregates_frame(rows), "aggregates", "bucket_start")

    def write(self, df: pl.DataFrame, table: str, time_column: str) -> list[Path]:
        """Write *df* split by the date of *time_column*; returns the part files written."""
        written = []
        df = df.with_columns(date=pl.col(time_column).dt.strftime("%Y-%m-%d"))
        for (date,), part in df.partition_by("date", as_dict=True, maintain_order=True).items():
            part = part.drop("date").sort("key")
            digest = hashlib.sha256(part.write_csv().encode("utf-8")).hexdigest()[:20]
            folder = self.root / table / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{digest}.parquet"
            tmp = folder / f".{path.name}.tmp"
            part.with_columns(written_at=pl.lit(time.time_ns(), pl.Int64)).write_parquet(tmp)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
            written.append(path)
        return written


def read_table(root: Path, table: str) -> pl.DataFrame:
    """Every row of *table*, the latest per key (``date`` column from the folder names)."""
    files = sorted((Path(root) / table).glob("date=*/part-*.parquet"))
    if not files:
        return pl.DataFrame()
    df = pl.concat(
        [pl.read_parquet(f).with_columns(date=pl.lit(f.parent.name.split("=", 1)[1])) for f in files],
        how="vertical_relaxed",
    )
    return df.sort("written_at").unique("key", keep="last", maintain_order=True).sort("key")


def read_totals(root: Path) -> pl.DataFrame:
    """Aggregate totals from the Parquet partials: latest row per key, summed over partitions."""
    df = read_table(root, "aggregates")
    if df.is_empty():
        return df
    return (
        df.group_by(["watch_id", "outlet", "granularity", "bucket_start", "frame"])
        .agg(pl.col("items").sum(), pl.col("segments").sum())
        .sort(["watch_id", "granularity", "bucket_start", "frame", "outlet"])
    )
