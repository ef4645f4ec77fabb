"""The detector on a real AggregateState: planted steps and ramps found in time with their
change point, a quiet night left alone, and an alert that holds raised once."""

from __future__ import annotations

import numpy as np
import pytest

from framewatch.processing.changes.detector import (
    DRIFT,
    SHIFT,
    ChangeConfig,
    ChangeDetector,
    still_held,
)
from tests.changes.streams import FRAME, T0_S, five_minute_counts, load, ramp_lift, step_lift

HISTORY_H = 8 * 24  # a week of baseline and a day before the change
HOURS = HISTORY_H + 48


def replay(detector: ChangeDetector, counts: np.ndarray, totals: np.ndarray, from_h: int, to_h: int) -> list:
    """Evaluate every completed hour in [from_h, to_h) on the counts known by then."""
    found = []
    for h in range(from_h, to_h):
        end = (h + 1) * 12
        state = load(counts[:end], totals[:end])
        found += detector.evaluate(state, "w1", {FRAME}, T0_S + (h + 1) * 3600 + 60)
    return found


def test_six_hour_steps_are_found_within_three_hours_with_their_change_point() -> None:
    good = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        # by day (10:05 to 10:55 UTC; nights have a fifth of the items, and take longer)
        start = (HISTORY_H + 10) * 12 + int(rng.integers(1, 11))
        counts, totals = five_minute_counts(rng, HOURS, 100, 0.3, step_lift(HOURS, start, 72, 0.5))
        found = replay(ChangeDetector(), counts, totals, HISTORY_H + 9, HISTORY_H + 17)
        assert found, f"seed {seed}: the step went unseen"
        first, truth = found[0], T0_S + start * 300
        assert first.detected_hour_s - truth <= 6 * 3600
        # the hour the evidence completes in counts: 3 h of delay, plus the rest of that hour
        good += first.kind == SHIFT and abs(first.change_point_s - truth) <= 3600 and first.detected_hour_s - truth <= 4 * 3600
        if first.kind == SHIFT:
            assert first.share_before == pytest.approx(0.3, abs=0.03)
            assert first.share_before < first.share_after_low < first.share_after < first.share_after_high
            assert first.detector == "binomial_cusum" and first.false_alarms_per_week == pytest.approx(1 / 32)
    assert good >= 9


@pytest.mark.parametrize("seed", range(3))
def test_a_ramp_doubling_over_three_days_is_found_within_a_day(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    start = HISTORY_H * 12 + 5
    counts, totals = five_minute_counts(rng, HOURS + 24, 100, 0.3, ramp_lift(HOURS + 24, start, 72 * 12))
    found = replay(ChangeDetector(), counts, totals, HISTORY_H, HISTORY_H + 24)
    assert found, "the ramp went unseen for a day"
    assert found[0].kind in (SHIFT, DRIFT)
    assert found[0].detected_hour_s - (T0_S + start * 300) <= 86400


def test_no_change_no_alert_and_a_quiet_night_is_not_a_shift() -> None:
    rng = np.random.default_rng(42)
    counts, totals = five_minute_counts(rng, HOURS, 100, 0.2)
    # two night hours with only 3 items each, all of them in the frame (share 100%)
    for h in (HISTORY_H + 2, HISTORY_H + 3):
        totals[h * 12:(h + 1) * 12] = 0
        counts[h * 12:(h + 1) * 12] = 0
        totals[h * 12], counts[h * 12] = 3, 3
    assert replay(ChangeDetector(ChangeConfig("high")), counts, totals, HISTORY_H, HISTORY_H + 6) == []
    # the same share over a busy hour is a shift
    busy_c, busy_t = counts.copy(), totals.copy()
    h = HISTORY_H + 2
    busy_t[h * 12:(h + 1) * 12], busy_c[h * 12:(h + 1) * 12] = 20, 20
    assert [c.kind for c in replay(ChangeDetector(ChangeConfig("high")), busy_c, busy_t, HISTORY_H, HISTORY_H + 4)] == [SHIFT]


def test_a_shift_that_holds_alerts_once_and_a_new_detector_remembers() -> None:
    rng = np.random.default_rng(7)
    start = HISTORY_H * 12
    counts, totals = five_minute_counts(rng, HOURS, 100, 0.2, step_lift(HOURS, start, 48 * 12, 0.5))
    detector = ChangeDetector()
    found = replay(detector, counts, totals, HISTORY_H, HISTORY_H + 40)
    assert [c.kind for c in found] == [SHIFT]
    # a restarted aggregator restores the alert from the topic and stays quiet
    fresh = ChangeDetector()
    fresh.remember("w1", FRAME, found[0].detected_hour_s, found[0].share_after, found[0].change_point_s)
    later = found[0].detected_hour_s // 3600 - T0_S // 3600
    assert replay(fresh, counts, totals, later, later + 12) == []


def test_too_little_history_is_no_alert() -> None:
    rng = np.random.default_rng(1)
    counts, totals = five_minute_counts(rng, 80, 100, 0.2, step_lift(80, 70 * 12, 120, 1.0))
    assert replay(ChangeDetector(), counts, totals, 70, 80) == []


def test_a_step_that_ends_is_not_alerted_again_and_the_detector_rearms() -> None:
    rng = np.random.default_rng(8)
    hours = HISTORY_H + 96
    first, second = (HISTORY_H + 10) * 12, (HISTORY_H + 70) * 12
    lift = step_lift(hours, first, 24 * 12, 0.5) + step_lift(hours, second, 12 * 12, 0.5)
    counts, totals = five_minute_counts(rng, hours, 100, 0.3, lift)
    found = replay(ChangeDetector(), counts, totals, HISTORY_H, HISTORY_H + 84)
    assert [c.kind for c in found] == [SHIFT, SHIFT]
    assert abs(found[1].change_point_s - (T0_S + second * 300)) <= 3600


def test_still_held_says_when_the_alerted_level_ended() -> None:
    counts = np.array([2.0] * 10 + [5.0] * 10 + [2.0] * 10)
    totals = np.full(30, 10.0)
    assert still_held(counts[:20], totals[:20], 10, 0.35) is None
    # the last 6-hour share at the level ends at hour 22: the 7 hours after it are the new start
    assert still_held(counts, totals, 20, 0.35) == 7
    assert still_held(np.full(30, 2.0), totals, 20, 0.35) == 20


@pytest.mark.parametrize("seed", range(3))
def test_a_fall_is_a_shift_down_with_its_change_point_and_alerts_once(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    start = (HISTORY_H + 10) * 12 + int(rng.integers(1, 11))
    # the share falls by a third (the mirror of +50%) and stays down for a day
    counts, totals = five_minute_counts(rng, HOURS, 100, 0.3, step_lift(HOURS, start, 24 * 12, -1 / 3))
    found = replay(ChangeDetector(), counts, totals, HISTORY_H, HISTORY_H + 34)
    assert [c.kind for c in found] == [SHIFT], found
    fall, truth = found[0], T0_S + start * 300
    assert fall.share_after_high < fall.share_before == pytest.approx(0.3, abs=0.03)
    assert fall.share_after_low < fall.share_after < fall.share_after_high
    assert abs(fall.change_point_s - truth) <= 3600 and fall.detected_hour_s - truth <= 6 * 3600
    # its end (the share back at 30%) is a return, neither a rise nor another fall
    assert not [c for c in found if c.change_point_s > truth + 3600]


def test_still_held_after_a_fall_looks_for_shares_at_most_the_level() -> None:
    counts = np.array([5.0] * 10 + [2.0] * 10 + [5.0] * 10)
    totals = np.full(30, 10.0)
    assert still_held(counts[:20], totals[:20], 10, 0.35, up=False) is None
    assert still_held(counts, totals, 20, 0.35, up=False) == 7


def test_a_fall_that_only_mirrors_another_frames_rise_is_not_alerted() -> None:
    from framewatch.contracts import ANY
    from framewatch.processing.trends.counts import AggregateState

    rng = np.random.default_rng(9)
    start = (HISTORY_H + 10) * 12
    # frame a 20% -> 45%; frame b holds the rest, 80% -> 55% (a fall by almost a third)
    a, totals = five_minute_counts(rng, HOURS, 100, 0.2, step_lift(HOURS, start, 24 * 12, 1.25))
    found = []
    detector = ChangeDetector()
    for h in range(HISTORY_H + 10, HISTORY_H + 30):
        end = (h + 1) * 12
        state = AggregateState()
        cells = []
        for gran, size in (("5m", 1), ("1h", 12)):
            for frame, series in ((ANY, totals), ("a", a), ("b", totals - a)):
                sums = series[:end].reshape(-1, size).sum(axis=1).tolist()
                cells += [(gran, T0_S + i * 300 * size, frame, ANY, int(v), int(v)) for i, v in enumerate(sums) if v]
        state.install_cells(0, "w1", cells)
        found += detector.evaluate(state, "w1", {"a", "b"}, T0_S + end * 300 + 60)
    assert [(c.frame, c.share_after > c.share_before) for c in found] == [("a", True)], found
