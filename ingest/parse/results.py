"""What parsing a feed or thread page yields, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from framewatch.contracts import RawItem
from framewatch.errors import FramewatchError

# Why a body is not a usable feed; they double as metric label values.
PARSE_REASONS = ("empty", "not_a_feed", "malformed", "bad_encoding")
# Why one entry of a feed that parsed was left out (``ParsedFeed.skipped``): neither text nor
# an own title, a deleted/hidden Discourse post, an item that is not a JSON object.
ENTRY_SKIP_REASONS = ("no_content", "deleted", "malformed")


class FeedParseError(FramewatchError):
    """Fetched bytes are not a usable feed; ``reason`` is one of PARSE_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in PARSE_REASONS:
            raise ValueError(f"unknown parse reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FollowThread:
    """A XenForo thread whose pages must be read for its replies."""

    thread_id: str
    url: str
    last_post_at: datetime | None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one feed body yielded; ``skipped`` names entries left out and why."""

    items: tuple[RawItem, ...]
    follow: tuple[FollowThread, ...] = ()
    title: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """Posts of one XenForo thread page, and the next page to read if any."""

    items: tuple[RawItem, ...]
    next_page_url: str | None = None


__all__ = ["ENTRY_SKIP_REASONS", "PARSE_REASONS", "FeedParseError", "FollowThread", "ParsedFeed", "ThreadPage"]
