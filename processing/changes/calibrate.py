"""Thresholds from false-alarm rates: null streams simulated at a watch's volume and share.

A detector's threshold is the value whose average run length under no change (ARL, in hours)
is the rate asked for. It is found on simulated streams: Poisson hourly volumes following a
day/night cycle around the watch's mean, binomial frame counts at the baseline share, and a
baseline share estimated from seven simulated days (so its error counts as noise, as it does
live). Run lengths are censored at the simulation's length; the alarm hazard is alarms over
hours watched (run lengths of these detectors are close to geometric), and the threshold is
bisected until 1 / hazard is the target. Thresholds are cached per volume band (steps of
2^(1/2)) and share band (steps of 0.5 in logit), so a watch pays for a calibration once.
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np

from framewatch.processing.changes.cusum import cusum_paths, llr_weights
from framewatch.processing.changes.drift import WINDOW_H, ramp_paths

SHIFT = "shift"
DRIFT = "drift"
BASELINE_DAYS = 7
# the shape of a day's volume, mean 1 (busiest mid-afternoon UTC, quietest at night: 5x apart)
DAY_CYCLE = 1 + 0.66 * np.cos(2 * np.pi * (np.arange(24) - 14) / 24)


def volume_band(mean_per_h: float) -> int:
    """Band of a watch's mean items per hour (steps of 2^(1/2))."""
    return round(2 * math.log2(max(mean_per_h, 0.25)))


def share_band(p0: float) -> int:
    """Band of a baseline share (steps of 0.5 in logit)."""
    p = min(max(p0, 1e-3), 1 - 1e-3)
    return round(math.log(p / (1 - p)) / 0.5)


def band_centre(volume: int, share: int) -> tuple[float, float]:
    """Mean items per hour and share at the centre of a band."""
    return 2 ** (volume / 2), 1 / (1 + math.exp(-share * 0.5))


def null_streams(rng: np.random.Generator, streams: int, hours: int, mean_per_h: float, p0: float,
                 days: int = BASELINE_DAYS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, totals, baseline share per stream as estimated from *days* days) with no change."""
    cycle = np.resize(DAY_CYCLE, hours) * mean_per_h
    totals = rng.poisson(np.broadcast_to(cycle, (streams, hours))).astype(np.float64)
    counts = rng.binomial(totals.astype(np.int64), p0).astype(np.float64)
    base_n = max(1, round(mean_per_h * 24 * days))
    # the median of daily shares is about 1.25x as noisy as the pooled share
    p_hat = p0 + 1.25 * math.sqrt(p0 * (1 - p0) / base_n) * rng.standard_normal((streams, 1))
    return counts, totals, np.clip(p_hat, 1e-4, 1 - 1e-4)


def shift_paths(counts: np.ndarray, totals: np.ndarray, p_hat: np.ndarray, lift: float) -> np.ndarray:
    """Binomial CUSUM paths, each stream against its own estimated baseline."""
    w = np.array([llr_weights(float(p), lift) for p in p_hat[:, 0]])
    return cusum_paths(counts * w[:, :1] + (totals - counts) * w[:, 1:])


def hazard(peaks: np.ndarray, threshold: float) -> float:
    """Alarms per hour watched: *peaks* are running maxima (streams, hours)."""
    below = (peaks <= threshold).sum(axis=1)  # hours before the first alarm (all, if none)
    alarms = int((below < peaks.shape[1]).sum())
    return alarms / max(1.0, float(below.sum() + alarms))


def solve(peaks: np.ndarray, arl_h: float, lo: float = 0.0, hi: float = 60.0) -> float:
    """The threshold whose simulated ARL is *arl_h* (bisection: the hazard falls as it rises)."""
    for _ in range(40):
        mid = (lo + hi) / 2
        if hazard(peaks, mid) > 1 / arl_h:
            lo = mid
        else:
            hi = mid
    return round(hi, 4)


def simulated_peaks(kind: str, mean_per_h: float, p0: float, lift: float, streams: int, hours: int, seed: int,
                    days: int = BASELINE_DAYS) -> np.ndarray:
    """Running maxima of a detector's statistic on null streams."""
    rng = np.random.default_rng(seed)
    warm = WINDOW_H if kind == DRIFT else 0  # the drift window fills before it counts
    counts, totals, p_hat = null_streams(rng, streams, hours + warm, mean_per_h, p0, days)
    if kind == SHIFT:
        paths = shift_paths(counts, totals, p_hat, lift)
    else:
        paths = ramp_paths(counts, totals, p_hat)[:, warm:]
    return np.maximum.accumulate(paths, axis=1)


@functools.lru_cache(maxsize=1024)
def threshold(kind: str, arl_h: float, volume: int, share: int, lift: float = 0.5,
              days: int = BASELINE_DAYS, streams: int = 0, hours: int = 1000) -> float:
    """The cached threshold of *kind* for an ARL of *arl_h* hours in one volume and share band,
    against a baseline of *days* days (fewer days, a noisier baseline, a higher threshold)."""
    mean, p0 = band_centre(volume, share)
    streams = streams or (1200 if kind == SHIFT else 600)  # the ramp statistic costs more per stream
    seed = zlib.crc32(f"{kind}:{volume}:{share}:{days}".encode())
    peaks = simulated_peaks(kind, mean, p0, lift, streams, hours, seed, days)
    # a floor only makes it stricter: where the simulation saw no alarm at all (high volume, an
    # hourly statistic whose null drift is far below 0) a lone odd hour still must not alert
    return max(1.0, solve(peaks, arl_h))
