"""The sink's stage and compaction on a real store (local folder and SeaweedFS), no broker:
the contract's layout and columns, replays, bad records, compaction and its crash safety."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import polars as pl
import pytest

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.processing.sink import compact
from framewatch.processing.sink.layout import parse_batch_name
from framewatch.processing.sink.rows import SCHEMAS
from framewatch.processing.sink.stage import SinkStage
from framewatch.processing.sink.storage import StorageError
from tests.helpers.framed_records import T0
from tests.sink.conftest import Lake, message
from tests.sink.records import (
    NEXT_DAY,
    WATCHES,
    aggregate_value,
    alert_value,
    framed_value,
    later,
    raw_value,
)

V1_ALERT_FIELDS = {"key", "watch_id", "frame", "rule", "window_start", "window_end", "baseline_share", "observed_share",
                   "observed_count", "window_items", "score", "detected_at", "top_items", "schema_version"}
TOPICS = {"p.raw-items": "raw-items", "p.framed-items": "framed-items", "p.aggregates": "aggregates",
          "p.alerts": "alerts"}


def stage(lake: Lake) -> SinkStage:
    return SinkStage(lake.storage, TOPICS)


def test_a_batch_lands_in_the_contracts_folders_with_its_columns(lake: Lake) -> None:
    batch = [message("p.framed-items", 1, 10 + i, framed_value(i, WATCHES[i % 2])) for i in range(6)]
    batch += [message("p.framed-items", 1, 16, framed_value(6, at=NEXT_DAY))]
    batch += [message("p.raw-items", 0, 5 + i, raw_value(i)) for i in range(3)]
    batch += [message("p.aggregates", 2, 7, aggregate_value(0)), message("p.alerts", 0, 0, alert_value())]
    out = stage(lake)(batch)
    assert out.failures == [] and out.produce == []

    assert lake.files("framed_items") == [
        "framed_items/date=2026-11-26/watch=scs/b-00001-00000000000000000010-00000000000000000014.parquet",
        "framed_items/date=2026-11-26/watch=w%2F%C3%A4%20b/b-00001-00000000000000000011-00000000000000000015.parquet",
        "framed_items/date=2026-11-27/watch=scs/b-00001-00000000000000000016-00000000000000000016.parquet",
    ]
    assert lake.files("items") == ["items/date=2026-11-26/watch=_all/b-00000-00000000000000000005-00000000000000000007.parquet"]
    framed = lake.rows("framed_items").sort("_offset")
    assert framed["_offset"].to_list() == list(range(10, 17))
    assert set(framed["watch"]) == set(WATCHES)  # plain polars decodes the folder value back
    assert (framed["watch"] == framed["watch_id"]).all()
    for name, dtype in SCHEMAS["framed_items"].items():
        assert framed.schema[name] == dtype, name
    first = framed.row(0, named=True)
    assert first["key"] == "scs:item0" and first["published_at"] == T0 and first["_partition"] == 1
    assert first["frame_shares"] == [{"frame": "surveillance", "share": 1.0}]
    assert [s["cluster"] for s in first["segments"]] == [None, "c7"]
    assert lake.rows("items")["item_id"].to_list() == ["item0", "item1", "item2"]
    agg = lake.rows("aggregates").row(0, named=True)
    assert agg["key"] == "scs|1h|2026-11-26T09:00:00Z|surveillance|*|p0" and agg["items"] == 3
    alert = lake.rows("alerts").row(0, named=True)
    assert alert["top_items"][0]["title"] == "Spike story" and alert["top_items"][0]["published_at"] == T0


def test_a_shift_alert_keeps_its_evidence_and_a_version_1_alert_reads_as_a_spike(lake: Lake) -> None:
    old = contracts.decode(Alert, alert_value())
    shift = dataclasses.replace(old, key=old.key + ":shift", kind="shift", change_point=T0 - timedelta(hours=3),
                                share_before=0.2, share_after=0.31, share_after_low=0.27, share_after_high=0.35,
                                detector="binomial_cusum", false_alarm_rate_per_week=1 / 32, delay_s=7200.0)
    v1 = json.loads(alert_value())
    v1 = {k: v for k, v in v1.items() if k not in {f.name for f in dataclasses.fields(Alert)} - V1_ALERT_FIELDS}
    v1["schema_version"] = 1
    out = stage(lake)([message("p.alerts", 0, 0, json.dumps(v1).encode()), message("p.alerts", 0, 1, contracts.encode(shift))])
    assert out.failures == []
    rows = {r["key"]: r for r in lake.rows("alerts").to_dicts()}
    got = rows[shift.key]
    assert (got["kind"], got["change_point"], got["share_after_low"], got["detector"], got["delay_s"]) == (
        "shift", T0 - timedelta(hours=3), 0.27, "binomial_cusum", 7200.0)
    assert rows[old.key]["kind"] == "spike"  # decoded with the v2 default


def test_the_same_batch_again_replaces_its_files(lake: Lake) -> None:
    batch = [message("p.framed-items", p, 100 + i, framed_value(10 * p + i)) for p in range(3) for i in range(5)]
    stage(lake)(batch)
    files = lake.files("framed_items")
    stage(lake)(list(reversed(batch)))  # a replay after a crash: same offsets, any order
    assert lake.files("framed_items") == files
    assert lake.rows("framed_items").height == 15
    assert [parse_batch_name(f.rpartition("/")[2]) for f in files] == [(p, 100, 104) for p in range(3)]


def test_bad_records_are_failures_with_reasons_and_tombstones_are_skipped(lake: Lake) -> None:
    sink = stage(lake)
    batch = [
        message("p.framed-items", 0, 0, framed_value(1)),
        message("p.framed-items", 0, 1, b"{not json"),
        message("p.framed-items", 0, 2, b'{"key": "scs:x"}'),
        message("p.framed-items", 0, 3, None),
        message("p.alerts", 0, 0, framed_value(2)),  # a framed item is not an alert
        message("p.stranger", 0, 0, framed_value(3)),
    ]
    out = sink(batch)
    assert sorted((f.ctx.topic, f.ctx.offset, f.reason) for f in out.failures) == [
        ("p.alerts", 0, "invalid_field"), ("p.framed-items", 1, "not_json"), ("p.framed-items", 2, "invalid_field"),
        ("p.stranger", 0, "unknown_topic")]
    assert {f.raw for f in out.failures} >= {b"{not json", b'{"key": "scs:x"}'}
    assert sink.last is not None and (sink.last.rows, sink.last.tombstones, sink.last.failures) == (1, 1, 4)
    assert lake.rows("framed_items")["key"].to_list() == ["scs:item1"]
    assert lake.rows("alerts").is_empty()


def write_overlapping_batches(lake: Lake) -> None:
    """Ten batches of one folder, the later ones re-reading earlier offsets and newer versions."""
    sink = stage(lake)
    values = {o: framed_value(o % 12) for o in range(40)}
    values.update({o: later(values[o], title=f"v{o}") for o in range(12, 40)})
    for first in range(0, 40, 4):
        sink([message("p.framed-items", 0, o, values[o]) for o in range(max(0, first - 2), first + 4)])


def test_compaction_merges_a_folders_files_and_readers_see_each_key_once(lake: Lake) -> None:
    write_overlapping_batches(lake)
    before = lake.latest("framed_items")
    assert len(lake.files("framed_items")) == 10 and lake.rows("framed_items").height > 40

    done = compact.compact_once(lake.storage, min_files=4)
    assert [(c.replaced, c.rows) for c in done] == [(10, 12)]
    files = lake.files("framed_items")
    assert len(files) == 1 and files[0].rpartition("/")[2].startswith("c-")
    after = lake.latest("framed_items")
    assert after.height == 12 and after["key"].n_unique() == 12
    assert after.drop("date", "watch").sort("key").equals(before.drop("date", "watch").sort("key"))
    assert sorted(after["title"].to_list()) == sorted(f"v{o}" for o in range(28, 40))
    assert compact.compact_once(lake.storage, min_files=4) == []  # one file: nothing to do


def test_a_compaction_that_crashes_before_deleting_leaves_each_key_once(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    write_overlapping_batches(lake)
    expected = lake.latest("framed_items").drop("date", "watch").sort("key")
    deletes: list[str] = []

    def crash_after_two(path: str) -> None:
        if len(deletes) == 2:
            raise StorageError("crash")
        deletes.append(path)
        real_delete(path)

    real_delete = lake.storage.delete
    monkeypatch.setattr(lake.storage, "delete", crash_after_two)
    assert compact.compact_once(lake.storage, min_files=4) == []  # logged, not raised
    monkeypatch.undo()
    files = lake.files("framed_items")
    assert len(files) == 9 and sum(f.rpartition("/")[2].startswith("c-") for f in files) == 1  # both kinds at once
    assert lake.latest("framed_items").drop("date", "watch").sort("key").equals(expected)

    done = compact.compact_once(lake.storage, min_files=4)  # the next round merges the leftovers
    assert [c.replaced for c in done] == [9] and len(lake.files("framed_items")) == 1
    assert lake.latest("framed_items").drop("date", "watch").sort("key").equals(expected)


def test_rows_read_by_plain_polars_have_the_contract_dtypes(lake: Lake) -> None:
    stage(lake)([message("p.raw-items", 0, 0, raw_value(1)), message("p.aggregates", 0, 0, aggregate_value(1)),
                 message("p.alerts", 0, 0, alert_value())])
    for table in ("items", "aggregates", "alerts"):
        rows = lake.rows(table)
        assert {k: rows.schema[k] for k in SCHEMAS[table]} == SCHEMAS[table]
        assert rows.schema["_written_at"] == pl.Datetime("us", "UTC")
