"""Framed items: the list (filters, full-text search, duplicates folded, sorted), its export, one item.

Folding: an item whose ``duplicate_of`` names another item of the same result is not listed; the
original counts it in ``duplicates``, so the listed rows plus their duplicates are the result.
A copy whose original falls outside the query stays listed (nothing would show it otherwise).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from framewatch.processing.serve.cache import ResultCache
from framewatch.processing.serve.lake import FRAMED_ITEMS, ITEMS, Lake

Sort = Literal["-published_at", "published_at", "-duplicates", "duplicates", "outlet", "title"]
SUMMARY = ["key", "item_id", "watch_id", "published_at", "outlet", "frame", "title", "url"]
EXPORT_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class ItemQuery:
    """What a caller asks of the items list (every field optional)."""

    watch: str | None = None
    frame: str | None = None
    outlet: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    q: str | None = None
    sort: Sort = "-published_at"


def _matching(lake: Lake, query: ItemQuery) -> pl.LazyFrame | None:
    lf = lake.scan(FRAMED_ITEMS, watch=query.watch, start=query.start, end=query.end)
    if lf is None:
        return None
    if query.watch is not None:
        lf = lf.filter(pl.col("watch_id") == query.watch)
    if query.start is not None:
        lf = lf.filter(pl.col("published_at") >= query.start)
    if query.end is not None:
        lf = lf.filter(pl.col("published_at") < query.end)
    if query.frame is not None:
        lf = lf.filter(pl.col("frame") == query.frame)
    if query.outlet is not None:
        lf = lf.filter(pl.col("outlet") == query.outlet)
    if query.q:
        needle = query.q.lower()
        in_title = pl.col("title").fill_null("").str.to_lowercase().str.contains(needle, literal=True)
        in_text = pl.col("segments").list.eval(
            pl.element().struct.field("text").str.to_lowercase().str.contains(needle, literal=True)
        ).list.any().fill_null(False)
        lf = lf.filter(in_title | in_text)
    return lf.select([*SUMMARY, "duplicate_of"])


def listing(lake: Lake, query: ItemQuery, cache: ResultCache | None = None) -> pl.DataFrame:
    """Every row the query lists, in order, with its folded ``duplicates`` count (kept in *cache*
    while the files read are unchanged, so the next page or the export rescans nothing)."""
    if cache is None:
        return _listing(lake, query)
    signature = lake.signature(FRAMED_ITEMS, query.watch, query.start, query.end)
    return cache.get(None if signature is None else (query, signature), lambda: _listing(lake, query))


def _listing(lake: Lake, query: ItemQuery) -> pl.DataFrame:
    lf = _matching(lake, query)
    if lf is None:
        return pl.DataFrame(schema={**{c: pl.String for c in SUMMARY}, "published_at": pl.Datetime("us", "UTC"),
                                    "duplicates": pl.UInt32})
    rows = lf.collect().lazy()
    present = rows.select("watch_id", pl.col("item_id").alias("duplicate_of"))
    folded = rows.filter(pl.col("duplicate_of").is_not_null()).join(
        present, on=["watch_id", "duplicate_of"], how="semi")
    counts = folded.group_by("watch_id", "duplicate_of").agg(pl.len().alias("duplicates")).rename(
        {"duplicate_of": "item_id"})
    shown = (rows.join(folded.select("key"), on="key", how="anti")
             .join(counts, on=["watch_id", "item_id"], how="left")
             .with_columns(pl.col("duplicates").fill_null(0).cast(pl.UInt32)))
    column, descending = query.sort.lstrip("-"), query.sort.startswith("-")
    out = shown.sort([column, "key"], descending=[descending, False], nulls_last=True)
    return out.select([*SUMMARY, "duplicates"]).collect()


def export_chunks(frame: pl.DataFrame, fmt: Literal["csv", "parquet"]) -> Iterator[bytes]:
    """The listing as CSV (a header, then rows in chunks) or as one Parquet file, in pieces."""
    if fmt == "csv":
        for start in range(0, max(frame.height, 1), EXPORT_CHUNK):
            part = frame.slice(start, EXPORT_CHUNK)
            yield part.write_csv(include_header=start == 0).encode("utf-8")
        return
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data = buffer.getvalue()
    for start in range(0, len(data), 1 << 20):
        yield data[start:start + (1 << 20)]


def _watch_candidates(key: str) -> list[str]:
    # a framed key is "<watch>:<item>"; a watch id may itself hold ":", so try every split
    parts = key.split(":")
    return [":".join(parts[:i]) for i in range(1, len(parts))]


def detail(lake: Lake, key: str) -> dict[str, Any] | None:
    """One framed item with its segments, quotes (from the raw item) and folded duplicates."""
    lf = lake.scan(FRAMED_ITEMS)
    if lf is None:
        return None
    found = lf.filter(pl.col("watch").is_in(_watch_candidates(key)) & (pl.col("key") == key)).collect()
    if found.height == 0:
        return None
    row = found.row(0, named=True)
    day = row["published_at"].replace(hour=0, minute=0, second=0, microsecond=0)
    dups = lf.filter((pl.col("watch") == row["watch_id"]) & (pl.col("duplicate_of") == row["item_id"])).select(
        pl.len()).collect().item()
    raw = lake.scan(ITEMS, start=day, end=day + timedelta(days=1))
    quotes: list[dict[str, Any]] = []
    if raw is not None:
        hit = raw.filter(pl.col("item_id") == row["item_id"]).select("quotes").collect()
        if hit.height:
            quotes = list(hit.row(0, named=True)["quotes"] or [])
    shares = {s["frame"]: s["share"] for s in row.get("frame_shares") or []}
    segments = [
        {**seg, "labels": seg.get("labels") or [], "top": seg.get("top") or [],
         "nearest_examples": seg.get("nearest_examples") or [], "flags": seg.get("flags") or []}
        for seg in row.get("segments") or []
    ]
    return {**row, "frame_shares": shares, "segments": segments, "quotes": quotes, "duplicates": int(dups)}
