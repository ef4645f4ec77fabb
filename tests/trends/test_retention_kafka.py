"""Bounded state on the real broker: an aggregator streaming eight days with a two-day
contribution horizon leaves only the kept contributions and the sealed days in ``aggregate-state``,
and a restart (the real restorer, then a real aggregator again) has exactly the counts of every
kept bucket, sealed days included."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import ANY, AggregateRow, FramedItem
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.processing.trends.counts import AggregateState, merge_partials
from framewatch.processing.trends.recovery import StateRestorer
from framewatch.processing.trends.retention import DAY_S, Horizons, Retention
from framewatch.settings import AGGREGATE_STATE, AGGREGATES, FRAMED_ITEMS, Settings
from framewatch.timeutil import parse_utc
from tests.helpers.aggregator import seed, wait_committed
from tests.helpers.framed_records import T0, framed
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

RETENTION = {"retention_5m_hours": 26, "retention_1h_days": 3, "retention_1d_days": 30,
             "contribution_retention_days": 2}
DAYS = 8


def day_items(d: int) -> list[FramedItem]:
    """Twelve items of day T0 - *d*, two hours apart, before T0's hour (the aggregator's clock)."""
    start = T0 - timedelta(days=d, hours=T0.hour)
    return [framed(f"d{d}.{i}", frame="ab"[i % 3 == 0], at=start + timedelta(hours=2 * i, minutes=3))
            for i in range(12) if d or 2 * i < T0.hour]


def state_view(reader: Callable[..., list], settings: Settings) -> dict[str, bytes]:
    """The compacted topic's meaning: the latest value per key, tombstones deleting."""
    latest: dict[str, bytes] = {}
    for key, value in reader(settings.topic(AGGREGATE_STATE)):
        if value == b"":  # the reader gives tombstones as b""
            latest.pop(key.decode(), None)
        else:
            latest[key.decode()] = value
    return latest


def test_a_restart_restores_only_kept_state_and_the_same_counts(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list],
) -> None:
    settings = settings_factory(batch_max_records=100, **RETENTION)
    framed_topic = topic_factory(settings, FRAMED_ITEMS)
    stop = threading.Event()
    thread = threading.Thread(target=run_aggregator, args=(settings, stop), kwargs={
        "serve_metrics": False, "registry": CollectorRegistry(), "clock": lambda: T0 + timedelta(minutes=59)})
    thread.start()
    records: list[FramedItem] = []
    try:
        for d in range(DAYS - 1, -1, -1):  # day by day, as a stream comes (stream time moves on)
            seed(settings, day_items(d))
            records += day_items(d)
            assert wait_committed(settings, group_id(settings), framed_topic, 60)
        # the tombstones of the last seals go out with the next (idle) output
        cutoff = int(T0.timestamp()) // DAY_S * DAY_S - 2 * DAY_S
        def only_kept() -> bool:
            view = state_view(topic_reader, settings)
            published = [json.loads(v)["published_at"] for k, v in view.items() if not k.startswith("sealed|")]
            return bool(published) and all(parse_utc(p).timestamp() >= cutoff for p in published)
        wait_until("only kept contributions in aggregate-state", only_kept, timeout_s=30, every_s=0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    view = state_view(topic_reader, settings)
    assert sum(1 for k in view if not k.startswith("sealed|")) == len(day_items(0)) + len(day_items(1)) + len(day_items(2))
    assert {k.split("|")[2] for k in view if k.startswith("sealed|")} == {str(cutoff - d * DAY_S) for d in range(1, 6)}

    # before: what the aggregator published, per kept bucket (merged over partitions)
    horizons = Horizons.from_settings(settings)
    stream_s = int(max(r.published_at for r in records).timestamp())
    kept_from = horizons.kept_from(stream_s)
    rows = [contracts.decode(AggregateRow, v) for _, v in topic_reader(settings.topic(AGGREGATES))]
    before = {(w, o, g, int(b.timestamp()), f): list(n) for (w, o, g, b, f), n in merge_partials(rows).items()
              if int(b.timestamp()) >= kept_from[g]}
    # after: the real restorer, on a fresh state
    state, retention = AggregateState(), Retention(horizons, wall_s=lambda: (T0 + timedelta(minutes=59)).timestamp())
    restorer = StateRestorer(settings, state, framed_topic, retention=retention)
    restorer.on_partitions_assigned([TopicPartition(framed_topic, p) for p in range(3)])
    assert {k: v for k, v in state.totals.items() if v != [0, 0]} == before
    assert len(state.contributions) == len(day_items(0)) + len(day_items(1)) + len(day_items(2))
    assert state.count("scs", ANY, "1d", cutoff - 5 * DAY_S) == 12  # a sealed day, counted exactly

    # and a real aggregator restarted on it counts every day, sealed ones included, once
    more = [framed("late-today", frame="a", at=T0 + timedelta(minutes=30))]
    seed(settings, more)
    registry = CollectorRegistry()
    expected = {f: float(n) for f, n in Counter(r.frame for r in records + more).items()}

    def framed_items() -> dict[str, float | None]:
        return {f: registry.get_sample_value("framewatch_framed_items_total", {"watch": "scs", "frame": f}) for f in "ab"}

    stop = threading.Event()
    thread = threading.Thread(target=run_aggregator, args=(settings, stop), kwargs={
        "serve_metrics": False, "registry": registry, "clock": lambda: T0 + timedelta(minutes=59)})
    thread.start()
    try:
        assert wait_committed(settings, group_id(settings), framed_topic, 60)
        try:
            wait_until("the restarted aggregator to count every day", lambda: framed_items() == expected, timeout_s=20)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {framed_items()} != {expected}") from None
    finally:
        stop.set()
        thread.join(timeout=30)
