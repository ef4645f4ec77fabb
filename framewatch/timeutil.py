"""Time is always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """Return *value* in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 timestamp into an aware UTC datetime."""
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_utc(value: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a trailing Z."""
    return to_utc(value).isoformat().replace("+00:00", "Z")
