"""The aggregator's fast paths give what the plain ones give: JSON parsing with and without
orjson, batch bucketing against per-record sums, and the hand-written encodings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch import contracts
from framewatch.contracts import ANY, FramedItem
from framewatch.errors import DecodeError
from framewatch.processing.trends import codec as aggregate_codec
from framewatch.processing.trends.codec import (
    contribution_of,
    contribution_to_json,
    fast_contribution,
)
from framewatch.processing.trends.counts import GRANULARITIES, AggregateState
from tests.helpers.framed_records import T0, framed


def _segment_frame_raw(frame_literal: str) -> bytes:
    data = json.loads(contracts.encode(framed(1)))
    data["segments"][0]["frame"] = "@@"
    return json.dumps(data).replace('"@@"', frame_literal).encode()


def test_fast_decode_is_the_same_with_and_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _segment_frame_raw('"trust"')
    accelerated = fast_contribution(raw, 3)
    monkeypatch.setattr(aggregate_codec, "orjson", None)
    plain = fast_contribution(raw, 3)
    assert accelerated == plain and accelerated.segment_frames == {"trust": 1}


@pytest.mark.parametrize("literal", ["123456789012345678901234567890", "1.5", "7", "true", "[1]", "{}"])
@pytest.mark.parametrize("accelerated", [True, False])
def test_a_segment_frame_that_is_no_string_is_refused_with_and_without_orjson(
    literal: str, accelerated: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not accelerated:
        monkeypatch.setattr(aggregate_codec, "orjson", None)
    raw = _segment_frame_raw(literal)
    with pytest.raises(DecodeError):
        fast_contribution(raw, 3)
    with pytest.raises(DecodeError) as full:  # the canonical reason the stage dead-letters with
        contracts.decode(FramedItem, raw)
    assert full.value.reason == "invalid_field"


@pytest.mark.parametrize("title", ["Ünïcode \u2028 \"quoted\" \x01\n\t\U0001F600", "plain"])
@pytest.mark.parametrize("accelerated", [True, False])
def test_contribution_json_is_what_json_dumps_writes(title: str, accelerated: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not accelerated:
        monkeypatch.setattr(aggregate_codec, "orjson", None)
    c = contribution_of(framed(1, title=title, segments=(("a", None), (None, "5"))), 2)
    expected = json.dumps(
        {"key": c.key, "partition": c.partition, "watch_id": c.watch_id,
         "published_at": c.published_at.isoformat().replace("+00:00", "Z"), "frame": c.frame,
         "segment_frames": c.segment_frames, "outlet": c.outlet, "title": c.title, "url": c.url,
         "passage": c.passage, "score": c.score, "schema_version": c.schema_version},
        ensure_ascii=False, separators=(",", ":"),
    ).encode()
    assert contribution_to_json(c) == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["a", "b", None]), st.integers(-3000, 3000),
                          st.integers(0, 2), st.booleans()), min_size=1, max_size=30))
def test_batch_rows_match_per_record_sums(events: list[tuple[int, str | None, int, int, bool]]) -> None:
    """One batch's rows: one per bucket touched, in (watch, granularity, bucket, frame, outlet,
    partition) order, with the counts a per-record sum over the latest contributions gives."""
    batch = [
        contribution_of(framed(n, frame=f, at=T0 + timedelta(minutes=m), outlet=f"o{n % 2}",
                               segments=((f, None), (None, "emergent:1")) if two else None), p)
        for n, f, m, p, two in events
    ]
    state = AggregateState(by_outlet=True)
    rows = state.apply(batch).rows
    order = [(r.watch_id, r.granularity, int(r.bucket_start.timestamp()), r.frame, r.outlet, r.partition) for r in rows]
    assert order == sorted(set(order))
    latest = {c.key: c for c in batch}
    expected: dict[tuple[str, str, int, str, str, int], list[int]] = {}
    for c in latest.values():
        t = int(c.published_at.timestamp())
        for gran, step in GRANULARITIES.items():
            for outlet in (ANY, c.outlet or "unknown"):
                def bump(frame: str, items: int, segs: int, c=c, gran=gran, outlet=outlet, b=t - t % step) -> None:
                    acc = expected.setdefault((c.watch_id, gran, b, frame, outlet, c.partition), [0, 0])
                    acc[0] += items
                    acc[1] += segs
                bump(c.frame, 1, 0)
                bump(ANY, 1, sum(c.segment_frames.values()))
                for frame, n in c.segment_frames.items():
                    bump(frame, 0, n)
    got = {k: [r.items, r.segments] for k, r in zip(order, rows, strict=True)}
    # a record replaced in the same batch leaves its old buckets at zero
    assert {k: v for k, v in got.items() if v != [0, 0]} == {k: v for k, v in expected.items() if v != [0, 0]}


def test_row_encoding_matches_the_contract_for_made_and_foreign_rows() -> None:
    from datetime import UTC, datetime

    from framewatch.contracts import AggregateRow, aggregate_key
    from framewatch.processing.trends.codec import encode_row

    made = AggregateRow("w\u00e9", "emergent:3", "1h", datetime(2026, 11, 26, 9, tzinfo=UTC), "*", 4, 7, 19)
    odd = AggregateRow("w", "a", "5m", datetime(2026, 11, 26, 9, 0, 0, 250, tzinfo=UTC), "o", 0, 1, 1)
    for row in (made, odd):  # the second is not bucket-aligned: the plain path writes it
        key, value = encode_row(row)
        assert key == aggregate_key(row)
        assert json.loads(value) == json.loads(contracts.encode(row))
        assert contracts.decode(AggregateRow, value) == row
