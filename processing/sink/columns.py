"""Rows to a polars frame column by column: nested lists of structs built from flat columns.

``pl.DataFrame(rows, schema=...)`` converts every nested dict one by one, about 120 us for a
framed item with 3 segments (their ``top`` lists of structs cost most). Here each nested list
is flattened into its elements' columns (fast, typed), built once, and regrouped per row with a
group-by on the row number: the same frame, 2-3x faster, which is most of the sink's budget.
"""

from __future__ import annotations

from typing import Any

import polars as pl

ROW = "__row"


def frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    """The rows as a frame with exactly *schema* (every key of the schema read from each row)."""
    return pl.DataFrame([column(name, [r[name] for r in rows], dtype) for name, dtype in schema.items()])


def column(name: str, values: list[Any], dtype: Any) -> pl.Series:
    """One column of *dtype* from Python values (None is null at any level)."""
    if isinstance(dtype, pl.List):
        return _list(name, values, dtype)
    if isinstance(dtype, pl.Struct):
        fields = [column(f.name, [None if v is None else v[f.name] for v in values], f.dtype) for f in dtype.fields]
        return _with_nulls(pl.DataFrame(fields, schema={f.name: f.dtype for f in dtype.fields}).to_struct(name), values)
    return pl.Series(name, values, dtype=dtype)


def _list(name: str, values: list[Any], dtype: pl.List) -> pl.Series:
    flat = [x for v in values if v is not None for x in v]
    child = column(name, flat, dtype.inner)
    rows = pl.Series(ROW, [i for i, v in enumerate(values) if v is not None for _ in range(len(v))], dtype=pl.UInt32)
    grouped = pl.DataFrame([rows, child]).group_by(ROW).agg(pl.col(name))
    every = pl.DataFrame({ROW: pl.arange(0, len(values), dtype=pl.UInt32, eager=True)})
    lists = every.join(grouped, on=ROW, how="left", maintain_order="left")[name]
    lists = lists.fill_null(pl.Series(name, [[]], dtype=dtype))  # rows without elements: empty lists
    return _with_nulls(lists.cast(dtype), values)


def _with_nulls(series: pl.Series, values: list[Any]) -> pl.Series:
    """*series* with null where the value was None (rare: skipped when there is none)."""
    if all(v is not None for v in values):
        return series
    missing = pl.Series([v is None for v in values])
    return pl.select(pl.when(missing).then(None).otherwise(series)).to_series().alias(series.name)
