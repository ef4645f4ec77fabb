"""Spike thresholds from a false-alarm rate: the sliding-window spike rule simulated on null streams.

The spike rule (:mod:`framewatch.processing.trends.spikes`) scores each 1 h window, every 5 min,
by the exact beta-binomial tail of its count against a 48 h EWMA baseline. One window's tail is
not the rule's false-alarm rate: twelve overlapping windows an hour are tested, nights hold few
items (discrete counts) and the count, lift and cooldown gates thin the alarms. So the rate is
measured the way the rule runs: null streams of 5 min buckets at the watch's volume (following
the day/night cycle) and the frame's share, the EWMA baseline estimated from the simulated hours
before each window, the gates and the cooldown applied, and the score threshold bisected until
alerts per week match the rate asked for. Cached per volume and share band, like the shift and
drift thresholds (:mod:`.calibrate`).
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import NamedTuple

import numpy as np

from framewatch.processing.changes.calibrate import DAY_CYCLE, band_centre, share_band, volume_band

__all__ = ["Gates", "null_scores", "share_band", "threshold", "volume_band", "weekly_alarms"]

STEP_S = 300


class Gates(NamedTuple):
    """The spike rule's settings that shape its alarms besides the score."""

    min_count: int = 10
    min_lift: float = 0.25
    baseline_hours: int = 48
    halflife_h: float = 12.0
    cooldown_s: float = 6 * 3600.0
    window_s: int = 3600


DEFAULT_GATES = Gates()


def scores(count: np.ndarray, total: np.ndarray, p0: np.ndarray, n_eff: np.ndarray) -> np.ndarray:
    """The spike rule's score (``share_z``) of many windows at once: the normal approximation
    below 2, the exact beta-binomial upper tail as a normal quantile above (scipy's tail is
    1 - cdf: exact where thresholds lie, coarse past z 6, where any window alerts anyway)."""
    from scipy.special import ndtri
    from scipy.stats import betabinom

    p = np.clip(p0, 1e-6, 1 - 1e-6)
    n_b = np.maximum(n_eff, 1.0)
    var = total * p * (1 - p) + total * total * p * (1 - p) / n_b
    z = np.where(total > 0, (count - total * p) / np.sqrt(np.maximum(var, 1e-12)), 0.0)
    exact = z >= 2.0
    if exact.any():
        tail = betabinom.sf(count[exact] - 1, total[exact], p[exact] * n_b[exact], (1 - p[exact]) * n_b[exact])
        z[exact] = np.maximum(-ndtri(np.clip(tail, 1e-300, 0.5)), 0.0)
    return z


def null_scores(rng: np.random.Generator, streams: int, hours: int, mean_per_h: float, p0: float,
                gates: Gates) -> tuple[np.ndarray, np.ndarray]:
    """(scores, gates passed) of every 5 min step's window on null streams: (streams, steps)."""
    per = gates.window_s // STEP_S
    warm = gates.baseline_hours + 1
    total_h = warm + hours
    lam = np.repeat(np.resize(DAY_CYCLE, total_h) * mean_per_h / per, per)
    n5 = rng.poisson(np.broadcast_to(lam, (streams, len(lam)))).astype(np.float64)
    c5 = rng.binomial(n5.astype(np.int64), p0).astype(np.float64)
    nh, ch = n5.reshape(streams, total_h, per).sum(axis=2), c5.reshape(streams, total_h, per).sum(axis=2)
    # EWMA over the baseline hours before each hour (hour k's baseline: hours k-1, k-2, ...)
    decay = 0.5 ** (1.0 / gates.halflife_h)
    num, den, items = (np.zeros((streams, total_h)) for _ in range(3))
    for i in range(gates.baseline_hours):
        w = decay ** i
        num[:, i + 1:] += w * ch[:, :total_h - i - 1]
        den[:, i + 1:] += w * nh[:, :total_h - i - 1]
        items[:, i + 1:] += nh[:, :total_h - i - 1]
    p_base = (num + 0.5) / (den + 1.0)
    # windows of *per* buckets ending at every step after the warm-up; baseline of the start's hour
    cc, cn = np.cumsum(c5, axis=1), np.cumsum(n5, axis=1)
    ends = np.arange(warm * per, total_h * per)
    count, total = cc[:, ends - 1] - cc[:, ends - per - 1], cn[:, ends - 1] - cn[:, ends - per - 1]
    hour = (ends - per) // per
    p_w, n_w = p_base[:, hour], den[:, hour]
    z = scores(count, total, p_w, n_w)
    passed = (count >= gates.min_count) & (total > 0) & (count >= total * p_w * (1 + gates.min_lift))
    return z, passed


def weekly_alarms(z: np.ndarray, passed: np.ndarray, h: float, cooldown_steps: int) -> float:
    """Alerts per stream-week at score threshold *h*, one alert per cooldown."""
    alarms = 0
    for row in np.flatnonzero(((z >= h) & passed).any(axis=1)):
        last = -cooldown_steps
        for i in np.flatnonzero((z[row] >= h) & passed[row]).tolist():
            if i - last >= cooldown_steps:
                alarms, last = alarms + 1, i
    weeks = z.shape[0] * z.shape[1] * STEP_S / (7 * 86400)
    return alarms / weeks


@functools.lru_cache(maxsize=512)
def threshold(rate_per_week: float, volume: int, share: int, gates: Gates = DEFAULT_GATES,
              streams: int = 300, hours: int = 336) -> float:
    """The score threshold whose simulated false alerts per week are *rate_per_week*, in one
    volume and share band. Never below 2 (where the score is the normal approximation)."""
    mean, p0 = band_centre(volume, share)
    rng = np.random.default_rng(zlib.crc32(f"spike:{volume}:{share}:{gates}".encode()))
    z, passed = null_scores(rng, streams, hours, mean, p0, gates)
    cooldown = max(1, math.ceil(gates.cooldown_s / STEP_S))
    lo, hi = 2.0, 12.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if weekly_alarms(z, passed, mid, cooldown) > rate_per_week:
            lo = mid
        else:
            hi = mid
    return round(hi, 3)
