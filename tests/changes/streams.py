"""Simulated watches for the change-detection tests: hourly volumes with a day/night cycle,
a frame at a base share, optionally a planted step or ramp, loaded into a real AggregateState."""

from __future__ import annotations

import numpy as np

from framewatch.contracts import ANY
from framewatch.processing.changes.calibrate import DAY_CYCLE
from framewatch.processing.trends.counts import AggregateState

T0_S = 1_767_225_600  # 2026-01-01 00:00 UTC
FRAME = "trust"


def five_minute_counts(rng: np.random.Generator, hours: int, rate: float, p0: float,
                       lift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frame counts, totals) per 5 min bucket; *lift* is the relative share rise per bucket."""
    per_bucket = np.repeat(np.resize(DAY_CYCLE, hours) * rate / 12, 12)
    totals = rng.poisson(per_bucket)
    share = p0 * (1 + (lift if lift is not None else 0.0))
    return rng.binomial(totals, np.clip(share, 0, 1)), totals


def step_lift(hours: int, start_bucket: int, length_buckets: int, lift: float) -> np.ndarray:
    """+*lift* for *length_buckets* 5 min buckets from *start_bucket*."""
    out = np.zeros(hours * 12)
    out[start_bucket:start_bucket + length_buckets] = lift
    return out


def ramp_lift(hours: int, start_bucket: int, length_buckets: int) -> np.ndarray:
    """A share rising linearly to twice its base over *length_buckets*, then holding."""
    out = np.zeros(hours * 12)
    k = np.arange(hours * 12) - start_bucket
    out[k >= 0] = np.minimum(k[k >= 0] / length_buckets, 1.0)
    return out


def load(counts: np.ndarray, totals: np.ndarray, watch: str = "w1") -> AggregateState:
    """An AggregateState holding these 5 min counts (and their hours) from T0_S."""
    state = AggregateState()
    cells = []
    for gran, size in (("5m", 1), ("1h", 12)):
        c = counts.reshape(-1, size).sum(axis=1)
        n = totals.reshape(-1, size).sum(axis=1)
        step = 300 * size
        for i, (ci, ni) in enumerate(zip(c.tolist(), n.tolist(), strict=True)):
            if ni:
                cells.append((gran, T0_S + i * step, ANY, ANY, ni, ni))
            if ci:
                cells.append((gran, T0_S + i * step, FRAME, ANY, ci, ci))
    state.install_cells(0, watch, cells)
    return state
