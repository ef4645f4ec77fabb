"""What parsing a feed or thread page yields, the one error it raises, and the limits every item
is held to: text that UTF-8 can write (lone surrogates repaired) and a size cap, each change
named in the item's ``flags``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from framewatch.contracts import Quote, RawItem
from framewatch.errors import FramewatchError

# the names of ingest.outcomes (FLAG_*): parse cannot import the worker's package
TRUNCATED = "truncated"
REPAIRED_TEXT = "repaired_text"
DEFAULT_ENTRY_MAX_CHARS = 256_000  # Settings.entry_max_chars
FIELD_MAX_CHARS = 2_000  # a title, author, URL or id longer than this is no title: cut
_SURROGATE = re.compile("[\ud800-\udfff]")

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

    def __reduce__(self) -> tuple[Any, ...]:
        # crosses the parse process boundary: rebuild from (reason, detail), not the message
        return (FeedParseError, (self.reason, self.detail))


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


def repair_text(text: str) -> str:
    """*text* as UTF-8 can write it: a lone surrogate becomes U+FFFD (a split pair is joined)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def repair_json(data: Any) -> tuple[Any, int]:
    """Parsed JSON with every string (keys too) repaired, and how many were; iterative."""
    repaired = 0

    def fix(value: str) -> str:
        nonlocal repaired
        fixed = repair_text(value)
        repaired += fixed is not value
        return fixed

    if isinstance(data, str):
        return fix(data), repaired
    root: list[Any] = [data]
    stack: list[list[Any] | dict[str, Any]] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in [k for k in node if isinstance(k, str) and _SURROGATE.search(k)]:
                node[fix(key)] = node.pop(key)
            pairs: Any = node.items()
        else:
            pairs = enumerate(node)
        for key, value in list(pairs):
            if isinstance(value, str):
                if _SURROGATE.search(value):
                    node[key] = fix(value)
            elif isinstance(value, dict | list):
                stack.append(value)
    return root[0], repaired


def repair_item(item: RawItem) -> RawItem:
    """*item* with every text field repaired, flagged ``repaired_text`` when one was."""
    changes: dict[str, Any] = {}
    for name in ("item_id", "source_id", "feed_url", "url", "title", "author", "text", "thread_id",
                 "parent_id", "language", "outlet"):
        value = getattr(item, name)
        if isinstance(value, str) and (fixed := repair_text(value)) is not value:
            changes[name] = fixed
    quotes = tuple(_map_quote(q, repair_text) for q in item.quotes)
    if any(a is not b for a, b in zip(quotes, item.quotes, strict=True)):
        changes["quotes"] = quotes
    tags = tuple(repair_text(t) for t in item.tags)
    if tags != item.tags:
        changes["tags"] = tags
    return with_flag(replace(item, **changes), REPAIRED_TEXT) if changes else item


def cap_item(item: RawItem, max_chars: int) -> RawItem:
    """*item* with at most *max_chars* of text and quotes (own text first, then the quotes in
    order) and every other free-text field at most FIELD_MAX_CHARS; flagged ``truncated`` when cut."""
    changes: dict[str, Any] = {}
    for name in ("url", "title", "author", "thread_id", "parent_id", "language", "outlet"):
        value = getattr(item, name)
        if isinstance(value, str) and len(value) > FIELD_MAX_CHARS:
            changes[name] = cut(value, FIELD_MAX_CHARS)
    budget = max(0, max_chars)
    if len(item.text) > budget:
        changes["text"] = cut(item.text, budget)
    budget -= len(changes.get("text", item.text))
    quotes: list[Quote] = []
    for quote in item.quotes:
        small = _map_quote(quote, lambda v: cut(v, FIELD_MAX_CHARS) if len(v) > FIELD_MAX_CHARS else v, text=False)
        if len(quote.text) > budget:
            small = replace(small, text=cut(quote.text, budget))
        budget -= len(small.text)
        if small.text:
            quotes.append(small)
    if quotes != list(item.quotes):
        changes["quotes"] = tuple(quotes)
    return with_flag(replace(item, **changes), TRUNCATED) if changes else item


def cut(text: str, limit: int) -> str:
    """*text* cut to at most *limit* characters, at a space when one is near the end."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ", max(0, limit - 200))
    return (head[:space] if space > 0 else head).rstrip()


def finish_items(
    items: tuple[RawItem, ...], max_chars: int, *, suspect: bool = False, repaired: Collection[str] = ()
) -> tuple[RawItem, ...]:
    """Every item repaired and capped (see ``repair_item``, ``cap_item``). Flagged repaired too:
    the items whose ids are in *repaired* (their entry was repaired before parsing) and, when
    *suspect* (strings of the body outside the entries were), the items holding U+FFFD."""
    done: list[RawItem] = []
    for item in items:
        item = cap_item(repair_item(item), max_chars)
        if item.item_id in repaired or (suspect and _holds_replacement(item)):
            item = with_flag(item, REPAIRED_TEXT)
        done.append(item)
    return tuple(done)


def fit_item(item: RawItem, limit: int, encode: Callable[[RawItem], bytes]) -> tuple[RawItem, bytes]:
    """*item* (repaired if it cannot be encoded) and its encoding, cut (``cap_item``) to at most
    *limit* bytes; raises ValueError when even cutting its text cannot get it there."""
    try:
        value = encode(item)
    except UnicodeEncodeError:
        item = repair_item(item)
        value = encode(item)
    for _ in range(8):
        if len(value) <= limit:
            return item, value
        chars = len(item.text) + sum(len(q.text) for q in item.quotes)
        item = cap_item(item, int(chars * limit / len(value) * 0.9) - 64)  # bytes per char vary
        value = encode(item)
    if len(value) <= limit:
        return item, value
    raise ValueError(f"{len(value)} bytes after cutting, more than {limit}")


def with_flag(item: RawItem, flag: str) -> RawItem:
    """*item* flagged *flag* (once)."""
    return item if flag in item.flags else replace(item, flags=(*item.flags, flag))


def _map_quote(quote: Quote, fix: Any, *, text: bool = True) -> Quote:
    changes = {n: f for n in (("text", "author", "source_post") if text else ("author", "source_post"))
               if isinstance(v := getattr(quote, n), str) and (f := fix(v)) is not v}
    return replace(quote, **changes) if changes else quote


def _holds_replacement(item: RawItem) -> bool:
    fields = (item.url, item.title, item.author, item.text, item.thread_id, item.parent_id, item.language)
    texts = [*(f for f in fields if f), *(q.text for q in item.quotes), *(q.author or "" for q in item.quotes)]
    return any("\ufffd" in t for t in texts)


__all__ = ["ENTRY_SKIP_REASONS", "PARSE_REASONS", "FeedParseError", "FollowThread", "ParsedFeed", "ThreadPage", "cap_item", "cut",
           "finish_items", "fit_item", "repair_item", "repair_json", "repair_text", "with_flag"]
