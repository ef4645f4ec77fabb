"""What a framed record contributes to the aggregates, and fast JSON codecs of the aggregator's
records (its hot path: ``contracts.decode``/``encode`` check and walk every field and are too
slow for tens of thousands of records a second; these write the same JSON)."""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from framewatch import contracts
from framewatch.contracts import (
    EMERGENT_PREFIX,
    AggregateContribution,
    AggregateRow,
    FramedItem,
    aggregate_key,
    lone_surrogate,
)
from framewatch.errors import DecodeError
from framewatch.processing.trends.counts import RowValues
from framewatch.timeutil import format_utc, parse_utc

try:  # optional accelerator of the hot decode (see fast_contribution); json alone decides the same
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

# what json.dumps(..., ensure_ascii=False, separators=(",", ":")) writes, built once: the kwargs
# form builds a new encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()
_ZERO = timedelta(0)
_TEXT_FIELDS = ("key", "watch_id", "item_id", "source_id", "codebook_version", "model_id", "method", "kind")
_OPTIONAL_TEXT_FIELDS = ("frame", "outlet", "title", "url", "duplicate_of")


def contribution_of(item: FramedItem, partition: int) -> AggregateContribution:
    """What *item* adds to the aggregates. A reprint (``duplicate_of`` set) counts nothing."""
    return _contribution(_item_dict(item), partition)


def _item_dict(item: FramedItem) -> dict[str, Any]:
    return {
        "key": item.key, "watch_id": item.watch_id, "published_at": item.published_at,
        "frame": item.frame, "outlet": item.outlet, "title": item.title, "url": item.url,
        "duplicate_of": item.duplicate_of,
        "segments": [
            {"frame": s.frame, "cluster": s.cluster, "text": s.text, "score": s.score,
             "duplicate_of": s.duplicate_of}
            for s in item.segments
        ],
    }


def _contribution(data: dict[str, Any], partition: int) -> AggregateContribution:
    seg_frames: dict[str, int] = {}
    best_score, best_text = float("-inf"), None
    for seg in data["segments"]:
        get = seg.get  # a segment that is not an object has no .get: AttributeError, not counted
        # the segment's frame (aggregate.segment_frame, inlined: this loop is the hot path)
        name = get("frame")
        if name is not None and type(name) is not str:  # would break sorting downstream
            raise TypeError("segment frame")
        if not name:
            cluster = get("cluster")
            if cluster is not None and type(cluster) is not str:
                raise TypeError("segment cluster")
            if not cluster:
                continue
            name = cluster if cluster.startswith(EMERGENT_PREFIX) else f"{EMERGENT_PREFIX}{cluster}"
        if get("duplicate_of"):
            continue
        seg_frames[name] = seg_frames.get(name, 0) + 1
        score = float(get("score") or 0.0)
        if score > best_score:
            best_score, best_text = score, get("text")
    frame = data["frame"]
    if frame is None and seg_frames:
        # no codebook frame: the item counts for its most common emergent framing
        emergent = {k: v for k, v in seg_frames.items() if k.startswith(EMERGENT_PREFIX)}
        if emergent:
            frame = max(sorted(emergent), key=emergent.__getitem__)
    if frame is None:
        frame = "unframed"
    if data.get("duplicate_of"):
        frame, seg_frames = None, {}
    return AggregateContribution(
        key=data["key"], partition=partition, watch_id=data["watch_id"],
        published_at=data["published_at"], frame=frame, segment_frames=seg_frames,
        outlet=data.get("outlet"), title=data.get("title"), url=data.get("url"),
        passage=(best_text or "")[:500] or None, score=best_score if best_text is not None else 0.0,
    )


def _stdlib_loads(raw: bytes) -> Any:
    """``json.loads`` of *raw* as strict UTF-8 (what ``contracts.decode`` accepts), refusing
    lone surrogates: orjson refuses them, json takes them but cannot write them back."""
    text = raw.decode("utf-8")
    data = _DECODER.decode(text)
    if lone_surrogate(text, data):
        raise ValueError("lone surrogate escape")
    return data


def _checked_contribution(data: Any, partition: int) -> AggregateContribution:
    """The contribution of a decoded FramedItem, checking the fields it reads."""
    if not isinstance(data, dict):
        raise TypeError("not an object")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > FramedItem.SCHEMA_VERSION:
        raise ValueError("schema too new")
    for name in _TEXT_FIELDS:
        if not isinstance(data[name], str):
            raise TypeError(name)
    for name in _OPTIONAL_TEXT_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(name)
    if not isinstance(data["frame_shares"], dict) or not isinstance(data["processed_at"], str):
        raise TypeError("frame_shares")
    data["published_at"] = parse_utc(data["published_at"])
    if not isinstance(data["segments"], list):
        raise TypeError("segments")
    return _contribution(data, partition)


def fast_contribution(raw: bytes, partition: int) -> AggregateContribution:
    """Contribution of an encoded FramedItem, reading only the fields aggregation needs.

    ``contracts.decode`` checks every nested field and is too slow for this hot path; this
    checks the fields it reads and raises DecodeError (the caller asks ``contracts.decode``
    for the canonical reason). The JSON is parsed by orjson when it is installed (well under
    half json's time on these records); what orjson refuses goes to json. Segment frames must be
    strings (a number there once broke the aggregation's sorting), so where orjson and json read
    numbers differently (integers past 64 bits) both refuse the record alike.
    """
    try:
        if orjson is not None:
            try:
                data = orjson.loads(raw)
            except ValueError:
                return _checked_contribution(_stdlib_loads(raw), partition)
            return _checked_contribution(data, partition)
        return _checked_contribution(_stdlib_loads(raw), partition)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeError("invalid_field", str(exc), raw) from exc


def _json_value(value: Any) -> str:
    """*value* as ``_ENCODER`` writes it; strings, ints and finite floats without its overhead."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODER.encode(value)


def _counts_json(counts: dict[str, int]) -> str:
    if type(counts) is dict and all(type(k) is str and type(n) is int for k, n in counts.items()):
        return "{" + ",".join([f"{encode_basestring(k)}:{int.__repr__(n)}" for k, n in counts.items()]) + "}"
    return _ENCODER.encode(counts)


def contribution_to_json(c: AggregateContribution) -> bytes:
    """Encode a contribution (same JSON as ``contracts.encode``, written directly for speed):
    by orjson when it is installed and the values are ones it writes exactly as json does
    (a UTC time, a finite score; it refuses what json would write otherwise, e.g. lone
    surrogates or integers past 64 bits, and those take the plain path)."""
    if orjson is not None and c.published_at.utcoffset() == _ZERO and math.isfinite(c.score):
        try:
            return orjson.dumps(
                {"key": c.key, "partition": c.partition, "watch_id": c.watch_id, "published_at": c.published_at,
                 "frame": c.frame, "segment_frames": c.segment_frames, "outlet": c.outlet, "title": c.title,
                 "url": c.url, "passage": c.passage, "score": c.score, "schema_version": c.schema_version},
                option=orjson.OPT_UTC_Z,
            )
        except TypeError:
            pass
    value = _json_value
    return (
        f'{{"key":{value(c.key)},"partition":{value(c.partition)},"watch_id":{value(c.watch_id)},'
        f'"published_at":{value(c.published_at.isoformat().replace("+00:00", "Z"))},'
        f'"frame":{value(c.frame)},"segment_frames":{_counts_json(c.segment_frames)},'
        f'"outlet":{value(c.outlet)},"title":{value(c.title)},"url":{value(c.url)},'
        f'"passage":{value(c.passage)},"score":{value(c.score)},"schema_version":{value(c.schema_version)}}}'
    ).encode()


@functools.lru_cache(maxsize=65536)
def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=65536)
def _iso(bucket_s: int) -> str:
    return format_utc(datetime.fromtimestamp(bucket_s, UTC))


@functools.lru_cache(maxsize=65536)
def _row_labels(watch: str, frame: str, granularity: str) -> str:
    return f'{{"watch_id":{_quoted(watch)},"frame":{_quoted(frame)},"granularity":{_quoted(granularity)},'


def row_values_key(values: RowValues) -> str:
    """:func:`~framewatch.contracts.aggregate_key` of the row given as :data:`RowValues`."""
    watch, frame, granularity, bucket, outlet, partition = values[:6]
    return f"{watch}|{granularity}|{_iso(bucket)}|{frame}|{outlet}|p{partition}"


def encode_row_values(values: RowValues) -> tuple[str, bytes]:
    """Key and JSON of an aggregate row given as :data:`RowValues` (the same as
    :func:`row_key` and :func:`row_to_json` of its record): the hottest output, and its
    strings repeat, so their quoting is cached."""
    watch, frame, granularity, bucket, outlet, partition, items, segments = values
    iso = _iso(bucket)
    return row_values_key(values), (
        f'{_row_labels(watch, frame, granularity)}"bucket_start":"{iso}","outlet":{_quoted(outlet)},'
        f'"partition":{int(partition)},"items":{int(items)},"segments":{int(segments)},'
        f'"schema_version":{AggregateRow.SCHEMA_VERSION}}}'
    ).encode()


def encode_row(r: AggregateRow) -> tuple[str, bytes]:
    """Key and JSON of an aggregate row (:func:`row_key`, :func:`row_to_json` at once)."""
    start = r.bucket_start
    if r.schema_version != AggregateRow.SCHEMA_VERSION or start.microsecond or start.utcoffset() != _ZERO:
        return aggregate_key(r), contracts.encode(r)  # not a row this module made: the plain path
    bucket = int(start.timestamp())
    return encode_row_values((r.watch_id, r.frame, r.granularity, bucket, r.outlet, r.partition, r.items, r.segments))


def row_to_json(r: AggregateRow) -> bytes:
    """Encode an aggregate row (same JSON as ``contracts.encode``, assembled directly)."""
    return encode_row(r)[1]


def row_key(r: AggregateRow) -> str:
    """Same as :func:`~framewatch.contracts.aggregate_key`, with the time's formatting cached."""
    return encode_row(r)[0]


def contribution_from_json(raw: bytes) -> AggregateContribution:
    """Decode a contribution written by :func:`contribution_to_json` (fast path for restores)."""
    return contribution_from_dict(json.loads(raw))


def contribution_from_dict(d: dict[str, Any]) -> AggregateContribution:
    """The contribution of a decoded :func:`contribution_to_json` object."""
    return AggregateContribution(
        key=d["key"], partition=int(d["partition"]), watch_id=d["watch_id"],
        published_at=parse_utc(d["published_at"]), frame=d["frame"],
        segment_frames={str(k): int(v) for k, v in d["segment_frames"].items()},
        outlet=d.get("outlet"), title=d.get("title"), url=d.get("url"),
        passage=d.get("passage"), score=float(d.get("score") or 0.0),
    )
