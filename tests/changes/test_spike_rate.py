"""The spike rule's calibrated threshold: alerts per week under no change match the stated rate.

The check runs the live rule's own functions (EWMA baseline, beta-binomial score, gates,
cooldown) over fresh null streams from the tests' generator, not the calibration's simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from framewatch.processing.changes import spike_rate
from framewatch.processing.trends.spikes import (
    SpikeConfig,
    ewma_share,
    in_cooldown,
    score_threshold,
    share_z,
)
from tests.changes.streams import five_minute_counts

RATE = 1.0  # false alerts per watch x frame and week: frequent enough to count in a test


def live_alerts_per_week(seed: int, streams: int, hours: int, rate: float, p0: float, h: float) -> float:
    """Alerts per week of the live spike rule at score threshold *h* on null streams."""
    cfg = SpikeConfig()
    alerts = 0
    warm = cfg.baseline_hours + 1
    for s in range(streams):
        c5, n5 = five_minute_counts(np.random.default_rng(seed + s), warm + hours, rate, p0)
        ch, nh = c5.reshape(-1, 12).sum(axis=1).tolist(), n5.reshape(-1, 12).sum(axis=1).tolist()
        cc, cn = np.concatenate([[0], np.cumsum(c5)]).tolist(), np.concatenate([[0], np.cumsum(n5)]).tolist()
        last: int | None = None
        base: dict[int, tuple[float, float, int]] = {}
        for end in range(warm * 12, (warm + hours) * 12):
            count, total = int(cc[end] - cc[end - 12]), int(cn[end] - cn[end - 12])
            hour = (end - 12) // 12
            if hour not in base:
                back = range(hour - 1, hour - 1 - cfg.baseline_hours, -1)
                share, n_eff = ewma_share([ch[i] for i in back], [nh[i] for i in back], cfg.halflife_h)
                base[hour] = (share, n_eff, int(sum(nh[i] for i in back)))
            share, n_eff, items = base[hour]
            if (items >= cfg.min_baseline_items and count >= cfg.min_count and total
                    and count / total >= share * (1 + cfg.min_lift) and share_z(count, total, share, n_eff) >= h
                    and not in_cooldown(last, end * 300, cfg.cooldown_s)):
                alerts, last = alerts + 1, end * 300
    return alerts / (streams * hours / 168)


@pytest.mark.parametrize(("rate", "p0"), [(100.0, 0.3), (25.0, 0.2)])
def test_spike_alerts_per_week_match_the_stated_rate(rate: float, p0: float) -> None:
    h = spike_rate.threshold(RATE, spike_rate.volume_band(rate), spike_rate.share_band(p0))
    observed = live_alerts_per_week(1000, 60, 336, rate, p0, h)
    # band centres are not the exact volume and share, and ~120 alerts leave ~10% noise
    assert 0.6 * RATE < observed < 1.6 * RATE, (h, observed)


def test_the_vectorised_score_is_the_live_one() -> None:
    rng = np.random.default_rng(5)
    total = rng.integers(1, 200, 400).astype(float)
    p0 = rng.uniform(0.05, 0.5, 400)
    count = rng.binomial(total.astype(int), np.minimum(p0 * rng.uniform(0.5, 2.5, 400), 1.0)).astype(float)
    n_eff = rng.uniform(50, 3000, 400)
    fast = spike_rate.scores(count, total, p0, n_eff)
    live = [share_z(int(c), int(n), float(p), float(b)) for c, n, p, b in zip(count, total, p0, n_eff, strict=True)]
    # the same where thresholds lie; past 6 (tails under 1e-9, where scipy's tail is 1 - cdf and
    # loses digits) both only say "far beyond any threshold"
    below = np.array(live) < 6
    assert below.sum() > 300
    assert fast[below] == pytest.approx(np.array(live)[below], abs=1e-3)
    assert (fast[~below] >= 5.9).all()


def test_stricter_rates_need_higher_thresholds_and_the_rule_uses_the_calibrated_one() -> None:
    vb, sb = spike_rate.volume_band(100), spike_rate.share_band(0.3)
    assert spike_rate.threshold(1 / 8, vb, sb) > spike_rate.threshold(1.0, vb, sb) + 0.3
    cfg = SpikeConfig(false_alarms_per_week=1 / 8)
    assert score_threshold(cfg, 100.0, 0.3) == spike_rate.threshold(1 / 8, vb, sb)
    assert score_threshold(SpikeConfig(false_alarms_per_week=None, z_threshold=4.2), 100.0, 0.3) == 4.2
