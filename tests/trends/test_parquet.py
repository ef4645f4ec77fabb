"""Parquet sink: date partitions, idempotent per key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from framewatch.processing.trends.codec import contribution_of
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.parquet import ParquetSink, read_table, read_totals
from tests.helpers.framed_records import T0, framed


def test_parquet_partitions_by_date_and_is_idempotent_per_key(tmp_path: Path) -> None:
    state = AggregateState()
    sink = ParquetSink(tmp_path)
    batch = [contribution_of(framed(i, at=T0 + timedelta(hours=10 * i)), 0) for i in range(4)]
    applied = state.apply(batch)
    sink(applied.changed, applied.row_values)
    sink(applied.changed, applied.row_values)  # the same batch again (a re-read after a crash)
    dates = sorted(p.name for p in (tmp_path / "items").iterdir())
    assert dates == ["date=2026-11-26", "date=2026-11-27"]
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in (tmp_path / "items").glob("*/*"))
    items = read_table(tmp_path, "items")
    assert items.height == 4 and items["key"].n_unique() == 4
    changed = contribution_of(framed(0, frame="trust", at=T0), 0)  # a changed record replaces its row
    applied = state.apply([changed])
    sink(applied.changed, applied.row_values)
    items = read_table(tmp_path, "items")
    assert items.height == 4
    assert items.filter(items["key"] == changed.key)["frame"].to_list() == ["trust"]
    totals = read_totals(tmp_path)
    day = totals.filter((totals["granularity"] == "1d") & (totals["frame"] == "trust"))
    assert day["items"].to_list() == [1]


def test_parquet_aggregate_keys_are_the_contract_keys(tmp_path: Path) -> None:
    from framewatch.contracts import aggregate_key

    state = AggregateState(by_outlet=True)
    applied = state.apply([contribution_of(framed(i, at=T0 + timedelta(hours=13 * i), outlet="o"), i % 2) for i in range(5)])
    ParquetSink(tmp_path)(applied.changed, applied.row_values)
    stored = read_table(tmp_path, "aggregates")
    assert sorted(stored["key"].to_list()) == sorted(aggregate_key(r) for r in applied.rows)
    assert sorted(stored["date"].unique().to_list()) == ["2026-11-26", "2026-11-27", "2026-11-28"]
