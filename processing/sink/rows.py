"""Records to Parquet rows: the column schema of each table and each topic's decoder.

Every file of a table has exactly the schema here (columns docs/read-model.md lists), so any
reader can scan all of them at once: a column that is null in a whole batch still has its type.
A decoder turns a message's bytes into ``(folder, row)`` with the record's fields, datetimes as
aware UTC datetimes, tuples as lists and ``frame_shares`` as a list of ``{frame, share}``; it
raises ``DecodeError`` for bytes that are not the topic's record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import polars as pl

from framewatch import contracts, settings
from framewatch.contracts import AggregateRow, Alert, FramedItem, RawItem
from framewatch.processing.sink import columns
from framewatch.processing.sink.fastdecode import decode_row
from framewatch.processing.sink.layout import AGGREGATES, ALERTS, FRAMED_ITEMS, ITEMS, folder

UTC_US = pl.Datetime("us", "UTC")
STR_LIST = pl.List(pl.Utf8)
COORDINATES: dict[str, Any] = {"_partition": pl.Int32, "_offset": pl.Int64, "_written_at": UTC_US}

ITEM_COLUMNS: dict[str, Any] = {
    "item_id": pl.Utf8, "source_id": pl.Utf8, "feed_url": pl.Utf8, "kind": pl.Utf8, "url": pl.Utf8,
    "title": pl.Utf8, "author": pl.Utf8, "published_at": UTC_US, "fetched_at": UTC_US, "text": pl.Utf8,
    "quotes": pl.List(pl.Struct({"text": pl.Utf8, "author": pl.Utf8, "source_post": pl.Utf8, "origin": pl.Utf8})),
    "thread_id": pl.Utf8, "parent_id": pl.Utf8, "language": pl.Utf8, "outlet": pl.Utf8,
    "tags": STR_LIST, "flags": STR_LIST, "schema_version": pl.Int64,
}
SEGMENT = pl.Struct({
    "index": pl.Int64, "text": pl.Utf8, "text_hash": pl.Utf8, "frame": pl.Utf8, "score": pl.Float64,
    "margin": pl.Float64, "labels": STR_LIST, "top": pl.List(pl.Struct({"frame": pl.Utf8, "score": pl.Float64})),
    "nearest_examples": STR_LIST, "duplicate_of": pl.Utf8, "cluster": pl.Utf8, "flags": STR_LIST,
})
FRAMED_COLUMNS: dict[str, Any] = {
    "key": pl.Utf8, "item_id": pl.Utf8, "watch_id": pl.Utf8, "source_id": pl.Utf8, "kind": pl.Utf8,
    "published_at": UTC_US, "processed_at": UTC_US, "frame": pl.Utf8,
    "frame_shares": pl.List(pl.Struct({"frame": pl.Utf8, "share": pl.Float64})),
    "segments": pl.List(SEGMENT), "codebook_version": pl.Utf8, "model_id": pl.Utf8, "method": pl.Utf8,
    "url": pl.Utf8, "title": pl.Utf8, "outlet": pl.Utf8, "duplicate_of": pl.Utf8, "schema_version": pl.Int64,
    # version 2: which level decided the frame and the document head's frames (v1 rows: segment, none)
    "shares_level": pl.Utf8, "document_frames": STR_LIST,
    "document_scores": pl.List(pl.Struct({"frame": pl.Utf8, "score": pl.Float64})),
}
AGGREGATE_COLUMNS: dict[str, Any] = {
    "key": pl.Utf8, "watch_id": pl.Utf8, "frame": pl.Utf8, "granularity": pl.Utf8, "bucket_start": UTC_US,
    "outlet": pl.Utf8, "partition": pl.Int64, "items": pl.Int64, "segments": pl.Int64, "schema_version": pl.Int64,
}
ALERT_COLUMNS: dict[str, Any] = {
    "key": pl.Utf8, "watch_id": pl.Utf8, "frame": pl.Utf8, "rule": pl.Utf8, "window_start": UTC_US,
    "window_end": UTC_US, "baseline_share": pl.Float64, "observed_share": pl.Float64,
    "observed_count": pl.Int64, "window_items": pl.Int64, "score": pl.Float64, "detected_at": UTC_US,
    "top_items": pl.List(pl.Struct({"title": pl.Utf8, "url": pl.Utf8, "outlet": pl.Utf8, "passage": pl.Utf8,
                                    "published_at": UTC_US})),
    "schema_version": pl.Int64,
    # version 2: the change's kind and, for shifts and drifts, its evidence (null in v1 rows)
    "kind": pl.Utf8, "change_point": UTC_US, "share_before": pl.Float64, "share_after": pl.Float64,
    "share_after_low": pl.Float64, "share_after_high": pl.Float64, "detector": pl.Utf8,
    "false_alarm_rate_per_week": pl.Float64, "delay_s": pl.Float64,
    "sensitivity": pl.Utf8,  # version 3: a shift's or drift's level (null for spikes, emergent, v1-v2 rows)
}
SCHEMAS: dict[str, dict[str, Any]] = {
    table: {**COORDINATES, **columns}
    for table, columns in ((ITEMS, ITEM_COLUMNS), (FRAMED_ITEMS, FRAMED_COLUMNS),
                           (AGGREGATES, AGGREGATE_COLUMNS), (ALERTS, ALERT_COLUMNS))
}

Row = dict[str, Any]
COLUMNWISE_FROM = 64  # rows from which a frame is built column by column (bench/sink.py)
Decoder = Callable[[bytes], tuple[str, Row]]


def plain(value: Any) -> Any:
    """A record's value as polars takes it: nested records as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def fields_of(record: Any) -> Row:
    """The top-level fields of a record as a row."""
    return {f.name: plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def record_row(record_type: type, raw: bytes) -> Row:
    """The record's fields as a row: the fast decoder, or ``contracts.decode`` for whatever it
    does not take (which raises ``DecodeError`` with the canonical reason for a bad record)."""
    try:
        return decode_row(record_type, raw)
    except (ValueError, TypeError):  # Refused, orjson's errors: let the full decoder judge
        return fields_of(contracts.decode(record_type, raw))


def item_row(raw: bytes) -> tuple[str, Row]:
    """A raw item's folder (publication date, no watch) and row."""
    row = record_row(RawItem, raw)
    return folder(ITEMS, row["published_at"], None), row


def framed_row(raw: bytes) -> tuple[str, Row]:
    """A framed item's folder (publication date, its watch) and row."""
    row = record_row(FramedItem, raw)
    row["frame_shares"] = [{"frame": f, "share": s} for f, s in row["frame_shares"].items()]
    return folder(FRAMED_ITEMS, row["published_at"], row["watch_id"]), row


def aggregate_row(raw: bytes) -> tuple[str, Row]:
    """An aggregate row's folder (bucket date, its watch) and row, with its ``key``."""
    row = record_row(AggregateRow, raw)
    key = contracts.aggregate_key(AggregateRow(**row))
    return folder(AGGREGATES, row["bucket_start"], row["watch_id"]), {"key": key, **row}


def alert_row(raw: bytes) -> tuple[str, Row]:
    """An alert's folder (detection date, its watch) and row."""
    row = record_row(Alert, raw)
    return folder(ALERTS, row["detected_at"], row["watch_id"]), row


# logical topic -> (table, decoder)
DECODERS: dict[str, tuple[str, Decoder]] = {
    settings.RAW_ITEMS: (ITEMS, item_row),
    settings.FRAMED_ITEMS: (FRAMED_ITEMS, framed_row),
    settings.AGGREGATES: (AGGREGATES, aggregate_row),
    settings.ALERTS: (ALERTS, alert_row),
}


def frame_of(table: str, rows: list[Row]) -> pl.DataFrame:
    """The rows as a frame with the table's exact schema: column by column for many rows, where
    it is faster, row by row for a few (the columns' fixed cost is a few milliseconds)."""
    if len(rows) < COLUMNWISE_FROM:
        return pl.DataFrame(rows, schema=SCHEMAS[table])
    return columns.frame(rows, SCHEMAS[table])
