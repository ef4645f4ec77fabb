"""What a framed record contributes to the aggregates, and fast JSON codecs of the aggregator's
records (its hot path: ``contracts.decode``/``encode`` check and walk every field and are too
slow for tens of thousands of records a second; these write the same JSON)."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from framewatch.processing.aggregate import EMERGENT_PREFIX, segment_frame

from framewatch.contracts import AggregateContribution, AggregateRow, FramedItem
from framewatch.errors import DecodeError
from framewatch.timeutil import parse_utc


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
    best: tuple[float, str | None] = (float("-inf"), None)
    for seg in data["segments"]:
        name = segment_frame(seg.get("frame"), seg.get("cluster"))
        if name is None or seg.get("duplicate_of"):
            continue
        seg_frames[name] = seg_frames.get(name, 0) + 1
        score = float(seg.get("score") or 0.0)
        if score > best[0]:
            best = (score, seg.get("text"))
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
        passage=(best[1] or "")[:500] or None, score=best[0] if best[1] is not None else 0.0,
    )


def fast_contribution(raw: bytes, partition: int) -> AggregateContribution:
    """Contribution of an encoded FramedItem, reading only the fields aggregation needs.

    ``contracts.decode`` checks every nested field and is too slow for this hot path; this
    checks the fields it reads and raises DecodeError (the caller asks ``contracts.decode``
    for the canonical reason).
    """
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > FramedItem.SCHEMA_VERSION:
            raise ValueError("schema too new")
        for name in ("key", "watch_id"):
            if not isinstance(data[name], str):
                raise TypeError(name)
        for name in ("frame", "outlet", "title", "url", "duplicate_of"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise TypeError(name)
        for name in ("item_id", "source_id", "codebook_version", "model_id", "method", "kind"):
            if not isinstance(data[name], str):
                raise TypeError(name)
        if not isinstance(data["frame_shares"], dict) or not isinstance(data["processed_at"], str):
            raise TypeError("frame_shares")
        data["published_at"] = parse_utc(data["published_at"])
        segments = data["segments"]
        if not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
            raise TypeError("segments")
        return _contribution(data, partition)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise DecodeError("invalid_field", str(exc), raw) from exc


def contribution_to_json(c: AggregateContribution) -> bytes:
    """Encode a contribution (same JSON as ``contracts.encode``, written directly for speed)."""
    data = {
        "key": c.key, "partition": c.partition, "watch_id": c.watch_id,
        "published_at": c.published_at.isoformat().replace("+00:00", "Z"), "frame": c.frame,
        "segment_frames": c.segment_frames, "outlet": c.outlet, "title": c.title, "url": c.url,
        "passage": c.passage, "score": c.score, "schema_version": c.schema_version,
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@functools.lru_cache(maxsize=65536)
def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=65536)
def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def row_to_json(r: AggregateRow) -> bytes:
    """Encode an aggregate row (same JSON as ``contracts.encode``, assembled directly: it is the
    hottest output, and its strings repeat, so their quoting is cached)."""
    return (
        f'{{"watch_id":{_quoted(r.watch_id)},"frame":{_quoted(r.frame)},"granularity":{_quoted(r.granularity)},'
        f'"bucket_start":"{_iso(r.bucket_start)}","outlet":{_quoted(r.outlet)},"partition":{int(r.partition)},'
        f'"items":{int(r.items)},"segments":{int(r.segments)},"schema_version":{int(r.schema_version)}}}'
    ).encode()


def row_key(r: AggregateRow) -> str:
    """Same as :func:`~framewatch.contracts.aggregate_key`, with the time's formatting cached."""
    return f"{r.watch_id}|{r.granularity}|{_iso(r.bucket_start)}|{r.frame}|{r.outlet}|p{r.partition}"


def contribution_from_json(raw: bytes) -> AggregateContribution:
    """Decode a contribution written by :func:`contribution_to_json` (fast path for restores)."""
    d = json.loads(raw)
    return AggregateContribution(
        key=d["key"], partition=int(d["partition"]), watch_id=d["watch_id"],
        published_at=parse_utc(d["published_at"]), frame=d["frame"],
        segment_frames={str(k): int(v) for k, v in d["segment_frames"].items()},
        outlet=d.get("outlet"), title=d.get("title"), url=d.get("url"),
        passage=d.get("passage"), score=float(d.get("score") or 0.0),
    )
