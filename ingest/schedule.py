"""When to poll a feed next: one pure, clamped function of interval, failures and server hints.

A healthy feed is polled every ``interval_s``. A failing one backs off exponentially from
``base_s`` (doubling per consecutive failure, capped at ``max_s``) but is never polled more
often than its own interval. A Retry-After hint from the server is a floor. A deterministic
jitter of up to :data:`JITTER_FRACTION` of the delay spreads feeds that share an interval, so a
worker restart does not hit every server in the same second; being derived from the feed id it
is reproducible in tests.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

JITTER_FRACTION = 0.1
MIN_DELAY_S = 1.0
MAX_RETRY_AFTER_S = 7 * 86400.0
_MAX_EXPONENT = 62  # 2**62 * base overflows nothing in float and is capped anyway


def backoff_s(failures: int, base_s: float, max_s: float) -> float:
    """Exponential backoff after *failures* consecutive failures: base, 2*base, 4*base ... max."""
    if failures <= 0:
        return 0.0
    return min(max_s, base_s * 2.0 ** min(failures - 1, _MAX_EXPONENT))


def next_poll_at(
    now: datetime,
    interval_s: float,
    failures: int,
    retry_after_s: float | None,
    base_s: float,
    max_s: float,
    jitter: float,
) -> datetime:
    """The time of the next poll; ``jitter`` in [0, 1) (see :func:`feed_jitter`).

    The delay is ``max(interval, backoff(failures), retry_after)`` times ``1 + 0.1 * jitter``,
    clamped to at least :data:`MIN_DELAY_S` and at most ``max(interval, max_s, retry_after)``
    plus jitter, with Retry-After itself capped at a week.
    """
    interval = max(MIN_DELAY_S, float(interval_s))
    cap = max(interval, float(max_s))
    delay = max(interval, backoff_s(max(0, failures), max(MIN_DELAY_S, base_s), cap))
    hint = min(max(0.0, retry_after_s), MAX_RETRY_AFTER_S) if retry_after_s is not None else 0.0
    delay = max(delay, hint)
    spread = min(max(0.0, jitter), 1.0) * JITTER_FRACTION
    return now + timedelta(seconds=delay * (1.0 + spread))


def feed_jitter(feed_id: str, salt: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for one feed (and, via *salt*, one attempt)."""
    digest = hashlib.blake2b(f"{feed_id}\x1f{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64
