"""Share of voice at scrape time: trailing windows, their boundary, scores and bounded labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from framewatch.metrics import TrendMetrics
from framewatch.processing.trends.codec import contribution_of
from framewatch.processing.trends.collector import ShareOfVoiceCollector, window_shares
from framewatch.processing.trends.counts import AggregateState
from tests.helpers.framed_records import T0, framed

S0 = int(T0.timestamp())


def test_window_shares_trailing_hour() -> None:
    state = AggregateState()
    state.apply([contribution_of(framed(i, at=T0 + timedelta(minutes=10 * i), frame="a" if i < 4 else "b"), 0)
                 for i in range(6)])
    df = window_shares(state.frame(), S0 + 3600, 3600)
    assert dict(zip(df["frame"], df["share"], strict=True)) == pytest.approx({"a": 4 / 6, "b": 2 / 6})
    df = window_shares(state.frame(), S0 + 3600, 1800)  # 09:30..10:00 holds items 3, 4, 5
    assert dict(zip(df["frame"], df["items"], strict=True)) == {"a": 1, "b": 2}


def test_window_is_half_open_like_the_buckets() -> None:
    """[now - 1h, now): at a bucket boundary the window holds exactly twelve 5-minute buckets;
    the bucket starting at ``now`` is the next window's, and the one starting at ``now - 1h``
    is this window's first."""
    state = AggregateState()
    state.apply([
        contribution_of(framed(1, frame="first", at=T0), 0),  # bucket S0: the window's first
        contribution_of(framed(2, frame="inside", at=T0 + timedelta(minutes=30)), 0),
        contribution_of(framed(3, frame="next", at=T0 + timedelta(hours=1)), 0),  # bucket S0+1h
    ])
    df = window_shares(state.frame(), S0 + 3600, 3600)
    assert dict(zip(df["frame"], df["items"], strict=True)) == {"first": 1, "inside": 1}
    assert df["share"].to_list() == [0.5, 0.5]
    later = window_shares(state.frame(), S0 + 3600 + 1, 3600)  # one second on: "next" is in, "first" out
    assert dict(zip(later["frame"], later["items"], strict=True)) == {"inside": 1, "next": 1}


def test_scraped_share_uses_the_same_boundary() -> None:
    state = AggregateState()
    state.apply([contribution_of(framed(1, frame="a", at=T0), 0),
                 contribution_of(framed(2, frame="b", at=T0 + timedelta(hours=1)), 0)])
    registry = CollectorRegistry()
    registry.register(ShareOfVoiceCollector(state.frame, dict, clock=lambda: T0.timestamp() + 3600))
    g = registry.get_sample_value
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "a", "window": "1h"}) == 1.0
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "1h"}) is None


def test_collector_computes_shares_scores_and_bounded_emergent_labels() -> None:
    state = AggregateState()
    cs = [contribution_of(framed(i, frame="a" if i < 3 else "b", at=T0 + timedelta(minutes=i)), 0) for i in range(4)]
    cs += [contribution_of(framed(f"e{k}.{j}", frame=None, segments=((None, f"emergent:{k}"),),
                                  at=T0 + timedelta(minutes=5)), 1)
           for k in range(4) for j in range(k + 1)]
    state.apply(cs)
    registry = CollectorRegistry()
    TrendMetrics(registry)
    registry.register(ShareOfVoiceCollector(
        state.frame, lambda: {("scs", "a"): (2.5, 0.2)}, clock=lambda: T0.timestamp() + 600, max_emergent=2,
    ))
    g = registry.get_sample_value
    assert g("framewatch_framed_items_total", {"watch": "scs", "frame": "a"}) == 3
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "a", "window": "1h"}) == 3 / 14
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "1d"}) == 1 / 14
    assert g("framewatch_spike_score", {"watch": "scs", "frame": "a"}) == 2.5
    assert g("framewatch_frame_baseline_share", {"watch": "scs", "frame": "a"}) == 0.2
    # four emergent framings, only the two largest are labels
    assert g("framewatch_emergent_frames", {"watch": "scs"}) == 2
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:3"}) == 4
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:2"}) == 3
    assert g("framewatch_emergent_frame_size", {"watch": "scs", "frame": "emergent:0"}) is None
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "emergent:0", "window": "1h"}) is None


def test_collector_outlet_label_only_when_configured() -> None:
    state = AggregateState(by_outlet=True)
    state.apply([contribution_of(framed(1, outlet="A"), 0), contribution_of(framed(2, outlet="B", frame="b"), 0)])
    registry = CollectorRegistry()
    registry.register(ShareOfVoiceCollector(state.frame, dict, clock=lambda: T0.timestamp() + 60, by_outlet=True))
    g = registry.get_sample_value
    assert g("framewatch_framed_items_total", {"watch": "scs", "frame": "surveillance", "outlet": "A"}) == 1
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "5m", "outlet": "all"}) == 0.5
    assert g("framewatch_share_of_voice", {"watch": "scs", "frame": "b", "window": "5m", "outlet": "B"}) == 1.0
