"""next_poll_at: bounds, backoff, Retry-After and jitter (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from framewatch.ingest.schedule import (
    JITTER_FRACTION,
    MAX_RETRY_AFTER_S,
    MIN_DELAY_S,
    backoff_s,
    feed_jitter,
    next_poll_at,
)

NOW = datetime(2025, 11, 19, 8, 0, tzinfo=UTC)


def delay(**kw: object) -> float:
    args: dict[str, object] = {
        "now": NOW, "interval_s": 900.0, "failures": 0, "retry_after_s": None,
        "base_s": 60.0, "max_s": 21600.0, "jitter": 0.0,
    }
    args.update(kw)
    return (next_poll_at(**args) - NOW).total_seconds()  # type: ignore[arg-type]


def test_healthy_feed_waits_its_interval() -> None:
    assert delay() == 900.0


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(f, 60, 1000) for f in range(6)] == [0, 60, 120, 240, 480, 960]
    assert backoff_s(7, 60, 1000) == 1000
    assert backoff_s(10_000, 60, 1000) == 1000  # no overflow
    assert delay(interval_s=30, failures=1) == 60
    assert delay(interval_s=30, failures=3) == 240
    assert delay(interval_s=30, failures=50) == 21600


def test_failing_feed_never_polled_more_often_than_its_interval() -> None:
    assert delay(failures=1) == 900
    assert delay(failures=6) == 60 * 32


def test_retry_after_is_a_floor_and_capped() -> None:
    assert delay(retry_after_s=3600) == 3600
    assert delay(retry_after_s=5) == 900
    assert delay(retry_after_s=10**12) == MAX_RETRY_AFTER_S
    assert delay(retry_after_s=-50) == 900


def test_jitter_is_deterministic_and_bounded() -> None:
    assert feed_jitter("a") == feed_jitter("a")
    assert feed_jitter("a") != feed_jitter("b")
    assert feed_jitter("a", 1) != feed_jitter("a", 2)
    values = [feed_jitter(f"feed-{i}") for i in range(500)]
    assert all(0 <= v < 1 for v in values)
    assert 0.3 < sum(values) / len(values) < 0.7
    assert delay(jitter=0.5) == 900 * (1 + JITTER_FRACTION * 0.5)


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(
    interval=st.floats(min_value=-10, max_value=86400 * 30, allow_nan=False),
    failures=st.integers(min_value=-3, max_value=10_000),
    retry_after=st.none() | finite.filter(lambda x: abs(x) < 1e15),
    base=st.floats(min_value=-1, max_value=86400, allow_nan=False),
    max_s=st.floats(min_value=-1, max_value=86400 * 7, allow_nan=False),
    jitter=st.floats(min_value=-1, max_value=2, allow_nan=False),
)
def test_bounds(interval: float, failures: int, retry_after: float | None, base: float, max_s: float, jitter: float) -> None:
    when = next_poll_at(NOW, interval, failures, retry_after, base, max_s, jitter)
    d = (when - NOW).total_seconds()
    interval_eff = max(MIN_DELAY_S, interval)
    hint = min(max(0.0, retry_after), MAX_RETRY_AFTER_S) if retry_after is not None else 0.0
    lower = max(interval_eff, hint)
    upper = max(interval_eff, max_s, hint) * (1 + JITTER_FRACTION)
    assert when.tzinfo is not None
    assert lower - 1e-6 <= d <= upper + 1e-3


@given(
    interval=st.floats(min_value=10, max_value=86400),
    failures=st.integers(min_value=0, max_value=60),
    base=st.floats(min_value=1, max_value=3600),
    max_s=st.floats(min_value=1, max_value=86400),
)
def test_more_failures_never_poll_sooner(interval: float, failures: int, base: float, max_s: float) -> None:
    a = next_poll_at(NOW, interval, failures, None, base, max_s, 0.0)
    b = next_poll_at(NOW, interval, failures + 1, None, base, max_s, 0.0)
    assert b >= a
    assert a - NOW <= timedelta(seconds=max(interval, max_s))
