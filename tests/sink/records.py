"""Records of every topic the sink stores, encoded as the pipeline produces them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from framewatch import contracts
from framewatch.contracts import AggregateRow, Alert, AlertItem
from tests.helpers.framed_records import T0, framed
from tests.helpers.raw_records import raw_item

WATCHES = ("scs", "w/ä b")  # the second needs percent-encoding in its folder name


def framed_value(n: int, watch: str = "scs", *, at: datetime = T0, title: str | None = None) -> bytes:
    """A framed item's bytes (two segments, one emergent)."""
    item = framed(n, watch=watch, at=at, segments=(("surveillance", None), (None, "c7")), title=title)
    return contracts.encode(item)


def raw_value(n: int, at: datetime = T0) -> bytes:
    """A raw item's bytes."""
    return contracts.encode(raw_item(item_id=f"item{n}", published_at=at))


def aggregate_value(n: int, watch: str = "scs", items: int = 3) -> bytes:
    """An aggregate row's bytes (bucket n hours after T0)."""
    row = AggregateRow(watch_id=watch, frame="surveillance", granularity="1h",
                       bucket_start=T0 + timedelta(hours=n), outlet="*", partition=0, items=items, segments=items * 2)
    return contracts.encode(row)


def alert_value(watch: str = "scs", detected: datetime = T0) -> bytes:
    """An alert's bytes with one evidence item."""
    alert = Alert(key=contracts.alert_key(watch, "surveillance", T0), watch_id=watch, frame="surveillance",
                  rule="share_spike", window_start=T0, window_end=T0 + timedelta(hours=1), baseline_share=0.2,
                  observed_share=0.6, observed_count=24, window_items=40, score=4.2, detected_at=detected,
                  top_items=(AlertItem("Spike story", "http://127.0.0.1/a", "Outlet A", "passage", T0),))
    return contracts.encode(alert)


def later(value: bytes, **changes: object) -> bytes:
    """A framed item's bytes with fields changed (the same key, a newer version)."""
    item = contracts.decode(contracts.FramedItem, value)
    return contracts.encode(dataclasses.replace(item, **changes))  # type: ignore[arg-type]


NEXT_DAY = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
