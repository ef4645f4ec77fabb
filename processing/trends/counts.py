"""Framing shares over time: pure aggregation of framed records into watch x frame x bucket counts.

Every framed record becomes one :class:`AggregateContribution` (its primary frame, its segment
frames, its publication time). The state keeps the latest contribution per record key, so a
re-delivered record with the same content is a no-op and a changed record replaces its old
contribution (minus old, plus new). Counts live per framed-items partition, bucketed by the
item's *publication* time into 5 min, 1 h and 1 day buckets: a late or back-filled item lands in
its own (old) bucket and never in the current one.

Durability and scaling (the design): the aggregator's only state is the map key ->
contribution. Every changed contribution is produced to the compacted ``aggregate-state``
topic in the same loop iteration as the partial aggregates, before the framed-items offsets
are committed (``run_stage``). On start and on every rebalance an instance reloads the
contributions of the partitions it was assigned from that topic and rebuilds its counts, so a
crash (kill -9) loses nothing and a re-read batch finds its contributions already there (no
double counting). Aggregate rows are *absolute* partial counts per framed-items partition
(keyed by :func:`~framewatch.contracts.aggregate_key`); totals are the sum over partitions
(:func:`merge_partials`), so any number of instances in one group give the same totals.

Every instance also reads the other instances' partial rows back (``merge_foreign``), so its
merged view, its share-of-voice metrics and its spike detection cover every partition; spikes of
a watch are evaluated by one instance only (the owner of the watch's hashed partition), so two
instances never raise the same spike twice. A re-read batch re-publishes the rows of all its
records, which completes a batch whose produce failed halfway.

The state is bounded (:mod:`~framewatch.processing.trends.retention`): contributions are kept for
``contribution_retention_days`` of stream time, then each day's counts of a partition and watch
are sealed into one ``aggregate-state`` record and the contributions tombstoned; buckets are
kept per granularity (``retention_5m_hours``, ``retention_1h_days``, ``retention_1d_days``).
A record older than the contribution horizon is dead-lettered as ``too_late``. Known limits: a
record whose publication time moves across the contribution horizon counts in both days; after a rebalance the new owner of a watch knows the cooldowns
of alerts raised before its start (read from the alerts topic) but not those raised since by the
previous owner.

Data can come late: a backlog read after the first evaluation, or another instance's rows. The
spike detector caches each window's baseline and recomputes it when :meth:`AggregateState.
baseline_stamp` says an hour before the window changed since (it once kept a baseline taken
from half the partitions for the whole hour, and the spike went unseen).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from framewatch.contracts import (
    ANY,
    BUCKETS,
    EMERGENT_PREFIX,
    AggregateContribution,
    AggregateRow,
    AlertItem,
    aggregate_key,
)

GRANULARITIES = BUCKETS  # granularity -> seconds (contracts.BUCKETS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (watch, outlet, granularity, bucket_start_s, frame) -> counts
BucketKey = tuple[str, str, str, int, str]


def bucket_start(ts: datetime, granularity: str) -> datetime:
    """Start of the bucket of *granularity* that contains *ts* (UTC, epoch aligned)."""
    step = GRANULARITIES[granularity]
    seconds = int((ts - _EPOCH).total_seconds() // step * step)
    return _EPOCH + timedelta(seconds=seconds)


def emergent_frame(cluster: str) -> str:
    """Frame id of an emergent framing found by clustering (``emergent:<id>``)."""
    return cluster if cluster.startswith(EMERGENT_PREFIX) else f"{EMERGENT_PREFIX}{cluster}"


def segment_frame(frame: str | None, cluster: str | None) -> str | None:
    """The frame a segment counts for: its codebook frame, else its emergent cluster, else none."""
    if frame:
        return frame
    return emergent_frame(cluster) if cluster else None


# a bucket of one watch: (watch, granularity, bucket start) -> its cells:
# (frame, outlet, partition) -> [d_items, d_segments]
Cells = dict[tuple[str, str, int], list[int]]
_FINEST = min(GRANULARITIES, key=GRANULARITIES.__getitem__)
_FINEST_S = GRANULARITIES[_FINEST]
_HOUR = "1h"  # spike baselines are read from hour buckets  # every granularity is a multiple of it: buckets nest


class BatchDeltas:
    """Count deltas of one batch, summed as records come in per watch x 5 min bucket, then per
    frame x outlet x partition. Coarser buckets are sums of 5 min ones, so a record touches one
    bucket whatever the number of granularities (plain dicts: a batch touches few buckets, and
    building a polars frame per batch cost more than these sums)."""

    def __init__(self, by_outlet: bool) -> None:
        self.by_outlet = by_outlet
        self.finest: dict[tuple[str, int], Cells] = {}  # (watch, 5 min bucket start) -> cells

    def __len__(self) -> int:
        return len(self.finest)

    def add(self, c: AggregateContribution, published_s: int, sign: int) -> None:
        """Add one contribution times *sign* (0: only mark the buckets it touches)."""
        if c.frame is None:
            return
        t = published_s - published_s % _FINEST_S
        cells = self.finest.get((c.watch_id, t))
        if cells is None:
            cells = self.finest[(c.watch_id, t)] = {}
        p, segments = c.partition, c.segment_frames
        total_segs = sign * sum(segments.values()) if sign else 0
        for outlet in ((ANY, c.outlet or "unknown") if self.by_outlet else (ANY,)):
            acc = cells.setdefault((c.frame, outlet, p), [0, 0])
            acc[0] += sign
            acc = cells.setdefault((ANY, outlet, p), [0, 0])
            acc[0] += sign
            acc[1] += total_segs
            for frame, n in segments.items():
                cells.setdefault((frame, outlet, p), [0, 0])[1] += sign * n

    def buckets(self) -> list[tuple[tuple[str, str, int], list[tuple[tuple[str, str, int], list[int]]]]]:
        """((watch, granularity, bucket start), [((frame, outlet, partition), [items, segments])])
        for every bucket touched, both levels sorted so that outputs come in a deterministic
        order (by watch, granularity, bucket, frame, outlet, partition)."""
        out: dict[tuple[str, str, int], Cells] = {}
        for (watch, t), cells in self.finest.items():
            out[(watch, _FINEST, t)] = cells
            for gran, step in GRANULARITIES.items():
                if step == _FINEST_S:
                    continue
                coarse = out.get((watch, gran, t - t % step))
                if coarse is None:
                    out[(watch, gran, t - t % step)] = {k: acc.copy() for k, acc in cells.items()}
                    continue
                for k, (items, segs) in cells.items():
                    acc = coarse.get(k)
                    if acc is None:
                        coarse[k] = [items, segs]
                    else:
                        acc[0] += items
                        acc[1] += segs
        return [(key, sorted(out[key].items())) for key in sorted(out)]


# an AggregateRow's fields as a plain tuple, bucket start in epoch seconds: (watch_id, frame,
# granularity, bucket_start_s, outlet, partition, items, segments). The hot path makes a few
# rows per record; building frozen records for them cost as much as all the counting.
RowValues = tuple[str, str, str, int, str, int, int, int]


def row_of(values: RowValues) -> AggregateRow:
    """The AggregateRow of *values*."""
    watch, frame, gran, bucket, outlet, p, items, segs = values
    return AggregateRow(watch, frame, gran, _bucket_time(bucket), outlet, p, items, segs)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch changed: the partial rows to publish and how many records were new/changed."""

    row_values: list[RowValues]
    changed: list[AggregateContribution]
    new_items: list[AggregateContribution]

    @property
    def rows(self) -> list[AggregateRow]:
        """The partial rows as records (built on each call: the hot path reads ``row_values``)."""
        return [row_of(v) for v in self.row_values]


class AggregateState:
    """Latest contribution per key and the partial counts they sum to (one instance's partitions)."""

    def __init__(self, by_outlet: bool = False) -> None:
        self.by_outlet = by_outlet
        self.contributions: dict[str, AggregateContribution] = {}
        # partition -> bucket key -> [items, segments]
        self.counts: dict[int, dict[BucketKey, list[int]]] = defaultdict(dict)
        # merged over all partitions (own and foreign): bucket key -> [items, segments]
        self.totals: dict[BucketKey, list[int]] = {}
        # (watch, frame, 5m bucket) -> keys, for evidence
        self.index: dict[tuple[str, str, int], set[str]] = defaultdict(set)
        self.first_seen: dict[tuple[str, str], int] = {}
        self.frames: dict[str, set[str]] = defaultdict(set)
        # partial counts of partitions other instances own, from their published rows
        self.foreign: dict[int, dict[BucketKey, list[int]]] = defaultdict(dict)
        # per watch, the newest hour bucket changed and [changes to older hours, all hour changes]:
        # a spike baseline cached for a window stays valid while its stamp stays (baseline_stamp)
        self._hour_front: dict[str, int] = {}
        self._hour_revs: dict[str, list[int]] = {}
        self._epoch = 0  # bumped when partitions are dropped (their counts leave the totals)
        # earliest bucket start kept per granularity (set by the retention step; none: keep all)
        self.kept_from: dict[str, int] = {}

    def apply(self, incoming: Sequence[AggregateContribution]) -> Applied:
        """Apply contributions: same content is a no-op, changed content replaces the old."""
        deltas = BatchDeltas(self.by_outlet)
        changed: list[AggregateContribution] = []
        new_items: list[AggregateContribution] = []
        contributions, index = self.contributions, self.index
        for c in incoming:
            published_s = int(c.published_at.timestamp())
            old = contributions.get(c.key)
            if old is None:
                new_items.append(c)
            elif old == c:
                # rows of every record are re-published (absolute values), so a batch whose
                # produce failed halfway is completed when it is read again
                deltas.add(c, published_s, 0)
                continue
            else:
                old_s = int(old.published_at.timestamp())
                deltas.add(old, old_s, -1)
                self._unindex(old, old_s)
            deltas.add(c, published_s, 1)
            contributions[c.key] = c
            if c.frame is not None:
                index[(c.watch_id, c.frame, published_s - published_s % _FINEST_S)].add(c.key)
            changed.append(c)
        rows = self._apply_deltas(deltas) if len(deltas) else []
        return Applied(rows, changed, new_items)

    def load(self, contributions: Iterable[AggregateContribution]) -> int:
        """Restore contributions read back from the state topic; returns how many."""
        batch = list(contributions)
        self.apply(batch)
        return len(batch)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget everything about *partitions*, own state and other instances' rows alike."""
        gone = set(partitions)
        for p in gone:
            for source in (self.counts, self.foreign):
                for key, (items, segs) in source.pop(p, {}).items():
                    total = self.totals[key]
                    total[0] -= items
                    total[1] -= segs
        for record_key in [k for k, c in self.contributions.items() if c.partition in gone]:
            self._unindex(self.contributions.pop(record_key))
        self._epoch += 1

    def demote_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions handed to another instance (a rebalance): their counts stay in the totals
        as the other instance's partial rows, until that instance publishes newer ones."""
        gone = set(partitions)
        for p in gone:
            self.foreign[p] = self.counts.pop(p, {})
        for record_key in [k for k, c in self.contributions.items() if c.partition in gone]:
            self._unindex(self.contributions.pop(record_key))

    def merge_foreign(self, rows: Iterable[AggregateRow], owned: set[int]) -> int:
        """Take in partial rows other instances published (rows of owned partitions are ours
        already and skipped), so totals and spike detection cover every partition."""
        n = 0
        for r in rows:
            if r.partition in owned:
                continue
            bucket = int(r.bucket_start.timestamp())
            if self.kept_from and bucket < self.kept_from.get(r.granularity, 0):
                continue  # past its horizon (the tail reads the topic from its start)
            key = (r.watch_id, r.outlet, r.granularity, bucket, r.frame)
            part = self.foreign[r.partition].setdefault(key, [0, 0])
            d_items, d_segs = r.items - part[0], r.segments - part[1]
            part[0], part[1] = r.items, r.segments
            total = self.totals.setdefault(key, [0, 0])
            total[0] += d_items
            total[1] += d_segs
            if r.granularity == _HOUR and d_items:
                self._hour_changed(r.watch_id, bucket)
            if r.granularity == _FINEST and r.items > 0 and r.frame != ANY:
                self.frames[r.watch_id].add(r.frame)
                first = self.first_seen.get((r.watch_id, r.frame))
                self.first_seen[(r.watch_id, r.frame)] = bucket if first is None else min(first, bucket)
            n += 1
        return n

    def drop_contributions(self, keys: Iterable[str], before_s: int) -> None:
        """Forget the contributions of *keys* (their counts stay), and the evidence index below
        *before_s*."""
        for key in keys:
            c = self.contributions.pop(key, None)
            if c is not None:
                self._unindex(c)
        for k in [k for k, keys_ in self.index.items() if not keys_ or k[2] < before_s]:
            del self.index[k]

    def expire_buckets(self, kept_from: dict[str, int]) -> int:
        """Drop every bucket that starts before its granularity's *kept_from*, own and foreign;
        frames left with no bucket are forgotten. Returns the own and foreign buckets dropped."""
        self.kept_from = kept_from
        dropped = 0
        for source in (*self.counts.values(), *self.foreign.values(), self.totals):
            old = [k for k in source if k[3] < kept_from[k[2]]]
            for k in old:
                del source[k]
            dropped += len(old) if source is not self.totals else 0
        present = {(k[0], k[4]) for k in self.totals}
        for watch, frames in self.frames.items():
            frames.intersection_update(f for f in list(frames) if (watch, f) in present)
        for wf in [wf for wf in self.first_seen if wf not in present]:
            del self.first_seen[wf]
        return dropped

    def install_cells(self, partition: int, watch: str, cells: Iterable[tuple[str, int, str, str, int, int]]) -> None:
        """Add absolute counts of *partition* restored from a sealed day: (granularity, bucket
        start, frame, outlet, items, segments); cells past their horizon are skipped."""
        own, kept_from = self.counts[partition], self.kept_from
        for gran, bucket, frame, outlet, items, segs in cells:
            if kept_from and bucket < kept_from.get(gran, 0):
                continue
            key = (watch, outlet, gran, bucket, frame)
            part = own.setdefault(key, [0, 0])
            total = self.totals.setdefault(key, [0, 0])
            part[0] += items
            part[1] += segs
            total[0] += items
            total[1] += segs
            if gran == _HOUR and items:
                self._hour_changed(watch, bucket)
            if items > 0 and frame != ANY:
                self.frames[watch].add(frame)
                # the finest bucket restored is the best bound of when the frame was first seen
                first = self.first_seen.get((watch, frame))
                self.first_seen[(watch, frame)] = bucket if first is None else min(first, bucket)

    def partitions(self) -> set[int]:
        """Partitions with any state."""
        return {p for p, counts in self.counts.items() if counts}

    def _apply_deltas(self, deltas: BatchDeltas) -> list[RowValues]:
        """Add summed deltas to the counts; return the absolute row of every bucket touched."""
        rows: list[RowValues] = []
        append = rows.append
        counts, totals = self.counts, self.totals
        kept_from = self.kept_from
        for (watch, gran, bucket), cells in deltas.buckets():
            if kept_from and bucket < kept_from[gran]:
                continue  # past its granularity's horizon: dropped, and not published again
            finest = gran == _FINEST
            if gran == _HOUR:
                self._hour_changed(watch, bucket)
            for (frame, outlet, p), (items, segs) in cells:
                key = (watch, outlet, gran, bucket, frame)
                own = counts[p]
                part = own.get(key)
                if part is None:
                    part = own[key] = [0, 0]
                if items or segs:
                    part[0] += items
                    part[1] += segs
                    total = totals.get(key)
                    if total is None:
                        total = totals[key] = [0, 0]
                    total[0] += items
                    total[1] += segs
                    if finest and items > 0 and frame != ANY:
                        self.frames[watch].add(frame)
                        first = self.first_seen.get((watch, frame))
                        self.first_seen[(watch, frame)] = bucket if first is None else min(first, bucket)
                append((watch, frame, gran, bucket, outlet, p, part[0], part[1]))
        return rows

    def _hour_changed(self, watch: str, bucket: int) -> None:
        revs = self._hour_revs.get(watch)
        if revs is None:
            revs = self._hour_revs[watch] = [0, 0]
        revs[1] += 1
        front = self._hour_front.get(watch)
        if front is None or bucket > front:
            self._hour_front[watch] = bucket
        elif bucket < front:
            revs[0] += 1  # late data: an hour before the newest one changed

    def _unindex(self, c: AggregateContribution, published_s: int | None = None) -> None:
        if c.frame is not None:
            if published_s is None:
                published_s = int(c.published_at.timestamp())
            self.index[(c.watch_id, c.frame, published_s - published_s % _FINEST_S)].discard(c.key)

    # --- reads ------------------------------------------------------------------------------

    def count(self, watch: str, frame: str, granularity: str, bucket_s: int, outlet: str = ANY) -> int:
        """Items of *frame* (``*`` for all) in one bucket, summed over partitions."""
        return self.totals.get((watch, outlet, granularity, bucket_s, frame), (0, 0))[0]

    def baseline_stamp(self, watch: str, hour_s: int) -> tuple[int, int, int]:
        """A stamp of the hour buckets of *watch* before *hour_s*: while it stays the same, so do
        they. Once the newest hour changed is at or past *hour_s*, every later change to an hour
        before it is late data and bumps the stamp; before that, any hour change does."""
        front = self._hour_front.get(watch)
        late, every = self._hour_revs.get(watch, (0, 0))
        if front is not None and front >= hour_s:
            return (self._epoch, 0, late)
        return (self._epoch, 1, every)

    def top_items(self, watch: str, frame: str, start_s: int, end_s: int, limit: int = 3) -> tuple[AlertItem, ...]:
        """The best-scoring items of *frame* published in [start_s, end_s), as alert evidence."""
        found = [
            self.contributions[k]
            for b in range(start_s - start_s % _FINEST_S, end_s, _FINEST_S)
            for k in self.index.get((watch, frame, b), ())
        ]
        found = [c for c in found if start_s <= c.published_at.timestamp() < end_s]
        found.sort(key=lambda c: (-c.score, c.key))
        return tuple(
            AlertItem(title=c.title, url=c.url, outlet=c.outlet, passage=c.passage, published_at=c.published_at)
            for c in found[:limit]
        )

    def frame(self, own: bool = False) -> pl.DataFrame:
        """Counts as a polars frame (watch, outlet, granularity, bucket, frame, items, segments):
        merged over every partition, or with *own* only this instance's partitions."""
        if own:
            summed: dict[BucketKey, list[int]] = {}
            for counts in self.counts.values():
                for k, (items, segs) in counts.items():
                    acc = summed.setdefault(k, [0, 0])
                    acc[0] += items
                    acc[1] += segs
        else:
            summed = self.totals
        return pl.DataFrame(
            [(*k, v[0], v[1]) for k, v in summed.items()],
            schema={"watch": pl.Utf8, "outlet": pl.Utf8, "granularity": pl.Utf8, "bucket": pl.Int64,
                    "frame": pl.Utf8, "items": pl.Int64, "segments": pl.Int64},
            orient="row",
        )


@functools.lru_cache(maxsize=65536)
def _bucket_time(bucket_s: int) -> datetime:
    return _EPOCH + timedelta(seconds=bucket_s)


def share_of_voice(counts: pl.DataFrame) -> pl.DataFrame:
    """Add ``share``: a frame's items over the watch total of the same bucket (and outlet)."""
    keys = ["watch", "outlet", "granularity", "bucket"]
    totals = counts.filter(pl.col("frame") == ANY).select([*keys, pl.col("items").alias("total")])
    return (
        counts.filter(pl.col("frame") != ANY)
        .join(totals, on=keys, how="left")
        .with_columns(share=pl.when(pl.col("total") > 0).then(pl.col("items") / pl.col("total")).otherwise(0.0))
    )


def merge_partials(rows: Iterable[AggregateRow]) -> dict[tuple[str, str, str, datetime, str], tuple[int, int]]:
    """Totals from partial rows: the latest row per aggregate key, summed over partitions."""
    latest: dict[str, AggregateRow] = {}
    for row in rows:
        latest[aggregate_key(row)] = row
    totals: dict[tuple[str, str, str, datetime, str], tuple[int, int]] = {}
    for row in latest.values():
        k = (row.watch_id, row.outlet, row.granularity, row.bucket_start, row.frame)
        items, segs = totals.get(k, (0, 0))
        totals[k] = (items + row.items, segs + row.segments)
    return {k: v for k, v in totals.items() if v != (0, 0)}
