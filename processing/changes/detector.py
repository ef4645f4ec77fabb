"""Shift and drift detection per watch x frame on the hour counts the aggregator keeps.

Every completed hour, each frame's last ``WINDOW_H`` hours are tested against the median daily
share of the seven days before them (so a change inside the window cannot pull its own
baseline up): a binomial CUSUM for steps (*shift*) and a ramp GLR for slow rises (*drift*), each
with a threshold calibrated to the sensitivity's false-alarm rate at the watch's volume and the
frame's share (:mod:`.calibrate`). The CUSUM runs both ways: a rise tuned to +``shift_lift``
and a fall tuned to its mirror image (-1/3 for +50%), each calibrated on its own; a fall is a
*shift* whose share after is below the share before, unless it only mirrors another frame's
rise (:func:`mirrors_a_rise`). The evaluation is a pure function of the
counts and of the alerts already raised, so a restart or late data only re-evaluates: after an alert the
statistics start again from the next hour and the share it reported becomes the floor of the
baseline for a week while the frame's last day stays nearer to it than to the old share (a shift
that holds alerts once; a further rise alerts again; a return to normal re-arms the detector).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from framewatch.contracts import ANY
from framewatch.processing.changes import calibrate
from framewatch.processing.changes.baseline import HOUR_S, CountsView, Series, hourly, robust_share
from framewatch.processing.changes.cusum import (
    cusum,
    fall_lift,
    increments,
    refine_change,
    share_interval,
)
from framewatch.processing.changes.drift import WINDOW_H, drift_score

SHIFT, DRIFT = calibrate.SHIFT, calibrate.DRIFT
DETECTORS = {SHIFT: "binomial_cusum", DRIFT: "ramp_glr"}
# false alarms per week of one detector on one watch x frame
SENSITIVITY_RATES = {"low": 1 / 104, "medium": 1 / 32, "high": 1 / 8}
BASELINE_H = 24 * calibrate.BASELINE_DAYS
FLOOR_S = 7 * 86400  # how long an alerted share floors the baseline


@dataclass(frozen=True, slots=True)
class ChangeConfig:
    """How the detectors are tuned (see Settings for what each means)."""

    sensitivity: str = "medium"
    shift_lift: float = 0.5
    min_day_items: int = 20

    @property
    def rate_per_week(self) -> float:
        """False alarms per week of each detector on each watch x frame."""
        return SENSITIVITY_RATES[self.sensitivity]


@dataclass(frozen=True, slots=True)
class Change:
    """A detected shift (up or down: compare the shares) or drift (up) with its evidence."""

    watch: str
    frame: str
    kind: str
    change_point_s: int
    detected_hour_s: int  # end of the last hour seen
    share_before: float
    share_after: float
    share_after_low: float
    share_after_high: float
    count: int  # frame items since the change point
    total: int  # watch items since the change point
    score: float
    threshold: float
    detector: str
    false_alarms_per_week: float


@dataclass(slots=True)
class _Memory:
    """The last alert of a watch x frame: the hour it saw last, the share it reported and the
    start of the hour of its change point."""

    hour_s: int
    floor: float
    since_s: int


@dataclass
class ChangeDetector:
    """Evaluates watches once per completed hour; remembers alerts (restored from the topic)."""

    cfg: ChangeConfig = field(default_factory=ChangeConfig)
    memory: dict[tuple[str, str], _Memory] = field(default_factory=dict)
    evaluated: dict[str, int] = field(default_factory=dict)

    def remember(self, watch: str, frame: str, detected_hour_s: int, share_after: float,
                 change_point_s: int | None = None) -> None:
        """Record an alert raised earlier (restored from the alerts topic)."""
        prior = self.memory.get((watch, frame))
        since = detected_hour_s - HOUR_S if change_point_s is None else change_point_s - change_point_s % HOUR_S
        if prior is None or detected_hour_s >= prior.hour_s:
            self.memory[(watch, frame)] = _Memory(detected_hour_s, share_after, since)

    def evaluate(self, view: CountsView, watch: str, frames: Iterable[str], now_s: float, force: bool = False) -> list[Change]:
        """Test every frame of *watch* on the hours completed by *now_s*, once per hour."""
        end = int(now_s) - int(now_s) % HOUR_S
        if not force and self.evaluated.get(watch) == end:
            return []
        self.evaluated[watch] = end
        totals = hourly(view, watch, ANY, end, BASELINE_H + WINDOW_H).totals
        out = []
        names = sorted(set(frames) - {ANY})
        for frame in names:
            found = self.evaluate_frame(view, watch, frame, end, totals)
            if found is not None and found.share_after < found.share_before and mirrors_a_rise(
                view, watch, found, [f for f in names if f != frame], totals, self.cfg
            ):
                continue
            if found is not None:
                self.remember(watch, frame, found.detected_hour_s, found.share_after, found.change_point_s)
                out.append(found)
        return out

    def evaluate_frame(self, view: CountsView, watch: str, frame: str, end_s: int, totals: np.ndarray) -> Change | None:
        """The change of one frame ending at *end_s*, or None."""
        counts = np.array(
            [view.count(watch, frame, "1h", b) for b in range(end_s - len(totals) * HOUR_S, end_s, HOUR_S)], dtype=np.float64
        )
        base = robust_share(counts[:BASELINE_H], totals[:BASELINE_H], self.cfg.min_day_items)
        if base is None or base.share <= 0:
            return None
        p0 = p_up = p_down = base.share
        memory = self.memory.get((watch, frame))
        start = end_s - WINDOW_H * HOUR_S
        if memory is not None and end_s - memory.hour_s < FLOOR_S:
            start = max(start, memory.hour_s)
            first = len(counts) - (end_s - memory.since_s) // HOUR_S
            rose = memory.floor >= p0  # the remembered alert's direction (a fall reported a lower share)
            # a fall's share after is often measured on a few items: the level it is held at and
            # tested against is at most the designed fall's (a noisy low estimate neither re-arms
            # the detector at once nor lets the same fall alert twice)
            level = memory.floor if rose else min(memory.floor, p0 * (1 + fall_lift(self.cfg.shift_lift)))
            held = still_held(counts, totals, (end_s - start) // HOUR_S, (p0 + max(level, p0 / 2)) / 2, since=first, up=rose)
            if held is None and rose:  # still at the alerted level: that is the baseline now
                p_up = level
            elif held is None:
                p_down = level
            else:  # back to normal: start again after the last hour that was still at that level
                start = end_s - held * HOUR_S
        skip = (start - (end_s - WINDOW_H * HOUR_S)) // HOUR_S
        window = Series(start, counts[BASELINE_H + skip:], totals[BASELINE_H + skip:])
        if len(window.counts) == 0:
            return None
        vband = calibrate.volume_band(base.mean_per_h)
        arl_h = 168 / self.cfg.rate_per_week
        lift = self.cfg.shift_lift
        # a rise is tested against the raised level while an alerted rise holds, a fall against the
        # lowered one; a return to the usual share is neither (it re-arms the detector instead)
        for p_ref, design in ((p_up, lift), (p_down, fall_lift(lift))):
            run = cusum(increments(window.counts, window.totals, p_ref, design))
            h_shift = calibrate.threshold(SHIFT, arl_h, vband, calibrate.share_band(p_ref), design, base.days)
            if run.statistic > h_shift:
                cp = max(start, refine(view, watch, frame, window.hour_s(run.change_index), end_s, p_ref, design > 0))
                return self._change(view, watch, frame, SHIFT, cp, end_s, p_ref, run.statistic, h_shift)
        if len(window.counts) >= 24:
            drift = drift_score(window.counts, window.totals, p_up)
            h_drift = calibrate.threshold(DRIFT, arl_h, vband, calibrate.share_band(p_up), 0.5, base.days)
            if drift.z > h_drift and recent_excess(window, p_up) > 1.0:
                cp = max(start, end_s - drift.lag_h * HOUR_S)
                return self._change(view, watch, frame, DRIFT, cp, end_s, p_up, drift.z, h_drift)
        return None

    def _change(self, view: CountsView, watch: str, frame: str, kind: str, cp: int, end_s: int,
                p0: float, score: float, threshold: float) -> Change:
        after = hourly(view, watch, frame, end_s, max(1, math.ceil((end_s - cp) / HOUR_S)))
        fine = [(view.count(watch, frame, "5m", b), view.count(watch, ANY, "5m", b)) for b in range(cp, end_s, 300)]
        c, n = sum(f[0] for f in fine), sum(f[1] for f in fine)
        if n == 0:  # 5 min buckets gone (older than their retention): whole hours since the change
            c, n = int(after.counts.sum()), int(after.totals.sum())
        share, low, high = share_interval(c, n)
        return Change(
            watch, frame, kind, cp, end_s, round(p0, 6), round(share, 6), round(low, 6), round(high, 6), c, n,
            round(score, 4), threshold, DETECTORS[kind], self.cfg.rate_per_week,
        )


def mirrors_a_rise(view: CountsView, watch: str, fall: Change, others: list[str], totals: np.ndarray,
                   cfg: ChangeConfig) -> bool:
    """True when *fall* only mirrors another frame's rise: shares sum to one, so when one frame
    gains the others lose in proportion. Among the items outside the frame that gained most since
    the change point, the falling frame's share has kept at least half of the designed fall away
    from its usual share (the rise is the news, and is alerted on its own)."""
    buckets = range(fall.change_point_s, fall.detected_hour_s, 300)
    best: tuple[float, float, float] | None = None  # excess, usual share, count since
    for g in others:
        counts = hourly(view, watch, g, fall.detected_hour_s, len(totals)).counts
        base = robust_share(counts[:BASELINE_H], totals[:BASELINE_H], cfg.min_day_items)
        if base is None:
            continue
        c_g = float(sum(view.count(watch, g, "5m", b) for b in buckets))
        excess = c_g - fall.total * base.share
        if excess > 0 and (best is None or excess > best[0]):
            best = (excess, base.share, c_g)
    if best is None or best[1] >= 1 or fall.total - best[2] <= 0:
        return False
    usual = fall.share_before / (1 - best[1])
    since = fall.count / (fall.total - best[2])
    return since >= usual * (1 + fall_lift(cfg.shift_lift) / 2)


def still_held(counts: np.ndarray, totals: np.ndarray, hours: int, level: float, span: int = 6,
               since: int = 0, up: bool = True) -> int | None:
    """None while the share of the last *span* hours (none before index *since*, the change
    point) is at least *level* (at most, after a fall: *up* False); else how many of the last
    *hours* hours came after the last hour whose trailing share still was (all of them if none)."""
    c = np.concatenate([[0.0], np.cumsum(counts)])
    n = np.concatenate([[0.0], np.cumsum(totals)])
    ends = np.arange(len(counts) - hours + 1, len(counts) + 1)
    starts = np.clip(np.maximum(ends - span, since), 0, ends - 1)
    share = (c[ends] - c[starts]) / np.maximum(n[ends] - n[starts], 1.0)
    at_level = np.flatnonzero(share >= level if up else share <= level)
    if len(at_level) and at_level[-1] == len(ends) - 1:
        return None
    return hours if len(at_level) == 0 else hours - 1 - int(at_level[-1])


def recent_excess(window: Series, p0: float, hours: int = 12) -> float:
    """z of the last *hours*' share against *p0*. A drift is a rise still going on: a step that
    has ended leaves evidence in the ramp's window, and this keeps it from alerting as a drift
    (an extra condition: the drift's false alarms can only be rarer than calibrated)."""
    c, n = float(window.counts[-hours:].sum()), float(window.totals[-hours:].sum())
    return (c - n * p0) / math.sqrt(max(n * p0 * (1 - p0), 1e-9))


def refine(view: CountsView, watch: str, frame: str, hour_s: int, end_s: int, p0: float, up: bool = True) -> int:
    """The change point within an hour either side of the CUSUM's, from the 5 min buckets: the
    split of a single step from *p0* to the share after it, fitted on everything up to *end_s*."""
    starts = list(range(hour_s - HOUR_S, end_s, 300))
    counts = np.array([view.count(watch, frame, "5m", b) for b in starts], dtype=np.float64)
    totals = np.array([view.count(watch, ANY, "5m", b) for b in starts], dtype=np.float64)
    if totals.sum() == 0:
        return hour_s
    return starts[refine_change(counts, totals, p0, 0, min(len(starts) - 1, 24), up)]
