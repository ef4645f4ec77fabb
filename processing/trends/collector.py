"""Share of voice at scrape time: a Prometheus collector over the aggregator's counts.

In the spirit of client_python's ``gc_collector``: nothing is stored in metric objects; each
scrape computes the families from the live state (the merged counts, the latest spike scores).
The trailing windows are half-open like the buckets, ``[now - window, now)``: a 1 h window is
exactly twelve 5-minute buckets, and the bucket that starts at ``now`` belongs to the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import polars as pl
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from framewatch.contracts import ANY, BUCKETS, EMERGENT_PREFIX
from framewatch.metrics import NAMESPACE


def window_shares(counts: pl.DataFrame, now_s: int, window_s: int, outlet: str = ANY) -> pl.DataFrame:
    """Share of voice per watch x frame over the trailing window ``[now - window, now)``.

    Built from 5 min buckets for windows up to a day (1 h buckets beyond); a bucket counts when
    it starts inside the window.
    """
    gran = "5m" if window_s <= BUCKETS["1d"] else "1h"
    step = BUCKETS[gran]
    first = -(-(now_s - window_s) // step) * step  # first bucket starting inside the window
    win = counts.filter(
        (pl.col("granularity") == gran) & (pl.col("outlet") == outlet)
        & (pl.col("bucket") >= first) & (pl.col("bucket") < now_s)
    )
    summed = win.group_by(["watch", "frame"]).agg(pl.col("items").sum())
    totals = summed.filter(pl.col("frame") == ANY).select(["watch", pl.col("items").alias("total")])
    return (
        summed.filter(pl.col("frame") != ANY)
        .join(totals, on="watch", how="left")
        .with_columns(share=pl.when(pl.col("total") > 0).then(pl.col("items") / pl.col("total")).otherwise(0.0))
        .sort(["watch", "frame"])
    )


class ShareOfVoiceCollector:
    """Share of voice, framed items, spike scores and emergent framings, computed at scrape time.

    ``counts`` returns the aggregator's merged counts as a polars frame with columns watch,
    outlet, granularity, bucket (epoch s), frame (``*`` = watch total), items; ``scores``
    returns (watch, frame) -> (score, baseline share) of the latest evaluation. With several
    aggregator instances, ``counts`` is the merged view (every instance reports whole-watch
    shares: aggregate with max) and ``own_counts`` this instance's partitions, which
    ``framed_items_total`` counts (sum over instances). Emergent
    framings are capped to the ``max_emergent`` largest per watch to keep labels bounded; the
    outlet label appears only when ``by_outlet``.
    """

    def __init__(
        self,
        counts: Callable[[], Any],
        scores: Callable[[], Mapping[tuple[str, str], tuple[float, float]]],
        clock: Callable[[], float] = time.time,
        max_emergent: int = 20,
        by_outlet: bool = False,
        own_counts: Callable[[], Any] | None = None,
    ) -> None:
        self._counts = counts
        self._own_counts = own_counts or counts
        self._scores = scores
        self._clock = clock
        self._max_emergent = max_emergent
        self._by_outlet = by_outlet

    def describe(self) -> list[Metric]:
        """Families without samples, so registering does not compute anything."""
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        """Compute every family from the current state."""
        fam = self._families()
        df = self._counts()
        now = int(self._clock())
        if df.height:
            five = df.filter(pl.col("granularity") == "5m")
            emergent = self._emergent(five, now)
            allowed = set(emergent.select(["watch", "frame"]).iter_rows())

            def keep(watch: str, frame: str) -> bool:
                return not frame.startswith(EMERGENT_PREFIX) or (watch, frame) in allowed

            outlets = [ANY]
            if self._by_outlet:
                outlets += sorted(set(five.get_column("outlet").to_list()) - {ANY})
            own = self._own_counts() if self._own_counts is not self._counts else df
            totals = (
                own.filter((pl.col("granularity") == "1d") & (pl.col("frame") != ANY))
                .group_by(["watch", "frame", "outlet"]).agg(pl.col("items").sum())
                .sort(["watch", "frame", "outlet"])
            )
            for watch, frame, outlet, items in totals.iter_rows():
                if not keep(watch, frame):
                    continue
                if self._by_outlet and outlet != ANY:
                    fam["items"].add_metric([watch, frame, outlet], items)
                elif not self._by_outlet and outlet == ANY:
                    fam["items"].add_metric([watch, frame], items)
            for window, seconds in BUCKETS.items():
                for outlet in outlets:
                    for watch, frame, share in window_shares(five, now, seconds, outlet).select(["watch", "frame", "share"]).iter_rows():
                        if keep(watch, frame):
                            labels = [watch, frame, window] + (["all" if outlet == ANY else outlet] if self._by_outlet else [])
                            fam["share"].add_metric(labels, share)
            for watch, n in emergent.group_by("watch").agg(pl.len()).sort("watch").iter_rows():
                fam["emergent"].add_metric([watch], n)
            for watch, frame, items in emergent.sort(["watch", "frame"]).iter_rows():
                fam["emergent_size"].add_metric([watch, frame], items)
            for (watch, frame), (score, base) in sorted(self._scores().items()):
                if keep(watch, frame):
                    fam["score"].add_metric([watch, frame], score)
                    fam["baseline"].add_metric([watch, frame], base)
        yield from fam.values()

    def _families(self) -> dict[str, Any]:
        outlet = ["outlet"] if self._by_outlet else []
        return {
            "items": CounterMetricFamily(
                f"{NAMESPACE}_framed_items", "Framed items by watch and primary frame (distinct keys).",
                labels=["watch", "frame", *outlet]),
            "share": GaugeMetricFamily(
                f"{NAMESPACE}_share_of_voice", "Share of a watch's items framed so, over the trailing window.",
                labels=["watch", "frame", "window", *outlet]),
            "score": GaugeMetricFamily(
                f"{NAMESPACE}_spike_score", "Spike score (z) of the frame in the current 1 h window.",
                labels=["watch", "frame"]),
            "baseline": GaugeMetricFamily(
                f"{NAMESPACE}_frame_baseline_share", "EWMA baseline share the spike score compares with.",
                labels=["watch", "frame"]),
            "emergent": GaugeMetricFamily(
                f"{NAMESPACE}_emergent_frames", "Emergent framings with items in the last day.",
                labels=["watch"]),
            "emergent_size": GaugeMetricFamily(
                f"{NAMESPACE}_emergent_frame_size", "Items of an emergent framing in the last day.",
                labels=["watch", "frame"]),
        }

    def _emergent(self, five: Any, now: int) -> Any:
        return (
            five.filter(
                pl.col("frame").str.starts_with(EMERGENT_PREFIX) & (pl.col("outlet") == ANY)
                & (pl.col("bucket") >= now - BUCKETS["1d"]) & (pl.col("bucket") < now)
            )
            .group_by(["watch", "frame"]).agg(pl.col("items").sum())
            .filter(pl.col("items") > 0)
            .sort(["watch", "items", "frame"], descending=[False, True, False])
            .group_by("watch", maintain_order=True).head(self._max_emergent)
        )


def _window_shares(five: Any, now: int, seconds: int, outlet: str) -> Any:
    import polars as pl

    first = -(-(now - seconds) // 300) * 300
    summed = (
        five.filter((pl.col("outlet") == outlet) & (pl.col("bucket") >= first) & (pl.col("bucket") <= now))
        .group_by(["watch", "frame"]).agg(pl.col("items").sum())
    )
    totals = summed.filter(pl.col("frame") == "*").select(["watch", pl.col("items").alias("total")])
    return (
        summed.filter(pl.col("frame") != ANY).join(totals, on="watch", how="left")
        .select(["watch", "frame", (pl.col("items") / pl.col("total")).fill_null(0.0).fill_nan(0.0).alias("share")])
        .sort(["watch", "frame"])
    )
