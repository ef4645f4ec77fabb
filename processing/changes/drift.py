"""Drift evidence: a windowed GLR for a linear rise of a frame's share over days."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_H = 72  # the longest ramp considered: a share doubling over 3 days
LAGS = tuple(range(24, WINDOW_H + 1, 12))  # candidate onsets, hours before now (a day or more: shorter is a shift)


@dataclass(frozen=True, slots=True)
class DriftScore:
    """The best ramp ending now: its z (the square root of twice the GLR of a linear rise
    from *p0*, slope fitted) and its onset, hours before the last one."""

    z: float
    lag_h: int


def _shares(p0: float | np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p0, dtype=np.float64), 1e-4, 1 - 1e-4)


def ramp_z(counts: np.ndarray, totals: np.ndarray, p0: float | np.ndarray, lags: tuple[int, ...] = LAGS) -> np.ndarray:
    """z of a ramp starting *lag* hours before the end, for every lag, on many streams at once.

    *counts* and *totals* are (streams, hours); the last column is now. For an onset tau the
    matched filter sum_s (s - tau) (c_s - n_s p0) / sd is the GLR (normal approximation) of a
    share p0 (1 + b (s - tau)) with the slope b fitted; only rises count (z > 0). Returns
    (streams, lags). *p0* is a share or one share per stream (a column).
    """
    p0 = _shares(p0)
    hours = counts.shape[1]
    s = np.arange(hours, dtype=np.float64)
    excess = counts - totals * p0
    # suffix sums of excess, s * excess, n, s n, s^2 n: every lag's sums in O(1)
    def suffix(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x[:, ::-1], axis=1)[:, ::-1]
    e0, e1 = suffix(excess), suffix(excess * s)
    n0, n1, n2 = suffix(totals * 1.0), suffix(totals * s), suffix(totals * s * s)
    out = np.zeros((counts.shape[0], len(lags)))
    for j, lag in enumerate(lags):
        k = max(0, hours - lag)
        tau = k - 1.0  # the hour before the first ramp hour: its weight is 0
        num = e1[:, k] - tau * e0[:, k]
        var = (n2[:, k] - 2 * tau * n1[:, k] + tau * tau * n0[:, k]) * p0 * (1 - p0)
        out[:, j] = np.where(var > 0, num / np.sqrt(np.maximum(var, 1e-12)), 0.0)
    return out


def ramp_paths(counts: np.ndarray, totals: np.ndarray, p0: float | np.ndarray, lags: tuple[int, ...] = LAGS) -> np.ndarray:
    """The drift statistic (best lag's z) at every hour of many streams (streams, hours), each
    hour seeing only the hours before it (a window of the longest lag)."""
    p0 = _shares(p0)
    hours = counts.shape[1]
    s = np.arange(hours, dtype=np.float64)
    excess = counts - totals * p0
    def prefix(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    e0, e1 = prefix(excess), prefix(excess * s)
    n0, n1, n2 = prefix(totals * 1.0), prefix(totals * s), prefix(totals * s * s)
    best = np.full(counts.shape, -np.inf)
    ends = np.arange(1, hours + 1)
    for lag in lags:
        k = np.maximum(ends - lag, 0)
        tau = k - 1.0
        num = (e1[:, ends] - e1[:, k]) - tau * (e0[:, ends] - e0[:, k])
        var = ((n2[:, ends] - n2[:, k]) - 2 * tau * (n1[:, ends] - n1[:, k]) + tau * tau * (n0[:, ends] - n0[:, k])) * p0 * (1 - p0)
        z = np.where(var > 0, num / np.sqrt(np.maximum(var, 1e-12)), 0.0)
        np.maximum(best, z, out=best)
    return best


def drift_score(counts: np.ndarray, totals: np.ndarray, p0: float) -> DriftScore:
    """The drift statistic of one stream of hours (last = now) and the onset of its best ramp
    (hourly: every lag up to the window's, where detection looks at the coarse LAGS only)."""
    c, n = counts[None, :].astype(np.float64), totals[None, :].astype(np.float64)
    z = float(ramp_z(c, n, p0)[0].max())
    fine = tuple(range(1, WINDOW_H + 1))
    onset = ramp_z(c, n, p0, fine)[0]
    return DriftScore(z, fine[int(np.argmax(onset))])
