"""Pure aggregation: bucketing by publication time, shares, re-delivery, replacement, merging."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch import contracts
from framewatch.contracts import ANY, AggregateRow, FramedItem, MessageContext
from framewatch.errors import DecodeError
from framewatch.kafka_io import Message
from framewatch.processing.trends.codec import (
    contribution_from_json,
    contribution_of,
    contribution_to_json,
    fast_contribution,
    row_key,
    row_to_json,
)
from framewatch.processing.trends.counts import (
    AggregateState,
    bucket_start,
    merge_partials,
    segment_frame,
    share_of_voice,
)
from framewatch.processing.trends.stage import decode_contributions
from tests.helpers.framed_records import T0, framed

S0 = int(T0.timestamp())


@pytest.mark.parametrize(
    ("ts", "gran", "start"),
    [
        (datetime(2026, 11, 26, 9, 7, 59, tzinfo=UTC), "5m", datetime(2026, 11, 26, 9, 5, tzinfo=UTC)),
        (datetime(2026, 11, 26, 9, 59, 59, tzinfo=UTC), "1h", datetime(2026, 11, 26, 9, tzinfo=UTC)),
        (datetime(2026, 11, 26, 23, 59, tzinfo=UTC), "1d", datetime(2026, 11, 26, tzinfo=UTC)),
        (datetime(2026, 11, 26, 10, 0, tzinfo=UTC), "1h", datetime(2026, 11, 26, 10, tzinfo=UTC)),
    ],
)
def test_bucket_start(ts: datetime, gran: str, start: datetime) -> None:
    assert bucket_start(ts, gran) == start


def test_segment_frame_prefers_codebook_then_emergent() -> None:
    assert segment_frame("trust", "7") == "trust"
    assert segment_frame(None, "7") == "emergent:7"
    assert segment_frame(None, "emergent:7") == "emergent:7"
    assert segment_frame(None, None) is None


def test_counts_by_publication_time_not_processing_time() -> None:
    state = AggregateState()
    late = framed(1, at=T0 - timedelta(days=3))  # back-filled: processed now, published 3 days ago
    state.apply([contribution_of(framed(0), 0), contribution_of(late, 0)])
    assert state.count("scs", "surveillance", "1h", S0) == 1
    assert state.count("scs", "surveillance", "1d", S0 - S0 % 86400 - 3 * 86400) == 1


def test_share_of_voice_and_segments() -> None:
    state = AggregateState()
    items = [framed(i, frame="surveillance") for i in range(3)] + [
        framed(9, frame="trust", segments=(("trust", None), ("surveillance", None), (None, "emergent:4")))
    ]
    state.apply([contribution_of(i, 0) for i in items])
    df = share_of_voice(state.frame()).filter(pl.col("granularity") == "1h")
    shares = dict(zip(df["frame"], df["share"], strict=True))
    assert shares == {"surveillance": 0.75, "trust": 0.25, "emergent:4": 0.0}
    assert state.totals[("scs", ANY, "1h", S0, "surveillance")] == [3, 4]
    assert state.totals[("scs", ANY, "1h", S0, ANY)] == [4, 6]


def test_redelivery_is_a_no_op_and_change_replaces() -> None:
    state = AggregateState()
    c = contribution_of(framed(1), 0)
    first = state.apply([c])
    again = state.apply([c])
    assert first.changed == [c] and again.changed == []
    assert state.count("scs", "surveillance", "5m", S0) == 1
    assert [r.items for r in again.rows if r.frame == "surveillance"] == [1, 1, 1]  # re-published, same values
    moved = contribution_of(framed(1, frame="trust"), 0)
    state.apply([moved])
    assert state.count("scs", "surveillance", "5m", S0) == 0
    assert state.count("scs", "trust", "5m", S0) == 1
    assert state.count("scs", ANY, "5m", S0) == 1


def test_reprints_count_nothing() -> None:
    state = AggregateState()
    state.apply([contribution_of(framed(1, duplicate_of="item0"), 0)])
    assert state.count("scs", ANY, "1h", S0) == 0


def test_unframed_item_counts_for_its_emergent_framing() -> None:
    c = contribution_of(framed(1, frame=None, segments=((None, "emergent:2"), (None, "emergent:2"))), 0)
    assert c.frame == "emergent:2" and c.segment_frames == {"emergent:2": 2}
    assert contribution_of(framed(2, frame=None, segments=()), 0).frame == "unframed"


def test_per_outlet_counts_only_when_configured() -> None:
    state = AggregateState(by_outlet=True)
    state.apply([contribution_of(framed(1, outlet="A"), 0), contribution_of(framed(2, outlet=None), 0)])
    assert state.count("scs", "surveillance", "1h", S0, outlet="A") == 1
    assert state.count("scs", "surveillance", "1h", S0, outlet="unknown") == 1
    assert state.count("scs", "surveillance", "1h", S0) == 2


def test_partials_of_partitions_merge_to_totals() -> None:
    items = [framed(i, frame="ab"[i % 2]) for i in range(10)]
    one = AggregateState()
    one_rows = one.apply([contribution_of(it, 0) for it in items]).rows
    a, b = AggregateState(), AggregateState()
    rows = a.apply([contribution_of(it, 1) for it in items[:4]]).rows
    rows += b.apply([contribution_of(it, 2) for it in items[4:]]).rows
    assert merge_partials(rows) == merge_partials(one_rows)


def test_contribution_json_round_trip_and_fast_decode_matches_full() -> None:
    item = framed(1, segments=(("surveillance", None), (None, "5")))
    c = contribution_of(item, 2)
    assert contribution_from_json(contribution_to_json(c)) == c
    assert fast_contribution(contracts.encode(item), 2) == c
    state = AggregateState()
    for row in state.apply([c]).rows:
        assert contracts.decode(AggregateRow, row_to_json(row)) == row
        assert json.loads(row_to_json(row)) == json.loads(contracts.encode(row))
        assert row_key(row) == contracts.aggregate_key(row)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"\xff", "not_utf8"), (b"{nope", "not_json"), (b"[]", "not_object"),
     (b'{"schema_version": 99}', "schema_too_new"), (b'{"key": "x"}', "invalid_field"),
     # a lone surrogate anywhere (escaped or as raw bytes) would fail at the first produce
     (contracts.encode(framed(1)).replace(b'"title":', b'"title":"\\udc80","t":', 1), "not_utf8"),
     (contracts.encode(framed(1)).replace(b'"title":', b'"title":"\xed\xb2\x80","t":', 1), "not_utf8"),
     # a segment frame or cluster that is no string (once a TypeError deep in the aggregation)
     (contracts.encode(framed(1)).replace(b'"frame":"surveillance","score"', b'"frame":7,"score"', 1), "invalid_field"),
     (contracts.encode(framed(1, frame=None, segments=((None, "emergent:1"),))).replace(b'"cluster":"emergent:1"', b'"cluster":[1]', 1), "invalid_field"),
     # nesting past the stack
     (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep")],
)
def test_undecodable_records_are_failures_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError):
        fast_contribution(raw, 0)
    msg = Message(MessageContext("t", 0, 5, b"k"), raw)
    oks, errs = decode_contributions([msg])
    assert oks == [] and [e.reason for e in errs] == [reason]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.sampled_from(["a", "b", "c"]), st.integers(0, 500)), max_size=40))
def test_any_delivery_order_with_repeats_gives_latest_per_key(events: list[tuple[int, str, int]]) -> None:
    state = AggregateState()
    latest: dict[int, tuple[str, int]] = {}
    for n, frame, minute in events:
        state.apply([contribution_of(framed(n, frame=frame, at=T0 + timedelta(minutes=minute)), 0)])
        latest[n] = (frame, minute)
    expected: dict[str, int] = {}
    for frame, _ in latest.values():
        expected[frame] = expected.get(frame, 0) + 1
    got = {f: sum(v[0] for k, v in state.totals.items() if k[2] == "1d" and k[4] == f) for f in "abc"}
    assert {f: n for f, n in got.items() if n} == expected


def test_records_are_frozen() -> None:
    c = contribution_of(framed(1), 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.frame = "x"  # type: ignore[misc]


def test_foreign_partials_complete_the_totals_and_demoted_partitions_stay_counted() -> None:
    items = [framed(i, frame="ab"[i % 2]) for i in range(10)]
    a, b = AggregateState(), AggregateState()
    rows_a = a.apply([contribution_of(it, 0) for it in items[:6]]).rows
    rows_b = b.apply([contribution_of(it, 1) for it in items[6:]]).rows
    a.merge_foreign(rows_b + rows_a, owned={0})  # its own rows come back too and are skipped
    b.merge_foreign(rows_a, owned={1})
    assert a.count("scs", ANY, "1h", S0) == b.count("scs", ANY, "1h", S0) == 10
    assert a.count("scs", "a", "5m", S0) == 5
    # a newer partial row of partition 1 replaces the older one
    rows_b2 = b.apply([contribution_of(framed(99, frame="a"), 1)]).rows
    a.merge_foreign(rows_b2, owned={0})
    assert a.count("scs", ANY, "1h", S0) == 11
    # partition 0 handed to another instance: still counted, contributions gone
    a.demote_partitions({0})
    assert a.count("scs", ANY, "1h", S0) == 11 and not a.contributions
    a.drop_partitions({0, 1})
    assert a.count("scs", ANY, "1h", S0) == 0


def test_framed_builder_round_trips() -> None:
    item = framed(1, segments=(("surveillance", None), (None, "emergent:3")))
    assert contracts.decode(FramedItem, contracts.encode(item)) == item
