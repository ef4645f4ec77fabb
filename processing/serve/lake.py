"""Lazy scans of the sink's Parquet tables, pruned by the date=/watch= partitions, last row per key.

docs/read-model.md is the contract: every ``*.parquet`` under a table counts, and of the rows
sharing a key the one with the greatest ``(_partition, _offset)`` wins (a replayed batch or a
compaction may leave the same key in two files, with identical values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import polars as pl

ITEMS = "items"
FRAMED_ITEMS = "framed_items"
AGGREGATES = "aggregates"
ALERTS = "alerts"
KEYS = {ITEMS: "item_id", FRAMED_ITEMS: "key", AGGREGATES: "key", ALERTS: "key"}
FILE = "_file"  # the file a row came from (a tie-break of the per-key rule)
ORDER = "_order"  # (_partition, _offset) as one integer: offsets stay below 2**40
HIVE_SCHEMA = {"date": pl.String, "watch": pl.String}  # watch ids stay text; polars decodes %XX
# Columns a table gained with a later record version. A scan takes its columns from its first
# file; where that one is older these are added (null in the files without them), not dropped.
UTC_US = pl.Datetime("us", "UTC")
LATER_COLUMNS: dict[str, dict[str, Any]] = {ALERTS: {
    "kind": pl.String, "change_point": UTC_US, "share_before": pl.Float64, "share_after": pl.Float64,
    "share_after_low": pl.Float64, "share_after_high": pl.Float64, "detector": pl.String,
    "false_alarm_rate_per_week": pl.Float64, "delay_s": pl.Float64, "sensitivity": pl.String,
}}


@dataclass(frozen=True, slots=True)
class Lake:
    """Where the sink's tables are: a folder or ``s3://bucket/prefix`` (with storage options)."""

    root: str
    storage_options: dict[str, Any] | None = None
    sensitivity: str = "medium"  # the deployment's alert level: the alerts a list shows unless asked

    @property
    def is_local(self) -> bool:
        """Whether the lake is a local folder (listable without a network round trip)."""
        return "://" not in self.root

    def table_exists(self, table: str) -> bool:
        """Whether *table* has at least one Parquet file (a lake the sink has not written yet has none)."""
        if not self.is_local:
            return True  # a remote table with no file yet fails its scan: the API answers 503
        base = Path(self.root) / table
        return base.is_dir() and any(base.glob("date=*/watch=*/*.parquet"))

    def signature(self, table: str, watch: str | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> tuple[tuple[str, int, int], ...] | None:
        """(path, size, mtime) of every file a scan with these bounds reads; None for a remote lake
        (listing it costs a round trip, so its results are not cached)."""
        if not self.is_local:
            return None
        days = partition_days(start, end)
        out = []
        for day_dir in (Path(self.root) / table).glob("date=*"):
            day = day_dir.name.removeprefix("date=")
            if days is not None and not days[0].isoformat() <= day <= days[1].isoformat():
                continue
            for watch_dir in day_dir.glob("watch=*"):
                if watch is not None and unquote(watch_dir.name.removeprefix("watch=")) != watch:
                    continue
                for path in watch_dir.glob("*.parquet"):
                    try:
                        st = path.stat()
                    except FileNotFoundError:  # compacted away while listing: the next call sees it
                        continue
                    out.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(sorted(out))

    def scan(self, table: str, *, watch: str | None = None, start: datetime | None = None,
             end: datetime | None = None, latest: bool = True) -> pl.LazyFrame | None:
        """Rows of *table* (latest per key) in the partitions that can hold *watch* and [start, end);
        None when the table has no file yet. Date partitions are UTC days, ``end`` exclusive.
        ``latest=False`` skips the per-key rule, for questions that only need distinct values."""
        if not self.table_exists(table):
            return None
        source = f"{self.root.rstrip('/')}/{table}/**/*.parquet"
        options: dict[str, Any] = {
            "hive_partitioning": True, "hive_schema": HIVE_SCHEMA, "missing_columns": "insert",
            "extra_columns": "ignore", "storage_options": self.storage_options, "include_file_paths": FILE,
        }
        lf = pl.scan_parquet(source, **options)
        if later := LATER_COLUMNS.get(table):
            have = lf.collect_schema()
            if any(name not in have for name in later):
                own = {k: v for k, v in have.items() if k not in HIVE_SCHEMA and k != FILE}
                lf = pl.scan_parquet(source, schema=own | {k: v for k, v in later.items() if k not in have}, **options)
        lf = prune(lf, watch, start, end)
        return latest_per_key(lf, KEYS[table]) if latest else lf.drop(FILE)


def prune(lf: pl.LazyFrame, watch: str | None, start: datetime | None, end: datetime | None) -> pl.LazyFrame:
    """Filter on the hive columns only, so polars skips the other partitions' files unread."""
    if watch is not None:
        lf = lf.filter(pl.col("watch") == watch)
    days = partition_days(start, end)
    if days is not None:
        lo, hi = days
        lf = lf.filter((pl.col("date") >= lo.isoformat()) & (pl.col("date") <= hi.isoformat()))
    return lf


def partition_days(start: datetime | None, end: datetime | None) -> tuple[date, date] | None:
    """The UTC days [first, last] a time range touches (end exclusive), or None for no bound."""
    if start is None and end is None:
        return None
    lo = start.date() if start is not None else date(1970, 1, 1)
    hi = (end - timedelta(microseconds=1)).date() if end is not None else date(9999, 12, 31)
    return lo, hi


def latest_per_key(lf: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """The row with the greatest (_partition, _offset) of each key (the contract's rule).

    The winner of each key is found on narrow columns (a group-by, no sort of whole rows, which
    would drag every segment list along: 3x slower at 1M rows) and the rows kept by a semi join.
    Its file breaks the tie of an identical copy of a row in two files (a replay, a compaction).
    """
    order = (pl.col("_partition").cast(pl.Int64) * (1 << 40) + pl.col("_offset")).alias(ORDER)
    lf = lf.with_columns(order)
    winners = lf.group_by(key).agg(pl.col(ORDER).max(), pl.col(FILE).sort_by(ORDER).last())
    return lf.join(winners, on=[key, ORDER, FILE], how="semi").drop(ORDER, FILE)


def lake_from_settings(sink_url: str, state_dir: Path, endpoint: str | None, region: str,
                       key_id: str | None, secret: str | None) -> Lake:
    """The lake the sink writes to, from the sink's settings (the serve side reads the same place)."""
    if not sink_url:
        return Lake(str(state_dir / "lake"))
    if sink_url.startswith("s3://"):
        options: dict[str, Any] = {"aws_region": region}
        if endpoint:
            options["aws_endpoint_url"] = endpoint
            options["aws_allow_http"] = str(endpoint.startswith("http://")).lower()
        if key_id and secret:
            options |= {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        return Lake(sink_url, options)
    return Lake(os.path.expanduser(sink_url))


def collect(lf: pl.LazyFrame | None) -> pl.DataFrame:
    """Collect a scan; a table with no file yet is an empty frame."""
    return pl.DataFrame() if lf is None else lf.collect()
