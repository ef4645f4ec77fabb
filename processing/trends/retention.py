"""Bounded aggregator state: what is kept, for how long, and how a restart finds it again.

Time here is *stream time*: the newest publication time the aggregator has seen, never past the
wall clock. Not the wall clock alone, because a back-fill of last year's items (read in order)
must aggregate like a live stream instead of being dropped on arrival, and tests and benchmarks
replay fixed dates; and capped by the wall clock, because one item dated 2099 must not expire
everything. Every horizon is measured back from it:

* buckets: 5 min ones for ``retention_5m_hours``, hourly ones ``retention_1h_days``, daily ones
  ``retention_1d_days``; older buckets leave memory (own counts, other instances' partials and
  the totals alike), swept once per stream hour;
* contributions (the per-record map that makes re-delivery idempotent) for
  ``contribution_retention_days`` whole days. When the cutoff passes a day, the counts that day's
  contributions sum to are *sealed*: one :class:`SealedDay` record per (partition, day, watch) to
  the compacted ``aggregate-state`` topic with every kept cell of that day, and the day's
  contributions leave memory. Their tombstones go out with the *next* stage output, once the
  broker has acknowledged the seal: a crash between the two then leaves the seal and (some of)
  the contributions, and a restore trusts the seal, never a partly deleted day.

A record published before the contribution cutoff is normal (a feed's first poll lists last
month's items; a watch is added late) and is counted into its day's seal: every seal keeps a 64-bit
digest of each record key it counts (8 bytes a record, not a contribution's ~1.8 kB), so a record
seen for the first time is added to the seal (a new seal record goes out with the batch, so a
crash re-delivers it and finds it counted), and a re-delivery of one already counted is skipped,
counted in ``aggregate_records_skipped_total{reason="already_sealed"}``, never counted twice. A
change to a record of a sealed day is skipped likewise (its old contribution is gone, so it could
not be taken back). Only a record older than the daily horizon, whose buckets are gone, is
dead-lettered as ``too_late``.

A restore (:meth:`Retention.collect`, then :meth:`Retention.install`) keeps the latest record per
key (tombstones delete), takes each sealed day's cells as they are, skips the contributions of
sealed days (tombstoning them again) and rebuilds every other bucket from the contributions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from framewatch.contracts import BUCKETS, AggregateContribution
from framewatch.processing.trends.codec import contribution_from_dict
from framewatch.processing.trends.counts import AggregateState, Applied
from framewatch.settings import Settings

log = logging.getLogger(__name__)

TOO_LATE = "too_late"  # dead-letter reason of a record older than the daily horizon
ALREADY_SEALED = "already_sealed"  # skip reason of a re-delivered record of a sealed day
DAY_S = BUCKETS["1d"]
HOUR_S = BUCKETS["1h"]
# one cell of a sealed day: (granularity, bucket start s, frame, outlet, items, segments)
Cell = tuple[str, int, str, str, int, int]
Group = tuple[int, int, str]  # (partition, day start s, watch)


def key_digest(key: str) -> int:
    """64-bit digest of a record key, the same in every process (blake2b, never ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def pack_digests(digests: Iterable[int]) -> str:
    """Sorted digests as base64 of big-endian 8-byte words (11 characters a record)."""
    return base64.b64encode(b"".join(d.to_bytes(8, "big") for d in sorted(digests))).decode()


def unpack_digests(text: str) -> array[int]:
    """:func:`pack_digests` undone, sorted; raises ValueError on bad input."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError("seen digests are not 8-byte words")
    return array("Q", sorted(int.from_bytes(raw[i:i + 8], "big") for i in range(0, len(raw), 8)))


def _holds(sorted_digests: array[int], digest: int) -> bool:
    i = bisect_left(sorted_digests, digest)
    return i < len(sorted_digests) and sorted_digests[i] == digest


@dataclass(frozen=True, slots=True)
class Horizons:
    """How far behind stream time each part of the state is kept."""

    bucket_s: dict[str, int]  # granularity -> seconds of buckets kept
    contribution_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Horizons:
        """The horizons the settings give (see their descriptions for the defaults' reasons)."""
        return cls(
            {"5m": settings.retention_5m_hours * HOUR_S, "1h": settings.retention_1h_days * DAY_S,
             "1d": settings.retention_1d_days * DAY_S},
            settings.contribution_retention_days,
        )

    def contribution_cutoff(self, now_s: int) -> int:
        """Contributions published before this day boundary are sealed and dropped."""
        return now_s - now_s % DAY_S - self.contribution_days * DAY_S

    def kept_from(self, now_s: int) -> dict[str, int]:
        """Earliest bucket start kept per granularity (moves once per stream hour)."""
        hour = now_s - now_s % HOUR_S
        return {g: hour - s - (hour - s) % BUCKETS[g] for g, s in self.bucket_s.items()}


@dataclass(frozen=True, slots=True)
class SealedDay:
    """The absolute counts of one framed-items partition, day and watch, once the day's
    contributions are dropped (compacted ``aggregate-state``, key :attr:`key`)."""

    SCHEMA_VERSION: ClassVar[int] = 2  # 2: ``seen``

    partition: int
    watch_id: str
    day_s: int
    stream_s: int  # the sealer's stream time: a restore never goes back behind it
    cells: tuple[Cell, ...]
    seen: str = ""  # pack_digests of every record key counted in the cells

    @property
    def key(self) -> str:
        """State-topic key (never a framed key: watch ids have no ``|``)."""
        return sealed_key(self.partition, self.day_s, self.watch_id)

    def to_json(self) -> bytes:
        """Compact JSON (``cells`` tells it from a contribution)."""
        return json.dumps({"partition": self.partition, "watch_id": self.watch_id, "day_s": self.day_s,
                           "stream_s": self.stream_s, "cells": self.cells, "seen": self.seen,
                           "schema_version": self.SCHEMA_VERSION}, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SealedDay:
        """Decode :meth:`to_json`'s object; raises ValueError/TypeError/KeyError on bad input."""
        cells = tuple((str(g), int(b), str(f), str(o), int(i), int(s)) for g, b, f, o, i, s in d["cells"])
        if any(c[0] not in BUCKETS for c in cells):
            raise ValueError("unknown granularity")
        seen = str(d.get("seen", ""))  # absent in version 1: nothing known counted
        unpack_digests(seen)
        return cls(int(d["partition"]), str(d["watch_id"]), int(d["day_s"]), int(d["stream_s"]), cells, seen)


def sealed_key(partition: int, day_s: int, watch: str) -> str:
    """Key of the sealed day of (*partition*, *day_s*, *watch*)."""
    return f"sealed|p{partition}|{day_s}|{watch}"


@dataclass(slots=True)
class Expired:
    """State records one retention step produces: seals (key, JSON) and tombstone keys."""

    seals: list[tuple[str, bytes]] = field(default_factory=list)
    tombstones: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Admitted:
    """One batch applied under the horizons (indices are positions in the batch)."""

    live: Applied  # records within the contribution horizon: their contributions are state records
    late: Applied  # records before it, counted into their day's seal
    seals: list[tuple[str, bytes]]  # the seals the late records changed
    already_counted: list[int]  # re-deliveries of records their sealed day counts: skipped
    expired: list[int]  # records older than the daily horizon: too_late


@dataclass(slots=True)
class Loaded:
    """What a restore read for its partitions: latest contributions and sealed days."""

    contributions: dict[str, AggregateContribution] = field(default_factory=dict)
    sealed: dict[str, SealedDay] = field(default_factory=dict)
    undecodable: int = 0


def _day(c: AggregateContribution) -> int:
    s = int(c.published_at.timestamp())
    return s - s % DAY_S


class Retention:
    """The retention step over one :class:`AggregateState` (see the module docstring)."""

    def __init__(self, horizons: Horizons, wall_s: Callable[[], float] | None = None) -> None:
        self.horizons = horizons
        self.wall_s = wall_s
        self.stream_s = 0  # 0: nothing seen yet, nothing expires
        self.pending: list[str] = []  # tombstones whose seals the broker is acknowledging now
        self.deferred: list[str] = []  # tombstones of seals this batch writes: pending at its end
        self.sealed: dict[Group, str] = {}  # (partition, day, watch) -> key, kept days
        self.seen: dict[Group, array[int]] = {}  # sealed group -> sorted digests of its record keys
        self._sealed_cutoff: int | None = None
        self._swept_hour: int | None = None
        self.dropped_contributions = 0
        self.dropped_buckets = 0

    def advance(self, published_s: Iterable[int]) -> None:
        """Move stream time to the newest publication time, never past the wall clock."""
        newest = max(published_s, default=0)
        if self.wall_s is not None:
            newest = min(newest, int(self.wall_s()))
        self.stream_s = max(self.stream_s, newest)

    def cutoff(self) -> int | None:
        """Publication time before which a record is too late (None: nothing seen yet)."""
        return self.horizons.contribution_cutoff(self.stream_s) if self.stream_s else None

    def step(self, state: AggregateState) -> Expired:
        """Seal the days the contribution cutoff passed and drop their contributions, drop
        buckets past their horizons; returns the state records to produce."""
        out = Expired(tombstones=self.pending)
        self.pending, self.deferred = self.deferred, []
        now = self.stream_s
        if not now:
            return out
        hour = now - now % HOUR_S
        if hour != self._swept_hour:
            self._swept_hour = hour
            kept = self.horizons.kept_from(now)
            self.dropped_buckets += state.expire_buckets(kept)
            for group, key in [(g, k) for g, k in self.sealed.items() if g[1] < kept["1d"]]:
                del self.sealed[group]  # its day's counts have left memory too
                self.seen.pop(group, None)
                out.tombstones.append(key)
        cutoff = self.horizons.contribution_cutoff(now)
        if cutoff != self._sealed_cutoff:
            self._sealed_cutoff = cutoff
            out.seals = [(s.key, s.to_json()) for s in self._seal(state, cutoff)]
        return out

    def apply(self, state: AggregateState, batch: Sequence[AggregateContribution]) -> Admitted:
        """Apply *batch* to *state* under the horizons (stream time moves first): records within
        the contribution horizon as contributions, older ones into their day's seal, re-deliveries
        of sealed records skipped, records past the daily horizon refused. The caller produces
        ``live.changed`` as contributions and ``seals`` as state records, then calls :meth:`step`."""
        self.advance(int(c.published_at.timestamp()) for c in batch)
        cutoff = self.cutoff()
        if cutoff is None:
            return Admitted(state.apply(batch), Applied([], [], []), [], [], [])
        floor = self.horizons.kept_from(self.stream_s)["1d"]
        live, late, counted, expired = [], [], [], []
        for i, c in enumerate(batch):
            day = _day(c)
            if day >= cutoff:
                live.append(c)
            elif day < floor:
                expired.append(i)
            elif _holds(self.seen.get((c.partition, day, c.watch_id), array("Q")), key_digest(c.key)):
                counted.append(i)
            else:
                late.append(c)
        admitted = Admitted(state.apply(live), state.apply(late), [], counted, expired)
        if late:
            before = len(self.pending)
            admitted.seals = [(s.key, s.to_json()) for s in self._seal(state, cutoff)]
            # tombstones wait for the seal's acknowledgement (the next batch); records first seen
            # here were never written as contributions and need none
            fresh = {c.key for c in admitted.late.new_items}
            self.deferred += [k for k in self.pending[before:] if k not in fresh]
            del self.pending[before:]
        if counted:
            log.info("%d records of sealed days were counted before; skipped", len(counted))
        return admitted

    def _seal(self, state: AggregateState, cutoff: int) -> list[SealedDay]:
        old: dict[Group, list[str]] = {}
        for c in state.contributions.values():
            day = _day(c)
            if day < cutoff:
                old.setdefault((c.partition, day, c.watch_id), []).append(c.key)
        if not old:
            return []
        cells: dict[tuple[int, int, str], list[Cell]] = {g: [] for g in old}
        for p, counts in state.counts.items():
            for (watch, outlet, gran, bucket, frame), (items, segs) in counts.items():
                if bucket < cutoff and (items or segs):
                    found = cells.get((p, bucket - bucket % DAY_S, watch))
                    if found is not None:
                        found.append((gran, bucket, frame, outlet, items, segs))
        expired_before = state.kept_from.get("1d", 0)  # a day past the daily horizon has nothing to seal
        seals = []
        for group in sorted(old):
            if group[1] < expired_before:
                continue
            seen = array("Q", sorted({*self.seen.get(group, ()), *(key_digest(k) for k in old[group])}))
            seal = SealedDay(group[0], group[2], group[1], self.stream_s, tuple(sorted(cells[group])), pack_digests(seen))
            self.sealed[group], self.seen[group] = seal.key, seen
            seals.append(seal)
        keys = [k for group in sorted(old) for k in old[group]]
        state.drop_contributions(keys, cutoff)
        self.pending += keys
        self.dropped_contributions += len(keys)
        log.info("sealed %d partition-days of %d watches before %d; %d contributions dropped",
                 len(seals), len({w for _, _, w in old}), cutoff, len(keys))
        return seals

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this instance no longer holds: their sealed days are the new owner's."""
        gone = set(partitions)
        self.sealed = {g: k for g, k in self.sealed.items() if g[0] not in gone}
        self.seen = {g: d for g, d in self.seen.items() if g[0] not in gone}

    # --- restore ------------------------------------------------------------------------------

    def collect(self, records: Iterable[tuple[bytes | None, bytes | None]], partitions: set[int]) -> Loaded:
        """The latest state record per key of *partitions* (tombstones delete); contributions
        of a day already known sealed are skipped while reading. An undecodable record is
        counted and skipped (the aggregator wrote them; nothing else is ours to count)."""
        loaded = Loaded()
        sealed_days: set[tuple[int, int, str]] = set()
        for raw_key, value in records:
            if raw_key is None:
                continue
            key = raw_key.decode("utf-8", "replace")
            if value is None:
                loaded.contributions.pop(key, None)
                loaded.sealed.pop(key, None)
                continue
            try:
                d = json.loads(value)
                if "cells" in d:
                    s = SealedDay.from_dict(d)
                    if s.partition in partitions:
                        loaded.sealed[key] = s
                        sealed_days.add((s.partition, s.day_s, s.watch_id))
                    continue
                c = contribution_from_dict(d)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                loaded.undecodable += 1
                log.warning("state record %r does not decode (%s); skipped", key[:200], exc)
                continue
            if c.partition in partitions and (c.partition, _day(c), c.watch_id) not in sealed_days:
                loaded.contributions[key] = c
            else:
                loaded.contributions.pop(key, None)
        return loaded

    def install(self, state: AggregateState, loaded: Loaded) -> int:
        """Put what :meth:`collect` read into *state* (its partitions already dropped there);
        returns the contributions loaded."""
        published = (int(c.published_at.timestamp()) for c in loaded.contributions.values())
        self.advance(published)
        self.stream_s = max([self.stream_s, *(s.stream_s for s in loaded.sealed.values())])
        if self.stream_s:
            state.kept_from = self.horizons.kept_from(self.stream_s)
        for s in loaded.sealed.values():
            if state.kept_from and s.day_s < state.kept_from["1d"]:
                self.pending.append(s.key)  # past the daily horizon: its tombstone was lost
                continue
            state.install_cells(s.partition, s.watch_id, s.cells)
            self.sealed[(s.partition, s.day_s, s.watch_id)] = s.key
            self.seen[(s.partition, s.day_s, s.watch_id)] = unpack_digests(s.seen)
        live = []
        for c in loaded.contributions.values():
            if (c.partition, _day(c), c.watch_id) in self.sealed:
                self.pending.append(c.key)  # counted in its seal; its tombstone was lost
            else:
                live.append(c)
        state.apply(live)
        # the next step sweeps and seals again: unsealed days past the cutoff (a crash before
        # their seal was acknowledged) are sealed then
        self._swept_hour = self._sealed_cutoff = None
        return len(live)
