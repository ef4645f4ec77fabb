"""Bounded aggregator state, pure: what the retention step drops, seals and tombstones, that kept
buckets keep their counts, the too_late outcome, and restores from the state records (also
across a crash between a seal and its tombstones)."""

from __future__ import annotations

from datetime import timedelta

import pydantic
import pytest

from framewatch import contracts
from framewatch.contracts import ANY, FramedItem, MessageContext
from framewatch.kafka_io import Message, Outgoing
from framewatch.processing.trends.counts import AggregateState, BucketKey
from framewatch.processing.trends.retention import (
    DAY_S,
    TOO_LATE,
    Horizons,
    Retention,
    SealedDay,
    key_digest,
    pack_digests,
    unpack_digests,
)
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from framewatch.settings import Settings
from tests.helpers.framed_records import T0, framed

STATE = "state"
HORIZONS = Horizons({"5m": 26 * 3600, "1h": 3 * DAY_S, "1d": 30 * DAY_S}, contribution_days=2)
S0 = int(T0.timestamp())
DAY0 = S0 - S0 % DAY_S


class Driver:
    """The real stage over framed records, one batch per call, with the state topic it writes
    kept as a list of (key, value) records, as the compacted topic would read before cleaning."""

    def __init__(self, horizons: Horizons | None = HORIZONS) -> None:
        self.state = AggregateState()
        self.retention = Retention(horizons, wall_s=lambda: S0 + 400 * DAY_S) if horizons else None
        self.stage = AggregateStage(
            self.state, SpikeDetector(SpikeConfig()), state_topic=STATE, aggregates_topic="aggregates",
            alerts_topic="alerts", clock=lambda: T0, retention=self.retention,
        )
        self.topic: list[tuple[bytes, bytes | None]] = []
        self.outputs: list[list[Outgoing]] = []
        self.offset = 0

    def feed(self, records: list[FramedItem]) -> list[str]:
        """One batch (partition = item number % 2); returns the reasons of its dead letters."""
        batch = []
        for r in records:
            self.offset += 1
            batch.append(Message(MessageContext("framed", int(r.item_id[4:]) % 2, self.offset), contracts.encode(r)))
        out = self.stage(batch)
        state_out = [o for o in out.produce if o.topic == STATE]
        self.outputs.append(state_out)
        self.topic += [(o.key.encode(), o.value) for o in state_out]
        return [f.reason for f in out.failures]


def days_of_items(days: int, per_day: int = 24) -> list[list[FramedItem]]:
    """Batches of one day each (one item an hour), oldest first, ending with T0's day; frames
    a/b alternate."""
    out = []
    for d in range(days - 1, -1, -1):
        base = T0 - timedelta(days=d, hours=T0.hour) + timedelta(minutes=7)
        out.append([framed(d * per_day + i, frame="ab"[i % 2], at=base + timedelta(hours=i))
                    for i in range(per_day)])
    return out


def kept_counts(state: AggregateState) -> dict[BucketKey, list[int]]:
    return {k: v for k, v in state.totals.items() if v != [0, 0]}


def test_past_the_horizon_days_are_sealed_their_contributions_tombstoned_next_and_counts_stay() -> None:
    driver, reference = Driver(), Driver(horizons=None)
    for batch in days_of_items(6):
        driver.feed(batch)
        reference.feed(batch)
    cutoff = driver.retention.cutoff() if driver.retention else 0
    assert cutoff == DAY0 - 2 * DAY_S
    kept = driver.state.contributions
    assert kept and all(c.published_at.timestamp() >= cutoff for c in kept.values())
    assert len(reference.state.contributions) == 6 * 24 and len(kept) == 3 * 24
    # every kept bucket has the count it would have without retention; 5 min buckets past 26 h are gone
    kept_from = HORIZONS.kept_from(DAY0 + 23 * 3600 + 7 * 60)
    expected = {k: v for k, v in kept_counts(reference.state).items() if k[3] >= kept_from[k[2]]}
    assert kept_counts(driver.state) == expected
    assert driver.state.count("scs", ANY, "1d", DAY0 - 5 * DAY_S) == 24  # a sealed day, still counted
    assert not any(k[2] == "5m" and k[3] < DAY0 - 3 * 3600 for k in driver.state.totals)
    # each day leaving the contribution horizon: its seals in one output, its tombstones in the next
    sealed = [(i, o.key) for i, out in enumerate(driver.outputs) for o in out if o.key.startswith("sealed|")]
    tombstoned = [(i, o.key) for i, out in enumerate(driver.outputs) for o in out if o.value is None]
    assert sorted(k for _, k in sealed) == sorted(f"sealed|p{p}|{DAY0 - d * DAY_S}|scs" for p in (0, 1) for d in (3, 4, 5))
    pending = driver.retention.pending if driver.retention else []
    assert pending and {k for _, k in tombstoned} | set(pending) == set(reference.state.contributions) - set(kept)
    for i, key in tombstoned:
        day = next(c for c in reference.state.contributions.values() if c.key == key)
        seal_at = min(j for j, k in sealed if k.startswith(f"sealed|p{day.partition}|{int(day.published_at.timestamp()) // DAY_S * DAY_S}|"))
        assert i == seal_at + 1


def test_buckets_leave_memory_at_their_granularity_horizon_and_expired_seals_are_tombstoned() -> None:
    driver = Driver()
    first = [framed(0, frame="old", at=T0 - timedelta(days=45))]
    driver.feed(first)
    driver.feed([framed(2, frame="a", at=T0 - timedelta(days=10))])  # seals day -45, past 30 days: dropped
    assert driver.state.count("scs", "old", "1d", DAY0 - 45 * DAY_S) == 0
    assert driver.state.count("scs", "a", "1d", DAY0 - 10 * DAY_S) == 1
    driver.feed([framed(4, frame="a", at=T0)])
    assert driver.state.count("scs", "a", "1d", DAY0 - 10 * DAY_S) == 1  # sealed, still within 30 days
    assert driver.state.count("scs", "a", "1h", S0 - 10 * DAY_S) == 0  # hours kept 3 days
    assert "old" not in driver.state.frames["scs"] and ("scs", "old") not in driver.state.first_seen
    sealed = {o.key for out in driver.outputs for o in out if o.key.startswith("sealed|")}
    assert sealed == {f"sealed|p0|{DAY0 - 10 * DAY_S}|scs"}  # day -45 was past the daily horizon already
    tombstones = {o.key for out in driver.outputs for o in out if o.value is None}
    assert "scs:item0" in tombstones and (driver.retention.pending if driver.retention else []) == ["scs:item2"]
    driver.feed([framed(6, frame="a", at=T0 + timedelta(days=25))])
    assert f"sealed|p0|{DAY0 - 10 * DAY_S}|scs" in {o.key for o in driver.outputs[-1] if o.value is None}


def test_a_record_older_than_the_contribution_horizon_is_counted_once_into_its_sealed_day() -> None:
    driver = Driver()
    driver.feed([framed(0, at=T0)])
    # a feed's first poll lists last week's items: counted, though their day is before the cutoff
    old = framed(2, frame="late", at=T0 - timedelta(days=3))
    within = framed(4, frame="recent", at=T0 - timedelta(days=1, hours=12))  # 5 min buckets gone, hours kept
    assert driver.feed([old, within]) == []
    assert driver.state.count("scs", "late", "1d", DAY0 - 3 * DAY_S) == 1
    assert "scs:item2" not in driver.state.contributions  # in its seal, not in memory
    seal_key = f"sealed|p0|{DAY0 - 3 * DAY_S}|scs"
    assert seal_key in {o.key for o in driver.outputs[-1] if o.value is not None}
    assert "scs:item2" not in {o.key for o in driver.outputs[-1]}  # never written as a contribution
    hour = S0 - 36 * 3600
    assert driver.state.count("scs", "recent", "1h", hour) == 1 and driver.state.count("scs", "recent", "5m", hour) == 0
    # its re-delivery (and a second new record of that day) after a restart from the topic
    state, retention = restored(driver, driver.topic)
    again = AggregateStage(state, SpikeDetector(SpikeConfig()), state_topic=STATE, aggregates_topic="aggregates",
                           alerts_topic="alerts", clock=lambda: T0, retention=retention)
    out = again([Message(MessageContext("framed", 0, 99), contracts.encode(old)),
                 Message(MessageContext("framed", 0, 100), contracts.encode(framed(6, frame="late", at=T0 - timedelta(days=3))))])
    assert out.failures == []
    assert state.count("scs", "late", "1d", DAY0 - 3 * DAY_S) == 2  # the new one added, the old one not again
    # a re-delivery of a record sealed by the horizon moving is skipped too
    driver.feed([framed(8, frame="c", at=T0 + timedelta(days=3))])
    assert driver.feed([framed(0, at=T0)]) == []
    assert driver.state.count("scs", "surveillance", "1d", DAY0) == 1


def test_a_record_older_than_the_daily_horizon_is_dead_lettered_too_late() -> None:
    driver = Driver()
    driver.feed([framed(0, at=T0)])
    assert driver.feed([framed(2, frame="ancient", at=T0 - timedelta(days=31))]) == [TOO_LATE]
    assert driver.state.count("scs", "ancient", "1d", DAY0 - 31 * DAY_S) == 0


def test_key_digests_are_fixed_across_processes() -> None:
    # a seal written by one process is read by another: the digest must not depend on hash salting
    assert key_digest("scs:item2") == 0xD5846A2EE4672C07  # blake2b-64 of the key, computed once
    assert unpack_digests(pack_digests([3, 1, 2])).tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        unpack_digests("AAAA")


def test_stream_time_never_passes_the_wall_clock() -> None:
    retention = Retention(HORIZONS, wall_s=lambda: float(S0))
    retention.advance([S0 + 80 * 365 * DAY_S])  # an item dated decades ahead
    assert retention.stream_s == S0


def restored(driver: Driver, records: list[tuple[bytes, bytes | None]]) -> tuple[AggregateState, Retention]:
    state, retention = AggregateState(), Retention(HORIZONS, wall_s=lambda: S0 + 400 * DAY_S)
    retention.install(state, retention.collect(records, {0, 1}))
    return state, retention


def test_a_restore_reads_only_kept_state_and_gives_the_same_counts() -> None:
    driver = Driver()
    for batch in days_of_items(6):
        driver.feed(batch)
    state, retention = restored(driver, driver.topic)
    assert kept_counts(state) == kept_counts(driver.state)
    assert set(state.contributions) == set(driver.state.contributions)
    assert retention.stream_s == driver.retention.stream_s if driver.retention else False
    assert retention.step(state).seals == []  # nothing left to seal


def test_a_crash_between_a_seal_and_its_tombstones_restores_the_seal_not_a_partial_day() -> None:
    driver = Driver()
    for batch in days_of_items(5):
        driver.feed(batch)
    # the last day's seals went out, their tombstones were never produced; some of the day's
    # contributions are still in the topic
    assert any(o.key.startswith("sealed|") for o in driver.outputs[-1])
    pending = driver.retention.pending if driver.retention else []
    assert pending
    state, retention = restored(driver, driver.topic)
    assert kept_counts(state) == kept_counts(driver.state)
    assert sorted(retention.step(state).tombstones) == sorted(pending)  # tombstoned again


def test_a_crash_before_a_seal_was_acknowledged_restores_from_the_contributions() -> None:
    driver = Driver()
    for batch in days_of_items(5):
        driver.feed(batch)
    lost = {o.key for o in driver.outputs[-1] if o.key.startswith("sealed|")}
    records = [(k, v) for k, v in driver.topic if k.decode() not in lost]
    state, retention = restored(driver, records)
    assert kept_counts(state) == kept_counts(driver.state)
    again = retention.step(state)
    assert {k for k, _ in again.seals} == lost  # sealed again at the next step
    assert retention.step(state).tombstones == (driver.retention.pending if driver.retention else [])


def test_sealed_day_round_trips_and_bad_state_records_are_counted_and_skipped() -> None:
    s = SealedDay(1, "scs", DAY0, S0, (("1d", DAY0, ANY, ANY, 3, 4), ("1h", S0, "a", ANY, 2, 2)))
    import json
    assert SealedDay.from_dict(json.loads(s.to_json())) == s
    loaded = Retention(HORIZONS).collect([(b"x", b"{not json"), (b"y", b'{"cells": [["9y", 0, "a", "*", 1, 1]]}'),
                                          (s.key.encode(), s.to_json())], {1})
    assert loaded.undecodable == 2 and list(loaded.sealed) == [s.key]


def test_settings_refuse_an_hourly_horizon_shorter_than_the_spike_baseline() -> None:
    with pytest.raises(pydantic.ValidationError, match="spike baseline"):
        Settings(retention_1h_days=3, spike_baseline_hours=100)
    with pytest.raises(pydantic.ValidationError, match="must not shrink"):
        Settings(retention_1h_days=20, retention_1d_days=10)
    assert Horizons.from_settings(Settings()).contribution_days == 7
