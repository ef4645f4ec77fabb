"""Builder of a fully populated RawItem for contract and consumer-loop tests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from framewatch.contracts import Quote, RawItem

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def raw_item(**changes: object) -> RawItem:
    """A RawItem with every field set; *changes* replace fields."""
    item = RawItem(
        item_id="abc", source_id="src", feed_url="http://127.0.0.1/feed", kind="forum_post",
        url="http://127.0.0.1/p/1", title="Title", author="ann", published_at=NOW,
        fetched_at=NOW, text="own words", quotes=(Quote("quoted words", "bob", "post:1"),),
        thread_id="t1", parent_id="p0", language="en", outlet="Forum", tags=("a", "b"),
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]
