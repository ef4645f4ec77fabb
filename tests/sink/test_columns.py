"""Building a frame column by column gives exactly what ``pl.DataFrame(rows, schema=...)`` gives:
for every table's real rows, and for random nested values with nulls and empty lists."""

from __future__ import annotations

from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.processing.sink.columns import frame
from framewatch.processing.sink.rows import DECODERS, SCHEMAS
from tests.helpers.framed_records import T0
from tests.sink.records import aggregate_value, alert_value, framed_value, raw_value

SCHEMA: dict[str, Any] = {
    "n": pl.Int64,
    "tags": pl.List(pl.Utf8),
    "items": pl.List(pl.Struct({"a": pl.Utf8, "b": pl.List(pl.Struct({"x": pl.Float64})), "c": pl.List(pl.Utf8)})),
    "one": pl.Struct({"a": pl.Utf8, "b": pl.List(pl.Struct({"x": pl.Float64})), "c": pl.List(pl.Utf8)}),
}
TEXT = st.none() | st.text(max_size=3)
INNER = st.fixed_dictionaries({"a": TEXT, "b": st.lists(st.fixed_dictionaries({"x": st.none() | st.floats(allow_nan=False)}), max_size=2),
                               "c": st.lists(TEXT, max_size=2)})
ROWS = st.lists(st.fixed_dictionaries({"n": st.none() | st.integers(-(2**63), 2**63 - 1), "tags": st.none() | st.lists(TEXT, max_size=3),
                                       "items": st.lists(INNER, max_size=3), "one": st.none() | INNER}), min_size=1, max_size=6)


def test_every_tables_rows_build_the_same_frame() -> None:
    values = {"raw-items": raw_value(1), "framed-items": framed_value(2), "aggregates": aggregate_value(3),
              "alerts": alert_value()}
    for topic, raw in values.items():
        table, decode = DECODERS[topic]
        rows = []
        for i in range(3):
            row = decode(raw)[1]
            row.update(_partition=i, _offset=i, _written_at=T0)
            rows.append(row)
        assert frame(rows, SCHEMAS[table]).equals(pl.DataFrame(rows, schema=SCHEMAS[table])), table


@settings(max_examples=150, deadline=None)
@given(rows=ROWS)
def test_random_nested_rows_build_the_same_frame(rows: list[dict[str, Any]]) -> None:
    built = frame(rows, SCHEMA)
    assert built.schema == pl.Schema(SCHEMA)
    assert built.to_dicts() == pl.DataFrame(rows, schema=SCHEMA).to_dicts()
