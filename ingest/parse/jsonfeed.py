"""JSON bodies -> Posts: JSON Feed 1.0/1.1 and the Discourse JSON API.

Discourse: ``/t/<id>.json`` (``post_stream.posts``, only the first ~20 posts of a topic) and
``/posts.json`` (``latest_posts``). Deleted and hidden posts are skipped; ``parent_id`` is the
item id of the post replied to (``reply_to_post_number``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from framewatch.ingest.parse.platform import discourse_post_id, generic_item_id
from framewatch.ingest.parse.posts import Post, absolute_url, clean_str
from framewatch.timeutil import parse_utc


def json_kind(data: Any) -> str | None:
    """``jsonfeed``, ``discourse`` or None for JSON that is no feed we know."""
    if not isinstance(data, dict):
        return None
    if "jsonfeed.org" in str(data.get("version", "")):
        return "jsonfeed"
    stream = data.get("post_stream")
    if isinstance(stream, dict) and isinstance(stream.get("posts"), list):
        return "discourse"
    if isinstance(data.get("latest_posts"), list):
        return "discourse"
    return None


def jsonfeed_posts(data: dict[str, Any], *, feed_url: str, source_id: str) -> tuple[list[Post], list[tuple[str, str]]]:
    """Posts of a JSON Feed, and (ref, reason) of items that are not objects."""
    language = clean_str(data.get("language"))
    feed_author = _author_of(data)
    posts: list[Post] = []
    skipped: list[tuple[str, str]] = []
    for index, item in enumerate(data.get("items") or ()):
        if not isinstance(item, dict):
            skipped.append((f"#{index}", "malformed"))
            continue
        guid = clean_str(item.get("id"))
        url = absolute_url(feed_url, clean_str(item.get("url")) or clean_str(item.get("external_url")))
        title = clean_str(item.get("title"))
        published = _time(item.get("date_published")) or _time(item.get("date_modified"))
        html = clean_str(item.get("content_html"))
        text = clean_str(item.get("content_text")) or clean_str(item.get("summary"))
        posts.append(
            Post(
                ref=guid or url or f"#{index}",
                item_id=generic_item_id(source_id, guid, url, title, published),
                url=url,
                title=title,
                author=_author_of(item) or feed_author,
                published_at=published,
                body=html or text,
                body_is_text=html is None,
                language=clean_str(item.get("language")) or language,
            )
        )
    return posts, skipped


def discourse_posts(data: dict[str, Any], *, feed_url: str, host: str) -> tuple[list[Post], list[tuple[str, str]]]:
    """Posts of a Discourse ``/t/<id>.json`` or ``/posts.json`` body."""
    stream = data.get("post_stream")
    raw = stream.get("posts") if isinstance(stream, dict) else data.get("latest_posts")
    topic_title = clean_str(data.get("title")) or clean_str(data.get("fancy_title"))
    topic_slug = clean_str(data.get("slug"))
    posts: list[Post] = []
    skipped: list[tuple[str, str]] = []
    for index, post in enumerate(raw or ()):
        if not isinstance(post, dict):
            skipped.append((f"#{index}", "malformed"))
            continue
        topic = clean_str(post.get("topic_id")) or clean_str(data.get("id"))
        number = clean_str(post.get("post_number"))
        ref = f"{topic}/{number}" if topic and number else clean_str(post.get("id")) or f"#{index}"
        if post.get("deleted_at") or post.get("hidden") or post.get("user_deleted"):
            skipped.append((ref, "deleted"))
            continue
        if not topic or not number:
            skipped.append((ref, "malformed"))
            continue
        slug = clean_str(post.get("topic_slug")) or topic_slug or "-"
        reply_to = clean_str(post.get("reply_to_post_number"))
        posts.append(
            Post(
                ref=ref,
                item_id=discourse_post_id(host, topic, number),
                url=urljoin(feed_url, f"/t/{slug}/{topic}/{number}"),
                title=clean_str(post.get("topic_title")) or topic_title,
                author=clean_str(post.get("username")) or clean_str(post.get("name")),
                published_at=_time(post.get("created_at")),
                body=clean_str(post.get("cooked")),
                thread_id=topic,
                parent_id=discourse_post_id(host, topic, reply_to) if reply_to else None,
                title_is_thread=True,
            )
        )
    return posts, skipped


def _author_of(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")
    if isinstance(authors, list):
        names = [n for a in authors if isinstance(a, dict) and (n := clean_str(a.get("name")))]
        if names:
            return ", ".join(names)
    author = obj.get("author")
    return clean_str(author.get("name")) if isinstance(author, dict) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_utc(value.strip())
    except ValueError:
        return None


__all__ = ["discourse_posts", "json_kind", "jsonfeed_posts"]
