"""Parquet sink of framed items and aggregates, partitioned by date, idempotent per key.

Layout under the root (``Settings.parquet_dir``, default ``state_dir/parquet``)::

    items/date=YYYY-MM-DD/part-<digest>.parquet       (by publication date)
    aggregates/date=YYYY-MM-DD/part-<digest>.parquet  (by bucket start date)

A part's name is a digest of its keys, so writing the same batch again (a re-read after a
crash) replaces the same file. A changed record adds a newer row with the same key; the readers
keep the latest row per key (``written_at``), so every key reads back once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from framewatch.contracts import AggregateContribution
from framewatch.processing.trends.codec import row_values_key
from framewatch.processing.trends.counts import RowValues

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _day(epoch_s: int) -> tuple[str, datetime]:
    """Date folder name and bucket time of an epoch second (few distinct values per batch)."""
    t = _EPOCH + timedelta(seconds=epoch_s)
    return t.strftime("%Y-%m-%d"), t


def item_rows(contributions: Sequence[AggregateContribution]) -> list[tuple[str, tuple[Any, ...]]]:
    """(date, row in ITEM_SCHEMA order) of each contribution, by publication date."""
    return [
        (c.published_at.strftime("%Y-%m-%d"),
         (c.key, c.watch_id, c.published_at, c.frame, c.outlet, c.title, c.url, c.passage,
          c.score, sum(c.segment_frames.values()), c.partition))
        for c in contributions
    ]


def aggregate_rows(rows: Sequence[RowValues]) -> list[tuple[str, tuple[Any, ...]]]:
    """(date, row in AGGREGATE_SCHEMA order) of each partial row, by bucket start date."""
    out = []
    for values in rows:
        watch, frame, gran, bucket, outlet, p, items, segs = values
        date, start = _day(bucket)
        out.append((date, (row_values_key(values), watch, frame, gran, start, outlet, p, items, segs)))
    return out


class ParquetSink:
    """Writes batches under *root*; callable as the aggregator stage's sink."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __call__(self, contributions: Sequence[AggregateContribution], rows: Sequence[RowValues]) -> None:
        """Write one batch's changed items and partial aggregate rows."""
        if contributions:
            self.write(item_rows(contributions), "items", ITEM_SCHEMA)
        if rows:
            self.write(aggregate_rows(rows), "aggregates", AGGREGATE_SCHEMA)

    def write(self, dated: Sequence[tuple[str, tuple[Any, ...]]], table: str, schema: dict[str, Any]) -> list[Path]:
        """Write rows (each with its date, first field the key) one file per date; returns them.

        Rows are grouped and sorted in Python and each file is built in one go: a batch holds a
        few hundred rows over a handful of dates, where a polars partition/sort pipeline per
        batch cost more than the whole aggregation. A file's name is a digest of its keys, so a
        re-read batch replaces its own file (readers keep the latest row per key anyway).
        """
        by_date: dict[str, list[tuple[Any, ...]]] = {}
        for date, row in dated:
            by_date.setdefault(date, []).append(row)
        written_at = time.time_ns()
        written = []
        for date in sorted(by_date):
            part = sorted(by_date[date], key=_first)
            digest = hashlib.sha256("\x1e".join(r[0] for r in part).encode("utf-8")).hexdigest()[:20]
            folder = self.root / table / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{digest}.parquet"
            tmp = folder / f".{path.name}.tmp"
            df = pl.DataFrame(part, schema=schema, orient="row")
            df.with_columns(written_at=pl.lit(written_at, pl.Int64)).write_parquet(tmp)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
            written.append(path)
        return written


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


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
