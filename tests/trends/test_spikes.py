"""Spike scoring with known inputs, cooldown, the emergent growth rule, and back-fills."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from framewatch.contracts import AggregateContribution
from framewatch.processing.trends.codec import contribution_of
from framewatch.processing.trends.counts import AggregateState, row_of
from framewatch.processing.trends.spikes import (
    EMERGENT_GROWTH,
    SHARE_SPIKE,
    SpikeConfig,
    SpikeDetector,
    binomial_z,
    current_window_end,
    evaluate_emergent,
    evaluate_share,
    ewma_share,
    in_cooldown,
    poisson_z,
    share_z,
)
from framewatch.processing.trends.stage import alert_of
from tests.helpers.framed_records import T0, framed

S0 = int(T0.timestamp())  # 09:00
CFG = SpikeConfig(z_threshold=4.0, min_count=10, min_lift=0.25, baseline_hours=24, min_baseline_items=50,
                  false_alarms_per_week=None)  # a fixed threshold: these tests pin the rule itself


def test_binomial_z_known_values() -> None:
    assert binomial_z(30, 100, 0.2) == pytest.approx(10 / 4)
    assert binomial_z(20, 100, 0.2) == 0.0
    assert binomial_z(0, 0, 0.2) == 0.0
    # the baseline's own uncertainty widens the variance
    assert binomial_z(30, 100, 0.2, baseline_n=100) == pytest.approx(10 / math.sqrt(16 + 16))


def test_share_z_is_the_exact_tail_as_a_z() -> None:
    from scipy.stats import betabinom, norm

    # the exact beta-binomial tail P(X >= 34), as the normal quantile
    tail = betabinom.sf(33, 100, 0.2 * 1000, 0.8 * 1000)
    assert share_z(34, 100, 0.2, 1000) == pytest.approx(norm.isf(tail), rel=1e-6)
    # a small share's count is right-skewed: the same normal z is a likelier count than it says
    assert share_z(22, 100, 0.1, 1e6) < binomial_z(22, 100, 0.1, 1e6) - 0.3
    # a large share is close to symmetric: exact and normal agree
    assert share_z(68, 100, 0.5, 1e6) == pytest.approx(binomial_z(68, 100, 0.5, 1e6), abs=0.2)
    # monotone in the count; the cheap approximation below 2
    scores = [share_z(c, 100, 0.2, 2000) for c in range(20, 60)]
    assert scores == sorted(scores)
    assert share_z(21, 100, 0.2, 2000) == binomial_z(21, 100, 0.2, 2000)
    # a tail beyond float range stays finite and large
    huge = share_z(9000, 10_000, 0.2, 2000)
    assert math.isfinite(huge) and huge >= 37


def test_poisson_z_and_ewma() -> None:
    assert poisson_z(9, 4) == pytest.approx(2.5)
    assert poisson_z(3, 0) == pytest.approx(2.0)  # expected floored at 1
    share, n = ewma_share([20, 20], [100, 100], halflife_h=1.0)
    assert share == pytest.approx((30 + 0.5) / (150 + 1))
    assert n == pytest.approx(150)
    assert ewma_share([], [], 12.0) == (0.5, 0.0)


def test_current_window_end_is_next_five_minute_boundary() -> None:
    assert current_window_end(S0 + 61) == S0 + 300
    assert current_window_end(S0) == S0 + 300


def _contributions_of_history(hours: int, per_hour: int, share: float, frame: str = "a") -> list[AggregateContribution]:
    cs: list[AggregateContribution] = []
    for h in range(1, hours + 1):
        for i in range(per_hour):
            f = frame if i < round(share * per_hour) else "other"
            at = T0 - timedelta(hours=h) + timedelta(seconds=i * 3600 // per_hour)
            cs.append(contribution_of(framed(f"h{h}.{i}", frame=f, at=at), 0))
    return cs


def _history(state: AggregateState, hours: int, per_hour: int, share: float, frame: str = "a") -> None:
    """Steady history before 09:00: *per_hour* items an hour, *share* of them of *frame*."""
    state.apply(_contributions_of_history(hours, per_hour, share, frame))


def _window(state: AggregateState, n: int, k: int, frame: str = "a", start: int = 0) -> None:
    """*n* items in 09:00-10:00, *k* of them of *frame*."""
    state.apply([
        contribution_of(framed(f"w{start + i}", frame=frame if i < k else "other",
                               at=T0 + timedelta(seconds=i * 3500 // n)), 0)
        for i in range(n)
    ])


def test_share_spike_scores_and_fires() -> None:
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    _window(state, 100, 45)
    ev = evaluate_share(state, "scs", "a", S0 + 3600, CFG)
    assert ev.rule == SHARE_SPIKE and ev.count == 45 and ev.total == 100
    assert ev.baseline_share == pytest.approx(0.2, abs=0.01)
    assert ev.observed_share == 0.45
    assert ev.score > 5 and ev.fires


def test_no_spike_at_baseline_share_or_below_min_count() -> None:
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    _window(state, 100, 21)
    assert not evaluate_share(state, "scs", "a", S0 + 3600, CFG).fires
    small = AggregateState()
    _history(small, 24, 100, 0.01)
    _window(small, 20, 8)  # share 0.4 vs 0.01: huge z, but only 8 items
    ev = evaluate_share(small, "scs", "a", S0 + 3600, CFG)
    assert ev.score > CFG.z_threshold and not ev.fires


def test_no_alert_without_enough_baseline() -> None:
    state = AggregateState()
    _window(state, 100, 60)
    assert not evaluate_share(state, "scs", "a", S0 + 3600, CFG).fires


def test_cooldown_makes_one_spike_alert_once() -> None:
    assert in_cooldown(S0, S0 + 300, 3600) and not in_cooldown(S0, S0 + 3600, 3600)
    assert not in_cooldown(None, S0, 3600)
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    _window(state, 100, 45)
    detector = SpikeDetector(CFG)
    first = detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599)
    again = [detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599 + k * 300) for k in range(1, 6)]
    assert [ev.frame for ev in first] == ["a"]
    assert all(evs == [] for evs in again)
    restarted = SpikeDetector(CFG)
    restarted.remember("scs", "a", first[0].window_start_s)  # restored from the alerts topic
    assert restarted.evaluate(state, "scs", state.frames["scs"], S0 + 3899) == []


@pytest.mark.parametrize("route", ["own backlog", "another instance's rows"])
def test_a_cached_baseline_follows_history_that_comes_late(route: str) -> None:
    # The window first, its history after (a backlog read in a later batch, or another instance's
    # partial rows): the spike must be seen once the history is in, in the same window.
    state = AggregateState()
    _window(state, 100, 45)
    detector = SpikeDetector(CFG)
    assert detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599) == []  # no baseline yet
    if route == "own backlog":
        _history(state, 24, 100, 0.2)
    else:
        other = AggregateState()
        cs = [replace(c, partition=1) for c in _contributions_of_history(24, 100, 0.2)]
        rows = [row_of(v) for v in other.apply(cs).row_values]
        assert state.merge_foreign(rows, owned={0}) == len(rows)
    fired = detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599)
    fresh = SpikeDetector(CFG).evaluate(state, "scs", state.frames["scs"], S0 + 3599)
    assert [(ev.frame, ev.baseline_share, ev.score) for ev in fired] == [
        (ev.frame, ev.baseline_share, ev.score) for ev in fresh]
    assert [ev.frame for ev in fired] == ["a"] and fired[0].baseline_share == pytest.approx(0.2, abs=0.01)
    # and the cached baseline is used again while nothing before the window changes
    _window(state, 100, 45, start=100)
    assert detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599 + 300) == []  # cooldown
    assert detector.latest[("scs", "a")].baseline_share == fired[0].baseline_share


def test_backfilled_items_never_spike_the_current_window() -> None:
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    _window(state, 100, 20)
    # a back-fill of 200 old items, all of frame a, published three days ago
    state.apply([contribution_of(framed(f"old{i}", frame="a", at=T0 - timedelta(days=3, minutes=i % 50)), 0)
                 for i in range(200)])
    detector = SpikeDetector(CFG)
    assert detector.evaluate(state, "scs", state.frames["scs"], S0 + 3599) == []


def test_emergent_growth_rule() -> None:
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    frame = "emergent:9"
    seg = ((None, frame),)
    prev = [contribution_of(framed(f"p{i}", frame=None, segments=seg, at=T0 - timedelta(minutes=30 + i)), 0)
            for i in range(2)]
    now = [contribution_of(framed(f"n{i}", frame=None, segments=seg, at=T0 + timedelta(minutes=i)), 0)
           for i in range(12)]
    state.apply(prev + now)
    ev = evaluate_emergent(state, "scs", frame, S0 + 3600, state.first_seen[("scs", frame)], CFG)
    assert ev.rule == EMERGENT_GROWTH and ev.count == 12 and ev.fires
    assert ev.score == pytest.approx(poisson_z(12, 2))
    # an old emergent framing is not new any more
    old = evaluate_emergent(state, "scs", frame, S0 + 3600, S0 - 10 * 86400, CFG)
    assert not old.fires
    # slow growth does not fire
    slow = evaluate_emergent(state, "scs", frame, S0 + 3600, S0 - 3600, SpikeConfig(emergent_growth_factor=10))
    assert not slow.fires


def test_alert_carries_evidence_and_deterministic_key() -> None:
    state = AggregateState()
    _history(state, 24, 100, 0.2)
    _window(state, 100, 45)
    ev = SpikeDetector(CFG).evaluate(state, "scs", state.frames["scs"], S0 + 3599)[0]
    alert = alert_of(ev, state, T0 + timedelta(hours=1))
    assert alert.key == "scs:a:2026-11-26T09:00:00Z"
    assert alert.observed_count == 45 and alert.rule == SHARE_SPIKE
    assert len(alert.top_items) == 3
    assert all(it.url and it.title and it.passage and it.outlet for it in alert.top_items)


def test_stage_defers_spikes_while_catching_up_on_a_backlog() -> None:
    """Half-loaded windows and baselines give wrong evidence: the stage waits for the backlog."""
    from framewatch import contracts
    from framewatch.contracts import Alert, MessageContext
    from framewatch.kafka_io import Message
    from framewatch.processing.trends.stage import AggregateStage

    behind = [True]
    state = AggregateState()
    stage = AggregateStage(
        state, SpikeDetector(CFG), state_topic="s", aggregates_topic="a", alerts_topic="x",
        clock=lambda: T0 + timedelta(minutes=59), caught_up=lambda: not behind[0], max_defer_s=3600,
    )
    history = [framed(f"h{h}.{i}", frame="a" if i < 20 else "other", at=T0 - timedelta(hours=h, seconds=-i * 36))
               for h in range(1, 25) for i in range(100)]
    spike = [framed(f"w{i}", frame="a" if i < 45 else "other", at=T0 + timedelta(seconds=i * 35)) for i in range(100)]
    msgs = [Message(MessageContext("framed", 0, n, None), contracts.encode(r)) for n, r in enumerate(spike + history)]
    out = stage(msgs[:1200])  # the spike and half the history: a skewed baseline
    assert not [o for o in out.produce if o.topic == "x"]
    out = stage(msgs[1200:2000])
    assert not [o for o in out.produce if o.topic == "x"]
    behind[0] = False
    out = stage(msgs[2000:])  # caught up: the deferred watch is evaluated on the whole state
    alerts = [contracts.decode(Alert, o.value) for o in out.produce if o.topic == "x"]
    assert [(a.frame, a.observed_count) for a in alerts] == [("a", 45)]
    assert alerts[0].baseline_share == pytest.approx(0.2, abs=0.01)


def test_stage_evaluates_a_long_backlog_at_least_every_max_defer_s() -> None:
    from framewatch import contracts
    from framewatch.contracts import MessageContext
    from framewatch.kafka_io import Message
    from framewatch.processing.trends.stage import AggregateStage

    state = AggregateState()
    _history(state, 24, 100, 0.2)
    stage = AggregateStage(
        state, SpikeDetector(CFG), state_topic="s", aggregates_topic="a", alerts_topic="x",
        clock=lambda: T0 + timedelta(minutes=59), caught_up=lambda: False, max_defer_s=0,
    )
    spike = [framed(f"w{i}", frame="a" if i < 45 else "other", at=T0 + timedelta(seconds=i * 35)) for i in range(100)]
    out = stage([Message(MessageContext("framed", 0, n, None), contracts.encode(r)) for n, r in enumerate(spike)])
    assert [o.key for o in out.produce if o.topic == "x"] == ["scs:a:2026-11-26T09:00:00Z"]


def test_an_idle_stage_sweeps_every_watch_once_per_max_defer_s() -> None:
    """With no batch coming (the loop's idle hook), a watch whose data arrived otherwise (a
    restore, other instances' rows) is still evaluated: every watch, at most once per max_defer_s."""
    from framewatch import contracts
    from framewatch.contracts import Alert
    from framewatch.processing.trends.stage import AggregateStage

    state = AggregateState()
    _history(state, 24, 100, 0.2)
    state.apply([contribution_of(framed(f"w{i}", frame="a" if i < 45 else "other", at=T0 + timedelta(seconds=i * 35)), 0)
                 for i in range(100)])  # loaded behind the stage's back, as a restore does
    waiting = AggregateStage(state, SpikeDetector(CFG), state_topic="s", aggregates_topic="a", alerts_topic="x",
                             clock=lambda: T0 + timedelta(minutes=59), max_defer_s=3600)
    assert waiting(()).produce == []  # swept at most once per hour: not yet
    sweeping = AggregateStage(state, SpikeDetector(CFG), state_topic="s", aggregates_topic="a", alerts_topic="x",
                              clock=lambda: T0 + timedelta(minutes=59), max_defer_s=0)
    alerts = [contracts.decode(Alert, o.value) for o in sweeping(()).produce if o.topic == "x"]
    assert [(a.watch_id, a.frame, a.observed_count) for a in alerts] == [("scs", "a", 45)]
    assert sweeping(()).produce == []  # the cooldown holds on the next sweep
