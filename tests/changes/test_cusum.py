"""The binomial CUSUM: its evidence per hour, its change point, and the share interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from framewatch.processing.changes.cusum import (
    cusum,
    cusum_paths,
    increments,
    llr_weights,
    refine_change,
    share_interval,
)


def test_llr_weights_are_the_log_likelihood_ratio() -> None:
    w_in, w_out = llr_weights(0.2, 0.5)
    assert w_in == pytest.approx(math.log(0.3 / 0.2))
    assert w_out == pytest.approx(math.log(0.7 / 0.8))


def test_evidence_grows_with_the_items_of_an_hour() -> None:
    # the same share: a busy hour carries ten times the evidence of a quiet one
    quiet, busy = increments(np.array([3.0, 30.0]), np.array([10.0, 100.0]), 0.2, 0.5)
    assert busy == pytest.approx(10 * quiet)
    assert quiet > 0
    # at the baseline share the expected evidence is negative (the statistic drifts to 0)
    assert increments(np.array([20.0]), np.array([100.0]), 0.2, 0.5)[0] < 0


def test_cusum_resets_at_zero_and_names_the_excursion_start() -> None:
    llr = np.array([-1.0, 2.0, -3.0, 1.0, 1.5, -0.5, 2.0])
    run = cusum(llr, threshold=3.5)
    # the last reset is after hour 2 (2 - 3 < 0): the excursion starts at hour 3
    assert run.change_index == 3
    assert run.statistic == pytest.approx(4.0)
    assert run.crossed_at == 6
    assert cusum(llr, threshold=10).crossed_at is None
    paths = cusum_paths(np.vstack([llr, -llr]))
    assert paths[0, -1] == pytest.approx(run.statistic)
    assert (paths >= 0).all()


def test_share_interval_covers_the_share() -> None:
    p, lo, hi = share_interval(30, 100)
    assert p == 0.3 and lo < 0.3 < hi
    assert hi - lo == pytest.approx(2 * 1.645 * math.sqrt(0.3 * 0.7 / 100), rel=0.05)
    assert share_interval(0, 0) == (0.0, 0.0, 1.0)
    # fewer items, wider interval
    _, lo_small, hi_small = share_interval(3, 10)
    assert hi_small - lo_small > hi - lo


def test_refine_change_finds_the_split_of_a_clear_step() -> None:
    counts = np.array([2, 2, 2, 2, 6, 6, 6, 6], dtype=float)
    totals = np.full(8, 10.0)
    assert refine_change(counts, totals, 0.2, 0, 8) == 4
