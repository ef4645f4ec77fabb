"""Parquet sink (date partitions, idempotent per key) and the scrape-time metrics collector."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from framewatch.metrics import FramingCollector, FramingMetrics
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


def test_collector_computes_shares_scores_and_bounded_emergent_labels() -> None:
    state = AggregateState()
    cs = [contribution_of(framed(i, frame="a" if i < 3 else "b", at=T0 + timedelta(minutes=i)), 0) for i in range(4)]
    cs += [contribution_of(framed(f"e{k}.{j}", frame=None, segments=((None, f"emergent:{k}"),),
                                  at=T0 + timedelta(minutes=5)), 1)
           for k in range(4) for j in range(k + 1)]
    state.apply(cs)
    registry = CollectorRegistry()
    FramingMetrics(registry)
    registry.register(FramingCollector(
        state.frame, lambda: {("scs", "a"): (2.5, 0.2)}, clock=lambda: T0.timestamp() + 600, max_emergent=2,
    ))
    g = registry.get_sample_value
    assert g("framewatch_framed_items_total", {"watch": "scs", "frame": "a"}) == 3
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "a", "window": "1h"}) == 3 / 14
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "1d"}) == 1 / 14
    assert g("framewatch_spike_score", {"watch": "scs", "frame": "a"}) == 2.5
    assert g("framewatch_frame_baseline_share", {"watch": "scs", "frame": "a"}) == 0.2
    # four emergent framings, only the two largest are labels
    assert g("framewatch_emergent_frames", {"watch": "scs"}) == 2
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:3"}) == 4
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:2"}) == 3
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:0"}) is None
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "emergent:0", "window": "1h"}) is None


def test_collector_outlet_label_only_when_configured() -> None:
    state = AggregateState(by_outlet=True)
    state.apply([contribution_of(framed(1, outlet="A"), 0), contribution_of(framed(2, outlet="B", frame="b"), 0)])
    registry = CollectorRegistry()
    registry.register(FramingCollector(state.frame, dict, clock=lambda: T0.timestamp() + 60, by_outlet=True))
    g = registry.get_sample_value
    assert g("framewatch_framed_items_total", {"watch": "scs", "frame": "surveillance", "outlet": "A"}) == 1
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "5m", "outlet": "all"}) == 0.5
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "5m", "outlet": "B"}) == 1.0


def test_parquet_aggregate_keys_are_the_contract_keys(tmp_path: Path) -> None:
    from framewatch.contracts import aggregate_key

    state = AggregateState(by_outlet=True)
    applied = state.apply([contribution_of(framed(i, at=T0 + timedelta(hours=13 * i), outlet="o"), i % 2) for i in range(5)])
    ParquetSink(tmp_path)(applied.changed, applied.row_values)
    stored = read_table(tmp_path, "aggregates")
    assert sorted(stored["key"].to_list()) == sorted(aggregate_key(r) for r in applied.rows)
    assert sorted(stored["date"].unique().to_list()) == ["2026-11-26", "2026-11-27", "2026-11-28"]
