"""Message contracts: one frozen, versioned record type per Kafka topic, encoded as JSON.

Records never carry Kafka coordinates; those live in :class:`MessageContext`. Change a record
by copying it (``dataclasses.replace``). ``decode(RecordType, raw)`` returns a record or raises
:class:`~framewatch.errors.DecodeError` carrying a reason from :data:`DECODE_REASONS` and the
original bytes, which the consumer loop routes to the dead-letter topic. The codec itself is
:mod:`framewatch.codec`, re-exported here.

Compatibility: a reader accepts any ``schema_version`` up to its own and ignores unknown fields,
so producers can add optional fields without breaking older consumers; removing or retyping a
field needs a new ``schema_version``.
"""

from __future__ import annotations

import base64
import hashlib
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from framewatch.codec import (
    DECODE_REASONS,
    MAX_DEPTH,
    MAX_RECORD_BYTES,
    decode,
    encode,
    from_dict,
    lone_surrogate,
    to_dict,
    too_deep,
)
from framewatch.timeutil import format_utc

ItemKind = Literal["article", "forum_post"]
QuoteOrigin = Literal["markup", "copied"]

# The shared vocabulary of the records, the aggregates, the metrics and the subscriptions.
ANY = "*"  # an aggregate row's frame (the watch's total) or outlet (all outlets); a subscription's "every watch"
EMERGENT_PREFIX = "emergent:"  # frame id of a framing found by clustering: emergent:<cluster id>
BUCKETS: dict[str, int] = {"5m": 300, "1h": 3600, "1d": 86400}  # bucket sizes: granularity -> seconds
Sensitivity = Literal["low", "medium", "high"]  # a shift/drift detector's level (rates: processing/changes)
SENSITIVITIES: tuple[str, ...] = typing.get_args(Sensitivity)

# Original bytes a dead letter keeps: their base64 (4/3) fits a topic's default 1 MiB message
# limit; a larger original keeps its head, its size and its digest, and is never replayed.
DEAD_LETTER_RAW_MAX = 512 * 1024
DEAD_LETTER_KEY_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Where a message was read from; kept apart from the record itself."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """A passage the author quoted from someone else: never counted as the author's own text."""

    text: str
    author: str | None = None
    source_post: str | None = None
    origin: QuoteOrigin = "markup"


@dataclass(frozen=True, slots=True)
class RawItem:
    """One fetched feed entry or forum post (topic ``raw-items``, keyed by ``item_id``)."""

    SCHEMA_VERSION: typing.ClassVar[int] = 1

    item_id: str
    source_id: str
    feed_url: str
    kind: ItemKind
    url: str | None
    title: str | None
    author: str | None
    published_at: datetime
    fetched_at: datetime
    text: str
    quotes: tuple[Quote, ...] = ()
    thread_id: str | None = None
    parent_id: str | None = None
    language: str | None = None
    outlet: str | None = None
    tags: tuple[str, ...] = ()
    # what ingest changed on the way (``truncated``, ``repaired_text``; ingest.outcomes.FLAG_REASONS);
    # optional: records written before it decode with ``()``
    flags: tuple[str, ...] = ()
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class FrameScore:
    """How close a segment is to one frame."""

    frame: str
    score: float


@dataclass(frozen=True, slots=True)
class FramedSegment:
    """One segment of an item with the frame it got and why (the explanation)."""

    index: int
    text: str
    text_hash: str
    frame: str | None
    score: float
    margin: float
    labels: tuple[str, ...] = ()
    top: tuple[FrameScore, ...] = ()
    nearest_examples: tuple[str, ...] = ()
    duplicate_of: str | None = None
    cluster: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FramedItem:
    """One item as framed for one watch (topic ``framed-items``, keyed by ``key``).

    ``shares_level`` says which level decided ``frame`` and ``frame_shares`` (what share of
    voice counts): ``segment`` (length-weighted segment frames) or ``document`` (the document
    head's ``document_frames``, equal shares). Segments keep their own frames either way, for
    the explanation. Version 1 records (no document fields) decode with the defaults.
    """

    SCHEMA_VERSION: typing.ClassVar[int] = 2

    key: str
    item_id: str
    watch_id: str
    source_id: str
    kind: ItemKind
    published_at: datetime
    processed_at: datetime
    frame: str | None
    frame_shares: dict[str, float]
    segments: tuple[FramedSegment, ...]
    codebook_version: str
    model_id: str
    method: str
    url: str | None = None
    title: str | None = None
    outlet: str | None = None
    duplicate_of: str | None = None
    schema_version: int = 2
    shares_level: str = "segment"
    document_frames: tuple[str, ...] = ()
    document_scores: tuple[FrameScore, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message some component could not handle (topic ``dead-letters``), with the original bytes."""

    SCHEMA_VERSION: typing.ClassVar[int] = 1

    component: str
    source_topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw_b64: str
    failed_at: datetime
    key_b64: str | None = None
    raw_size: int | None = None  # the original's size (None: written before it was recorded)
    raw_sha256: str | None = None  # set when the original was cut to DEAD_LETTER_RAW_MAX
    schema_version: int = 1

    @property
    def raw(self) -> bytes:
        """The original message bytes (their head only when :attr:`truncated`)."""
        return base64.b64decode(self.raw_b64)

    @property
    def truncated(self) -> bool:
        """Whether only the head of the original is kept."""
        return self.raw_sha256 is not None


def stable_id(*parts: str) -> str:
    """Return a short, stable identifier derived from *parts* (same input, same id, forever)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:24]


def framed_key(item_id: str, watch_id: str) -> str:
    """Deterministic key of the framed record for one (item, watch)."""
    return f"{watch_id}:{item_id}"


def dead_letter(
    component: str, ctx: MessageContext, reason: str, detail: str, raw: bytes, failed_at: datetime
) -> DeadLetter:
    """Build the dead-letter record for a message that *component* could not handle (an
    original over DEAD_LETTER_RAW_MAX keeps its head, size and sha256: the broker would refuse
    the whole one, and the component would stop on every retry)."""
    cut = len(raw) > DEAD_LETTER_RAW_MAX
    return DeadLetter(
        component=component,
        source_topic=ctx.topic,
        partition=ctx.partition,
        offset=ctx.offset,
        reason=reason,
        detail=detail[:2000],
        raw_b64=base64.b64encode(raw[:DEAD_LETTER_RAW_MAX]).decode("ascii"),
        failed_at=failed_at,
        key_b64=base64.b64encode(ctx.key[:DEAD_LETTER_KEY_MAX]).decode("ascii") if ctx.key is not None else None,
        raw_size=len(raw),
        raw_sha256=hashlib.sha256(raw).hexdigest() if cut else None,
    )


# --- framing shifts: aggregation and alerts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AggregateContribution:
    """What one framed record adds to the aggregates (compacted topic ``aggregate-state``, keyed
    by the framed key). ``frame`` is ``None`` for a record that counts nothing (a reprint)."""

    SCHEMA_VERSION: typing.ClassVar[int] = 1

    key: str
    partition: int
    watch_id: str
    published_at: datetime
    frame: str | None
    segment_frames: dict[str, int]
    outlet: str | None = None
    title: str | None = None
    url: str | None = None
    passage: str | None = None
    score: float = 0.0
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """Counts of one watch x frame x time bucket from one framed-items partition (topic
    ``aggregates``). Values are absolute, so the latest row per ``aggregate_key`` wins; totals
    are the sum over partitions. ``frame`` ``*`` is the watch total, ``outlet`` ``*`` all outlets."""

    SCHEMA_VERSION: typing.ClassVar[int] = 1

    watch_id: str
    frame: str
    granularity: str
    bucket_start: datetime
    outlet: str
    partition: int
    items: int
    segments: int
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One item shown as evidence of an alert."""

    title: str | None
    url: str | None
    outlet: str | None
    passage: str | None
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """A framing shift worth telling someone about (topic ``alerts``, keyed by ``key``:
    ``watch:frame:window_start``), with the evidence behind it.

    Version 2 adds the change's ``kind`` (spike, shift, drift or emergent) and, for shifts and
    drifts, the estimated change point, the share before and after (with a 90% interval), the
    detector, its false-alarm rate and the detection delay; v1 records decode with defaults.
    Version 3 adds a shift's or drift's ``sensitivity`` (the level whose detector raised it; each
    level alerts on its own, keyed apart); spikes, emergent framings and v2 records have none."""

    SCHEMA_VERSION: typing.ClassVar[int] = 3

    key: str
    watch_id: str
    frame: str
    rule: str
    window_start: datetime
    window_end: datetime
    baseline_share: float
    observed_share: float
    observed_count: int
    window_items: int
    score: float
    detected_at: datetime
    top_items: tuple[AlertItem, ...] = ()
    kind: Literal["spike", "shift", "drift", "emergent"] = "spike"
    change_point: datetime | None = None
    share_before: float | None = None
    share_after: float | None = None
    share_after_low: float | None = None
    share_after_high: float | None = None
    detector: str | None = None
    false_alarm_rate_per_week: float | None = None
    delay_s: float | None = None
    schema_version: int = 3
    sensitivity: Sensitivity | None = None


def aggregate_key(row: AggregateRow) -> str:
    """Deterministic key of an aggregate row (one per watch, granularity, bucket, frame, outlet, partition)."""
    return "|".join(
        (row.watch_id, row.granularity, format_utc(row.bucket_start), row.frame, row.outlet, f"p{row.partition}")
    )


def alert_key(watch_id: str, frame: str, window_start: datetime, kind: str | None = None,
              sensitivity: str | None = None) -> str:
    """Deterministic key of the alert for one watch, frame and window; a shift's or drift's ends
    with its level and kind (``...:high:shift``), so compaction never folds two levels into one."""
    return ":".join((watch_id, frame, format_utc(window_start), *filter(None, (sensitivity, kind))))


__all__ = [
    "DECODE_REASONS",
    "MAX_DEPTH",
    "MAX_RECORD_BYTES",
    "SENSITIVITIES",
    "AggregateContribution",
    "AggregateRow",
    "Alert",
    "AlertItem",
    "DeadLetter",
    "FrameScore",
    "FramedItem",
    "FramedSegment",
    "ItemKind",
    "MessageContext",
    "Quote",
    "RawItem",
    "Sensitivity",
    "aggregate_key",
    "alert_key",
    "dead_letter",
    "decode",
    "encode",
    "field",
    "framed_key",
    "from_dict",
    "lone_surrogate",
    "stable_id",
    "to_dict",
    "too_deep",
]
