"""Spike detection: pure functions deciding when a framing's share of a watch jumps.

Two rules, both evaluated on the trailing window (1 h, sliding in 5 min steps) that ends at the
current 5 min boundary, from counts bucketed by publication time:

* ``share_spike``: the frame's share of the watch's items in the window against an EWMA
  baseline share of the hours before the window. Score: the exact beta-binomial tail of the
  observed count given the baseline share and the baseline's own uncertainty, as a z (see
  :func:`share_z`). Fires when the score, the count and the relative lift all clear their
  thresholds and the baseline has enough items. The score's threshold comes from a stated
  false-alarm rate per watch x frame (:mod:`framewatch.processing.changes.spike_rate`, simulated at the watch's volume
  and the frame's share: the window slides every 5 min, so one hour holds several correlated
  tests and a single test's tail would understate the rate); a fixed ``z_threshold`` only
  where no rate is given.
* ``emergent_growth``: an emergent framing (``emergent:<id>``), first seen recently, whose
  window count is large and several times the previous window's. Score: Poisson z against the
  previous window's count.

A fired (watch, frame) stays quiet for a cooldown, so one spike alerts once. Only the current
window is ever evaluated: late or back-filled items land in old buckets (they move baselines)
and cannot make the current window spike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from framewatch.contracts import ANY, BUCKETS, EMERGENT_PREFIX
from framewatch.processing.changes import spike_rate

STEP_S = BUCKETS["5m"]
WINDOW_S = BUCKETS["1h"]
SHARE_SPIKE = "share_spike"
EMERGENT_GROWTH = "emergent_growth"
RULES = (SHARE_SPIKE, EMERGENT_GROWTH)


class CountsView(Protocol):
    """Item counts by watch, frame (``*`` = all), granularity and bucket start (epoch seconds)."""

    def count(self, watch: str, frame: str, granularity: str, bucket_s: int, outlet: str = ANY) -> int: ...

    def baseline_stamp(self, watch: str, hour_s: int) -> tuple[int, ...]:
        """Changes whenever an hour bucket of *watch* before *hour_s* may have changed."""
        ...


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """Thresholds of both rules (see Settings for what each means)."""

    z_threshold: float = 3.5  # only where false_alarms_per_week is None
    false_alarms_per_week: float | None = 1 / 8  # per watch x frame
    min_count: int = 10
    min_lift: float = 0.25
    baseline_hours: int = 48
    halflife_h: float = 12.0
    min_baseline_items: int = 50
    cooldown_s: float = 6 * 3600.0
    emergent_min_count: int = 8
    emergent_growth_factor: float = 3.0
    emergent_new_within_s: float = 2 * 86400.0
    window_s: int = WINDOW_S


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One rule applied to one watch x frame x window."""

    watch: str
    frame: str
    rule: str
    window_start_s: int
    window_end_s: int
    baseline_share: float
    observed_share: float
    count: int
    total: int
    score: float
    fires: bool


def current_window_end(now_s: float) -> int:
    """End of the window evaluated at *now_s*: the next 5 min boundary (the window includes now)."""
    return int(now_s) - int(now_s) % STEP_S + STEP_S


def window_count(view: CountsView, watch: str, frame: str, start_s: int, end_s: int) -> int:
    """Items of *frame* published in [start_s, end_s) (5 min buckets)."""
    return sum(view.count(watch, frame, "5m", b) for b in range(start_s, end_s, STEP_S))


def ewma_share(counts: Iterable[int], totals: Iterable[int], halflife_h: float) -> tuple[float, float]:
    """EWMA share and effective item count of hourly (count, total) pairs, most recent first.

    Hour *i* back weighs ``0.5 ** (i / halflife)``; the share is the weighted ratio, smoothed
    towards 0.5 by one pseudo-item so that an empty history gives no certainty.
    """
    decay = 0.5 ** (1.0 / halflife_h)
    w = 1.0
    num = den = 0.0
    for c, n in zip(counts, totals, strict=True):
        num += w * c
        den += w * n
        w *= decay
    return (num + 0.5) / (den + 1.0), den


def binomial_z(count: int, total: int, p0: float, baseline_n: float = math.inf) -> float:
    """Normal-approximation z of *count* successes in *total* trials against share *p0*
    (estimated from *baseline_n* items). Only a fallback where the exact tail underflows."""
    if total <= 0:
        return 0.0
    p0 = min(max(p0, 1e-6), 1 - 1e-6)
    var = total * p0 * (1 - p0)
    if math.isfinite(baseline_n) and baseline_n > 0:
        var += total * total * p0 * (1 - p0) / baseline_n  # the baseline is an estimate too
    return (count - total * p0) / math.sqrt(var)


def share_z(count: int, total: int, p0: float, baseline_n: float) -> float:
    """Score of *count* of *total* items against a baseline share *p0* seen over *baseline_n* items.

    The exact upper tail P(X >= count) of the beta-binomial (the window's count when the share
    itself is only known from the baseline: Beta(p0 n, (1 - p0) n)), given as the standard
    normal quantile with that tail. Small shares have skewed counts, so a normal z raises false
    alerts on them at a threshold that is blind on large ones; the exact tail keeps one threshold
    meaning one false-alert rate for every frame.
    """
    approx = binomial_z(count, total, p0, baseline_n)
    if approx < 2.0:  # far below any threshold: the approximation is close and much cheaper
        return approx
    from scipy.special import betaln, gammaln, logsumexp, ndtri

    p0 = min(max(p0, 1e-6), 1 - 1e-6)
    n_eff = max(baseline_n, 1.0)
    a, b = p0 * n_eff, (1 - p0) * n_eff
    k = np.arange(count, total + 1, dtype=np.float64)
    log_pmf = gammaln(total + 1) - gammaln(k + 1) - gammaln(total - k + 1) + betaln(k + a, total - k + b) - betaln(a, b)
    log_tail = float(logsumexp(log_pmf))
    if log_tail < -700:  # beyond float range: the normal approximation is as good as any
        return max(binomial_z(count, total, p0, baseline_n), 37.0)
    return float(-ndtri(min(math.exp(log_tail), 0.5)))


def poisson_z(count: int, expected: float) -> float:
    """z of *count* events against a Poisson mean *expected* (at least 1)."""
    expected = max(expected, 1.0)
    return (count - expected) / math.sqrt(expected)


Baseline = tuple[float, float, int]  # EWMA share, effective items, items in the baseline hours


def baseline(view: CountsView, watch: str, frame: str, start_s: int, cfg: SpikeConfig) -> Baseline:
    """EWMA share of *frame* over the ``baseline_hours`` whole hours before the hour of *start_s*.

    Whole (1 h bucket) hours keep it cheap and stable: it changes once an hour, not every step.
    """
    hour = start_s - start_s % WINDOW_S
    starts = [hour - (i + 1) * WINDOW_S for i in range(cfg.baseline_hours)]
    base_counts = [view.count(watch, frame, "1h", b) for b in starts]
    base_totals = [view.count(watch, ANY, "1h", b) for b in starts]
    p0, n_eff = ewma_share(base_counts, base_totals, cfg.halflife_h)
    return p0, n_eff, sum(base_totals)


def evaluate_share(
    view: CountsView, watch: str, frame: str, end_s: int, cfg: SpikeConfig, base: Baseline | None = None
) -> Evaluation:
    """The share_spike rule for one watch x frame and the window ending at *end_s*."""
    start = end_s - cfg.window_s
    count = window_count(view, watch, frame, start, end_s)
    total = window_count(view, watch, ANY, start, end_s)
    p0, n_eff, base_items = base if base is not None else baseline(view, watch, frame, start, cfg)
    observed = count / total if total else 0.0
    z = share_z(count, total, p0, n_eff)
    fires = (
        base_items >= cfg.min_baseline_items
        and count >= cfg.min_count
        and observed >= p0 * (1 + cfg.min_lift)
        and z >= score_threshold(cfg, base_items / cfg.baseline_hours, p0)
    )
    return Evaluation(watch, frame, SHARE_SPIKE, start, end_s, p0, observed, count, total, z, fires)


def evaluate_emergent(
    view: CountsView, watch: str, frame: str, end_s: int, first_seen_s: int | None, cfg: SpikeConfig
) -> Evaluation:
    """The emergent_growth rule: a new emergent framing growing fast in the window ending at *end_s*."""
    start = end_s - cfg.window_s
    count = window_count(view, watch, frame, start, end_s)
    total = window_count(view, watch, ANY, start, end_s)
    previous = window_count(view, watch, frame, start - cfg.window_s, start)
    prev_total = window_count(view, watch, ANY, start - cfg.window_s, start)
    growth = (count + 1) / (previous + 1)
    is_new = first_seen_s is not None and end_s - first_seen_s <= cfg.emergent_new_within_s
    fires = (
        frame.startswith(EMERGENT_PREFIX) and is_new and count >= cfg.emergent_min_count
        and growth >= cfg.emergent_growth_factor
    )
    baseline = previous / prev_total if prev_total else 0.0
    observed = count / total if total else 0.0
    return Evaluation(
        watch, frame, EMERGENT_GROWTH, start, end_s, baseline, observed, count, total,
        poisson_z(count, previous), fires,
    )


def score_threshold(cfg: SpikeConfig, mean_per_h: float, p0: float) -> float:
    """The score a window must reach: calibrated to ``false_alarms_per_week`` at this volume and
    share (cached per band), or the fixed ``z_threshold`` where no rate is given."""
    if cfg.false_alarms_per_week is None:
        return cfg.z_threshold
    return spike_rate.threshold(
        cfg.false_alarms_per_week, spike_rate.volume_band(mean_per_h), spike_rate.share_band(p0),
        spike_rate.Gates(cfg.min_count, cfg.min_lift, cfg.baseline_hours, cfg.halflife_h, cfg.cooldown_s, cfg.window_s),
    )


def in_cooldown(last_alert_s: int | None, window_start_s: int, cooldown_s: float) -> bool:
    """True while a new alert would repeat one raised less than *cooldown_s* before."""
    return last_alert_s is not None and window_start_s - last_alert_s < cooldown_s


class SpikeDetector:
    """Evaluates the current window of watches and remembers alerts for the cooldown.

    ``last_alert`` maps (watch, frame) to the window start of the last alert; the aggregator
    restores it from the alerts topic on start so that a restart does not re-alert.
    """

    def __init__(self, cfg: SpikeConfig) -> None:
        self.cfg = cfg
        self.last_alert: dict[tuple[str, str], int] = {}
        self.latest: dict[tuple[str, str], Evaluation] = {}
        # baselines depend only on hour buckets before the window: computed once per window
        # start, and again when late data (a backlog, another instance's rows) changed those hours
        self._baselines: dict[tuple[str, str, int], tuple[tuple[int, ...], Baseline]] = {}

    def evaluate(
        self, view: CountsView, watch: str, frames: Iterable[str], now_s: float,
        first_seen: dict[tuple[str, str], int] | None = None,
    ) -> list[Evaluation]:
        """Evaluate every frame of *watch* on the current window; return those that fire."""
        end = current_window_end(now_s)
        fired = []
        for frame in sorted(set(frames) - {ANY}):
            if frame.startswith(EMERGENT_PREFIX):
                ev = evaluate_emergent(view, watch, frame, end, (first_seen or {}).get((watch, frame)), self.cfg)
            else:
                start = end - self.cfg.window_s
                hour = start - start % WINDOW_S
                stamp = view.baseline_stamp(watch, hour)
                cached = self._baselines.get((watch, frame, hour))
                if cached is not None and cached[0] == stamp:
                    base = cached[1]
                else:
                    if len(self._baselines) > 100_000:
                        self._baselines.clear()
                    base = baseline(view, watch, frame, start, self.cfg)
                    self._baselines[(watch, frame, hour)] = (stamp, base)
                ev = evaluate_share(view, watch, frame, end, self.cfg, base)
            self.latest[(watch, frame)] = ev
            if ev.fires and not in_cooldown(self.last_alert.get((watch, frame)), ev.window_start_s, self.cfg.cooldown_s):
                self.last_alert[(watch, frame)] = ev.window_start_s
                fired.append(ev)
        return fired

    def remember(self, watch: str, frame: str, window_start_s: int) -> None:
        """Record an alert raised earlier (restored from the alerts topic)."""
        prior = self.last_alert.get((watch, frame))
        self.last_alert[(watch, frame)] = window_start_s if prior is None else max(prior, window_start_s)
