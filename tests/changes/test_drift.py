"""The ramp GLR: its z on known inputs, the paths' agreement with the single-stream score."""

from __future__ import annotations

import numpy as np
import pytest

from framewatch.processing.changes.drift import LAGS, drift_score, ramp_paths, ramp_z


def test_ramp_z_is_the_matched_filter() -> None:
    totals = np.full((1, 24), 100.0)
    counts = np.full((1, 24), 20.0)
    counts[0, -12:] += np.arange(1, 13)  # a rise of one item per hour over the last 12 hours
    z = ramp_z(counts, totals, 0.2, lags=(12,))[0, 0]
    w = np.arange(1, 13)
    assert z == pytest.approx((w * w).sum() / np.sqrt((w * w).sum() * 100 * 0.2 * 0.8))


def test_a_flat_share_scores_near_zero_and_a_ramp_high() -> None:
    rng = np.random.default_rng(3)
    totals = np.full(72, 100.0)
    flat = rng.binomial(100, 0.2, 72).astype(float)
    ramp = rng.binomial(100, 0.2 * (1 + np.linspace(0, 1, 72))).astype(float)
    assert drift_score(flat, totals, 0.2).z < 3
    found = drift_score(ramp, totals, 0.2)
    assert found.z > 6
    assert found.lag_h >= 48  # the ramp is long: a long lag fits it best


def test_paths_match_the_single_stream_score() -> None:
    rng = np.random.default_rng(5)
    totals = rng.poisson(100, (3, 150)).astype(float)
    counts = rng.binomial(totals.astype(int), 0.3).astype(float)
    paths = ramp_paths(counts, totals, 0.3)
    for t in (80, 120, 149):
        window = slice(t + 1 - max(LAGS), t + 1)
        assert paths[:, t] == pytest.approx([drift_score(c[window], n[window], 0.3).z for c, n in zip(counts, totals, strict=True)])
