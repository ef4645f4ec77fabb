"""Which dead letters a command means: ids, filters (reason, component, source topic, time),
and the reasons a replay cannot cure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from framewatch.contracts import DECODE_REASONS, DeadLetter
from framewatch.errors import FramewatchError
from framewatch.timeutil import parse_utc

# Reasons the same bytes meet again on replay: decoding is a pure function of the bytes, so a
# replay fails the same way. schema_too_new is curable (upgrade the consumer, then replay), and
# stage_error / processing_error may be (a fixed bug, a recovered dependency).
NEVER_REPLAYABLE = frozenset(DECODE_REASONS) - {"schema_too_new"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$|^\s*(0)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ID = re.compile(r"^(\d{1,9}):(\d{1,19})$")


class FilterError(FramewatchError):
    """A filter, time or id given on the command line is malformed."""


class MissingTopicError(FramewatchError):
    """The topic a command reads does not exist on the broker."""


class UnknownIdError(FramewatchError):
    """No dead letter has the id asked for."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``3d``, ``1w`` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise FilterError(f"{text!r} is not a duration (90s, 30m, 2h, 3d, 1w)")
    if match.group(3):
        return timedelta(0)
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO-8601 time (naive means UTC), or a duration meaning that long before *now*."""
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        return parse_utc(text.strip())
    except ValueError:
        raise FilterError(
            f"{text!r} is neither an ISO-8601 time (2026-11-26T09:00Z) nor a duration ago (90s, 30m, 2h, 3d, 1w)"
        ) from None


def parse_id(text: str) -> tuple[int, int]:
    """A dead letter's id, ``PARTITION:OFFSET`` of its record in the dead-letters topic."""
    match = _ID.match(text.strip())
    if not match:
        raise FilterError(f"{text!r} is not a dead-letter id (PARTITION:OFFSET, e.g. 2:17)")
    return int(match.group(1)), int(match.group(2))


def format_id(partition: int, offset: int) -> str:
    """The id of the dead letter at *partition*, *offset* of the dead-letters topic."""
    return f"{partition}:{offset}"


@dataclass(frozen=True, slots=True)
class Filters:
    """Conditions a dead letter must meet; an empty set or ``None`` lets everything through."""

    reasons: frozenset[str] = frozenset()
    components: frozenset[str] = frozenset()
    source_topics: frozenset[str] = frozenset()  # full topic names
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise FilterError(f"--since ({self.since:%Y-%m-%dT%H:%M:%SZ}) is after --until ({self.until:%Y-%m-%dT%H:%M:%SZ})")

    def matches(self, letter: DeadLetter) -> bool:
        """Whether *letter* meets every condition (``since`` inclusive, ``until`` exclusive)."""
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.components or letter.component in self.components)
            and (not self.source_topics or letter.source_topic in self.source_topics)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.until is None or letter.failed_at < self.until)
        )


def build_filters(
    *, reasons: tuple[str, ...] = (), components: tuple[str, ...] = (), source_topics: tuple[str, ...] = (),
    since: str | None = None, until: str | None = None, topic_prefix: str, now: datetime,
) -> Filters:
    """Filters from command-line values; a source topic may be given with or without the prefix."""
    topics = {t for t in source_topics} | {topic_prefix + t for t in source_topics}
    return Filters(
        reasons=frozenset(reasons), components=frozenset(components), source_topics=frozenset(topics),
        since=parse_when(since, now) if since else None, until=parse_when(until, now) if until else None,
    )
