"""Hour and 5 min counts read back from the sink's Parquet lake (docs/read-model.md), as a CountsView."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from framewatch.contracts import ANY
from framewatch.processing.sink.layout import AGGREGATES, is_data_file
from framewatch.processing.sink.storage import Storage

_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
GRANULARITIES = ("5m", "1h")


@dataclass
class LakeCounts:
    """Counts of every (watch, frame, granularity, bucket) the lake holds, summed over partitions."""

    counts: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    frames: dict[str, set[str]] = field(default_factory=dict)

    def count(self, watch: str, frame: str, granularity: str, bucket_s: int, outlet: str = ANY) -> int:
        """Items of *frame* (``*``: all) in one bucket (outlet ``*`` only: the lake's totals)."""
        return self.counts.get((watch, frame, granularity, bucket_s), 0) if outlet == ANY else 0


def read_counts(storage: Storage, start: datetime, end: datetime, watch: str | None = None) -> LakeCounts:
    """The aggregates of the days from *start* to *end* (UTC), latest row per key (the read
    model's rule: greatest ``(_partition, _offset)``), summed over framed-items partitions."""
    first, last = start.date().isoformat(), end.date().isoformat()
    frames = []
    for stored in storage.list(f"{AGGREGATES}/"):
        name = stored.path.rsplit("/", 1)[-1]
        day = _DATE.search(stored.path)
        if not is_data_file(name) or day is None or not first <= day[1] <= last:
            continue
        frames.append(pl.read_parquet(io.BytesIO(storage.get(stored.path)),
                                      columns=["_partition", "_offset", "key", "watch_id", "frame", "granularity",
                                               "bucket_start", "outlet", "items"]))
    out = LakeCounts()
    if not frames:
        return out
    rows = (
        pl.concat(frames)
        .filter(pl.col("granularity").is_in(GRANULARITIES) & (pl.col("outlet") == ANY))
        .filter(pl.lit(True) if watch is None else pl.col("watch_id") == watch)
        .sort("_partition", "_offset")
        .unique("key", keep="last")
        .group_by("watch_id", "frame", "granularity", "bucket_start")
        .agg(pl.col("items").sum())
    )
    for w, f, g, b, n in rows.iter_rows():
        out.counts[(w, f, g, int(b.timestamp()))] = int(n)
        if f != ANY and n > 0:
            out.frames.setdefault(w, set()).add(f)
    return out


def history_start(start: datetime, days: int = 11) -> datetime:
    """How far back a replay from *start* reads: the detectors' baseline week and window."""
    return start - timedelta(days=days)
