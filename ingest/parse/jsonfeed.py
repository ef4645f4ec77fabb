"""JSON Feed 1.0/1.1 -> Posts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from framewatch.ingest.parse.platform import generic_item_id
from framewatch.ingest.parse.posts import Post, absolute_url, clean_str
from framewatch.ingest.parse.results import repair_json
from framewatch.timeutil import parse_utc


def jsonfeed_posts(
    data: dict[str, Any], *, feed_url: str, source_id: str, repaired: set[str] | None = None
) -> tuple[list[Post], list[tuple[str, str]]]:
    """Posts of a JSON Feed, and (ref, reason) of items that are not objects.

    Each item's strings are repaired first (a lone surrogate, which JSON may escape, becomes
    U+FFFD: ``results.repair_json``); the item ids of repaired items are added to *repaired*.
    """
    language = clean_str(data.get("language"))
    feed_author = author_of(data)
    posts: list[Post] = []
    skipped: list[tuple[str, str]] = []
    for index, raw in enumerate(data.get("items") or ()):
        if not isinstance(raw, dict):
            skipped.append((f"#{index}", "malformed"))
            continue
        item, fixed = repair_json(raw)
        guid = clean_str(item.get("id"))
        url = absolute_url(feed_url, clean_str(item.get("url")) or clean_str(item.get("external_url")))
        title = clean_str(item.get("title"))
        published = json_time(item.get("date_published")) or json_time(item.get("date_modified"))
        html = clean_str(item.get("content_html"))
        text = clean_str(item.get("content_text")) or clean_str(item.get("summary"))
        item_id = generic_item_id(source_id, guid, url, title, published)
        if fixed and repaired is not None:
            repaired.add(item_id)
        posts.append(
            Post(
                ref=guid or url or f"#{index}",
                item_id=item_id,
                url=url,
                title=title,
                author=author_of(item) or feed_author,
                published_at=published,
                body=html or text,
                body_is_text=html is None,
                language=clean_str(item.get("language")) or language,
            )
        )
    return posts, skipped


def author_of(obj: dict[str, Any]) -> str | None:
    """The names of an object's ``authors`` (JSON Feed 1.1) or ``author`` (1.0)."""
    authors = obj.get("authors")
    if isinstance(authors, list):
        names = [n for a in authors if isinstance(a, dict) and (n := clean_str(a.get("name")))]
        if names:
            return ", ".join(names)
    author = obj.get("author")
    return clean_str(author.get("name")) if isinstance(author, dict) else None


def json_time(value: Any) -> datetime | None:
    """A JSON date string as UTC, or None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_utc(value.strip())
    except ValueError:
        return None


__all__ = ["author_of", "json_time", "jsonfeed_posts"]
