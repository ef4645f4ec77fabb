"""Hourly series of a watch x frame and the robust baseline share they are tested against."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from framewatch.contracts import ANY

HOUR_S = 3600


class CountsView(Protocol):
    """Item counts by watch, frame (``*`` = all), granularity and bucket start (epoch seconds)."""

    def count(self, watch: str, frame: str, granularity: str, bucket_s: int, outlet: str = ANY) -> int: ...


@dataclass(frozen=True, slots=True)
class Series:
    """Hourly counts of a frame and of its watch, oldest first, ending before *end_s*."""

    start_s: int
    counts: np.ndarray
    totals: np.ndarray

    def hour_s(self, index: int) -> int:
        """Start of hour *index*."""
        return self.start_s + index * HOUR_S


def hourly(view: CountsView, watch: str, frame: str, end_s: int, hours: int) -> Series:
    """The *hours* whole hours before *end_s* (an hour boundary)."""
    start = end_s - hours * HOUR_S
    starts = range(start, end_s, HOUR_S)
    counts = np.array([view.count(watch, frame, "1h", b) for b in starts], dtype=np.float64)
    totals = np.array([view.count(watch, ANY, "1h", b) for b in starts], dtype=np.float64)
    return Series(start, counts, totals)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The share a frame held before the tested window, and the volume it was seen at."""

    share: float
    items: int  # items of the watch over the baseline days
    mean_per_h: float  # the watch's mean items per hour over those days
    days: int  # days with enough items to count


def robust_share(counts: np.ndarray, totals: np.ndarray, min_day_items: int = 20, min_days: int = 2) -> Baseline | None:
    """The median of daily shares over whole days of hourly counts (None: too little history).

    A median of days, not a pooled share: one day of an earlier shift or a burst of syndicated
    copies moves it little. Days are 24-hour blocks, so each holds a whole day/night cycle and
    the share is that of the day's items whatever their timing (a quiet night weighs as little
    as its few items).
    """
    days = len(counts) // 24
    if days == 0:
        return None
    c = counts[-days * 24:].reshape(days, 24).sum(axis=1)
    n = totals[-days * 24:].reshape(days, 24).sum(axis=1)
    shares = [float(ci / ni) for ci, ni in zip(c, n, strict=True) if ni >= min_day_items]
    if len(shares) < min_days:
        return None
    items = int(totals.sum())
    return Baseline(statistics.median(shares), items, items / len(totals), len(shares))
