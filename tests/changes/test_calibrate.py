"""Calibration: run lengths under no change match the stated false-alarm rate.

The check is independent of the calibration's own simulator: fresh streams (another generator,
a baseline estimated by the live code, the median of seven simulated days) run through the live
statistics, and the alarms per hour watched are compared with the rate asked for.
"""

from __future__ import annotations

import numpy as np
import pytest

from framewatch.processing.changes import calibrate
from framewatch.processing.changes.baseline import robust_share
from framewatch.processing.changes.cusum import cusum, fall_lift, increments
from framewatch.processing.changes.drift import ramp_paths

ARL_H = 168.0  # one false alarm a week: short enough to measure in a test


def live_streams(seed: int, streams: int, hours: int, rate: float, p0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Null streams and each one's baseline share, as the detector estimates it."""
    rng = np.random.default_rng(seed)
    cycle = np.resize(calibrate.DAY_CYCLE, 168 + hours) * rate
    totals = rng.poisson(np.broadcast_to(cycle, (streams, 168 + hours))).astype(float)
    counts = rng.binomial(totals.astype(int), p0).astype(float)
    shares = []
    for c, n in zip(counts[:, :168], totals[:, :168], strict=True):
        base = robust_share(c, n)
        assert base is not None
        shares.append(base.share)
    return counts[:, 168:], totals[:, 168:], np.array(shares)


def observed_arl(first_alarm: list[int | None], hours: int) -> float:
    """Hours watched per alarm (run lengths censored at *hours*)."""
    alarms = sum(a is not None for a in first_alarm)
    watched = sum(hours if a is None else a + 1 for a in first_alarm)
    return watched / max(1, alarms)


@pytest.mark.parametrize(("rate", "p0", "lift"), [(100.0, 0.2, 0.5), (20.0, 0.35, 0.5), (100.0, 0.3, fall_lift(0.5)),
                                                  (20.0, 0.2, fall_lift(0.5))])
def test_shift_run_length_matches_the_stated_rate(rate: float, p0: float, lift: float) -> None:
    # rises (+50%) and falls (-1/3), each calibrated on its own
    h = calibrate.threshold(calibrate.SHIFT, ARL_H, calibrate.volume_band(rate), calibrate.share_band(p0), lift)
    hours = 400
    counts, totals, shares = live_streams(11, 300, hours, rate, p0)
    first = [cusum(increments(c, n, s, lift), h).crossed_at for c, n, s in zip(counts, totals, shares, strict=True)]
    arl = observed_arl(first, hours)
    # band centres are not the exact volume and share, and 300 streams leave ~10% noise
    assert 0.6 * ARL_H < arl < 1.6 * ARL_H, (h, arl)


def test_drift_run_length_matches_the_stated_rate() -> None:
    rate, p0 = 100.0, 0.3
    h = calibrate.threshold(calibrate.DRIFT, ARL_H, calibrate.volume_band(rate), calibrate.share_band(p0))
    hours = 400
    counts, totals, shares = live_streams(12, 400, hours + 72, rate, p0)
    paths = ramp_paths(counts, totals, shares[:, None])[:, 72:]  # a full window, as live
    first = [int(np.argmax(row > h)) if (row > h).any() else None for row in paths]
    arl = observed_arl(first, hours)
    assert 0.6 * ARL_H < arl < 1.6 * ARL_H, (h, arl)


def test_stricter_rates_need_higher_thresholds_and_more_items_need_more() -> None:
    vb, sb = calibrate.volume_band(100), calibrate.share_band(0.2)
    week, quarter = (calibrate.threshold(calibrate.SHIFT, a, vb, sb) for a in (168.0, 13 * 168.0))
    assert quarter > week + 1.5  # the ARL of a CUSUM grows about as e^h
    assert calibrate.threshold(calibrate.SHIFT, 168.0, calibrate.volume_band(5), sb) < week


def test_bands_round_trip() -> None:
    vb, sb = calibrate.volume_band(100), calibrate.share_band(0.2)
    mean, share = calibrate.band_centre(vb, sb)
    assert 100 / 2 ** 0.25 <= mean <= 100 * 2 ** 0.25
    assert calibrate.share_band(share) == sb
