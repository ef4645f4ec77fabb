"""The sink's fast decoder agrees with ``contracts.decode``: the same rows for good records, the
same refusal (and reason) for bad ones, including random field mutations (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch import contracts
from framewatch.contracts import AggregateRow, Alert, FramedItem, RawItem
from framewatch.errors import DecodeError
from framewatch.processing.sink.fastdecode import Refused, decode_row
from framewatch.processing.sink.rows import fields_of, record_row
from tests.sink.records import aggregate_value, alert_value, framed_value, raw_value

GOOD = [(RawItem, raw_value(1)), (FramedItem, framed_value(2)), (AggregateRow, aggregate_value(3)), (Alert, alert_value())]


def slow(record_type: type, raw: bytes) -> dict[str, Any] | str:
    """The full decoder's row, or its refusal reason."""
    try:
        return fields_of(contracts.decode(record_type, raw))
    except DecodeError as exc:
        return exc.reason


def fast(record_type: type, raw: bytes) -> dict[str, Any] | str:
    """The sink's row (fast path with fallback), or its refusal reason."""
    try:
        return record_row(record_type, raw)
    except DecodeError as exc:
        return exc.reason


@pytest.mark.parametrize(("record_type", "raw"), GOOD, ids=lambda v: getattr(v, "__name__", "raw"))
def test_good_records_give_the_full_decoders_rows_on_the_fast_path(record_type: type, raw: bytes) -> None:
    assert decode_row(record_type, raw) == slow(record_type, raw)


def mutated(raw: bytes, **fields: Any) -> bytes:
    data = json.loads(raw)
    data.update(fields)
    return json.dumps(data).encode()


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD = [
    b"{not json", b"[1, 2]", b"\xff\xfe", mutated(framed_value(1), schema_version=9),
    mutated(framed_value(1), kind="podcast"), mutated(framed_value(1), published_at=12),
    mutated(framed_value(1), frame_shares={"a": "x"}), mutated(framed_value(1), segments=[{"index": True}]),
    mutated(framed_value(1), key=None), mutated(aggregate_value(1), items=1.5),
    mutated(framed_value(1), extra=nested(40)),
    framed_value(1).replace(b'"Title 1"', b'"\\ud800"'),
]


@pytest.mark.parametrize("raw", BAD)
def test_bad_records_are_refused_with_the_full_decoders_reason(raw: bytes) -> None:
    record_type = AggregateRow if b"granularity" in raw else FramedItem
    expected = slow(record_type, raw)
    assert isinstance(expected, str)
    assert fast(record_type, raw) == expected
    with pytest.raises((Refused, ValueError, TypeError)):
        decode_row(record_type, raw)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)
FIELDS = sorted(json.loads(framed_value(1)))


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from([*FIELDS, "segments.0.frame", "segments.0.top", "unknown"]), value=JSON)
def test_any_mutation_of_a_field_is_judged_alike(field: str, value: Any) -> None:
    data = json.loads(framed_value(1, title="T"))
    if field.startswith("segments.0."):
        data["segments"][0][field.rpartition(".")[2]] = value
    else:
        data[field] = value
    raw = json.dumps(data).encode()
    assert fast(FramedItem, raw) == slow(FramedItem, raw)
