"""Shift evidence: binomial CUSUMs (up and down) on a frame's hourly share, its change point and the share since."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# shares are clipped away from 0 and 1: a log-likelihood ratio needs both outcomes possible
_EPS = 1e-4


def clip_share(p: float) -> float:
    """*p* kept inside (0, 1)."""
    return min(max(p, _EPS), 1 - _EPS)


def llr_weights(p0: float, lift: float) -> tuple[float, float]:
    """Log-likelihood ratio of one item in / not in the frame, share p1 = p0 (1 + lift) against p0."""
    p0 = clip_share(p0)
    p1 = clip_share(p0 * (1 + lift))
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def increments(counts: np.ndarray, totals: np.ndarray, p0: float, lift: float) -> np.ndarray:
    """Hourly log-likelihood ratios: an hour of n items carries n items' evidence, so a quiet
    night moves the statistic little and a busy hour much (volume needs no other correction)."""
    w_in, w_out = llr_weights(p0, lift)
    return counts * w_in + (totals - counts) * w_out


@dataclass(frozen=True, slots=True)
class CusumRun:
    """A CUSUM over hours: its value after the last hour, its peak, where the current excursion
    began (the estimated change point, an hour index) and the first hour it crossed a threshold."""

    statistic: float
    change_index: int
    crossed_at: int | None


def cusum(llr: np.ndarray, threshold: float = math.inf) -> CusumRun:
    """Page's CUSUM S_t = max(0, S_{t-1} + llr_t) over *llr* (one value per hour).

    The change point is the hour after the excursion's last zero: the maximum-likelihood onset
    of a step of the designed size (the split that maximises the summed evidence after it).
    """
    s = 0.0
    start = 0
    crossed: int | None = None
    for i, x in enumerate(llr.tolist()):
        s += x
        if s <= 0.0:
            s, start = 0.0, i + 1
        elif crossed is None and s > threshold:
            crossed = i
    return CusumRun(s, start, crossed)


def cusum_paths(llr: np.ndarray) -> np.ndarray:
    """CUSUM values of many streams at once (rows: streams, columns: hours)."""
    out = np.empty_like(llr, dtype=np.float64)
    s = np.zeros(llr.shape[0])
    for t in range(llr.shape[1]):
        s = np.maximum(s + llr[:, t], 0.0)
        out[:, t] = s
    return out


def share_interval(count: int, total: int, z: float = 1.645) -> tuple[float, float, float]:
    """Share and its Wilson interval (90% by default) of *count* of *total* items."""
    if total <= 0:
        return 0.0, 0.0, 1.0
    p = count / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def fall_lift(lift: float) -> float:
    """The relative fall that mirrors a rise of *lift* (+50% -> -1/3: the same log-ratio)."""
    return -lift / (1 + lift)


def refine_change(counts: np.ndarray, totals: np.ndarray, p0: float, lo: int, hi: int, up: bool = True) -> int:
    """The split in [lo, hi) (fine buckets) that maximises the binomial likelihood of share *p0*
    before and the fitted share after (above *p0* for a rise, below for a fall): the change
    point at finer resolution than the CUSUM's."""
    best, best_ll = lo, -math.inf
    after_c = np.cumsum(counts[::-1])[::-1]
    after_n = np.cumsum(totals[::-1])[::-1]
    w0_in, w0_out = math.log(clip_share(p0)), math.log(1 - clip_share(p0))
    before = np.concatenate([[0.0], np.cumsum(counts * w0_in + (totals - counts) * w0_out)])
    for k in range(lo, min(hi, len(counts))):
        c, n = float(after_c[k]), float(after_n[k])
        p1 = clip_share(c / n) if n else clip_share(p0)
        if (p1 <= p0) if up else (p1 >= p0):
            continue
        ll = before[k] + c * math.log(p1) + (n - c) * math.log(1 - p1)
        if ll > best_ll:
            best, best_ll = k, ll
    return best
