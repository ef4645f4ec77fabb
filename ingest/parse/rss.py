"""feedparser entries (RSS 2.0, RSS 1.0, Atom) -> Posts, with each forum platform's ids.

Each platform's ids come from ``platform.forum_post_ref``: an entry whose guid or link names a
post keeps that post's id, so a feed of one thread's posts gives each post its own item.
XenForo forum RSS items are threads carrying their first post: each becomes that post's item
and a ``FollowThread``. Its pubDate is the thread's *last* post date; it is used as the first
post's time until the thread page (same item id) gives the real one.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from framewatch.ingest.parse.platform import (
    FORUM_PLATFORMS,
    forum_post_ref,
    generic_item_id,
    xenforo_thread_url,
)
from framewatch.ingest.parse.posts import Post, absolute_url, clean_str
from framewatch.ingest.parse.results import FollowThread

# phpBB feeds end each post with "<p>Statistics: Posted by …</p><hr />": the paragraph right
# before the final rule is dropped by position, whatever the board's language.
_PHPBB_FOOTER = re.compile(r"<p\b[^>]*>(?:(?!<p\b).)*?</p>\s*<hr\s*/?>\s*$", re.S | re.I)
# XenForo's RSS appends "<br /><a …>Read more</a>" (translated) after the post's bbWrapper.
_XENFORO_READ_MORE = re.compile(r"(</div>)\s*(?:<br\s*/?>\s*)*<a\b[^>]*>[^<]*</a>\s*$", re.I)
# phpBB titles in forum/overall feeds are "Forum name • Subject".
_PHPBB_TITLE_SEP = " \u2022 "


def posts_from_entries(
    entries: list[Any], *, platform: str, feed_url: str, source_id: str, host: str, language: str | None
) -> tuple[list[Post], list[FollowThread]]:
    """Posts of every entry, and the XenForo threads to follow (one per thread, page 1's URL)."""
    posts: list[Post] = []
    follow: dict[str, FollowThread] = {}
    for index, entry in enumerate(entries):
        post = entry_post(entry, index, platform=platform, feed_url=feed_url, source_id=source_id, host=host)
        if post.language is None and language:
            post = _with_language(post, language)
        posts.append(post)
        if platform == "xenforo" and post.thread_id and post.url:
            follow[post.thread_id] = _follow(follow.get(post.thread_id), post.thread_id, post.url, post.published_at)
    return posts, list(follow.values())


def entry_post(entry: Any, index: int, *, platform: str, feed_url: str, source_id: str, host: str) -> Post:
    """The Post of one feedparser entry."""
    guid = clean_str(entry.get("id"))
    link = absolute_url(feed_url, clean_str(entry.get("link")))
    published = entry_time(entry)
    title = clean_str(entry.get("title"))
    body, is_text, body_language = entry_body(entry)
    item_id = generic_item_id(source_id, guid, link, title, published)
    thread_id = parent_id = sequence = None
    ref = forum_post_ref(platform, host, guid, link, feed_url)
    if ref is not None:
        item_id = ref.item_id or item_id
        thread_id, parent_id, sequence = ref.thread_id, ref.parent_id, ref.number
    if platform == "phpbb":
        if title and _PHPBB_TITLE_SEP in title:
            title = title.split(_PHPBB_TITLE_SEP, 1)[1]
        if body:
            body = _PHPBB_FOOTER.sub("", body)
    elif platform == "xenforo" and body:
        body = _XENFORO_READ_MORE.sub(r"\1", body)
    return Post(
        ref=guid or link or f"#{index}",
        item_id=item_id,
        url=link,
        title=title,
        author=clean_str(entry.get("author")),
        published_at=published,
        body=body,
        body_is_text=is_text,
        thread_id=thread_id,
        parent_id=parent_id,
        language=body_language,
        unwrap_discourse=platform == "discourse" and not urlsplit(feed_url).path.endswith("/posts.rss"),
        title_is_thread=platform in ("discourse", "xenforo"),
        forum=platform in FORUM_PLATFORMS,
        sequence=sequence,
    )


def entry_body(entry: Any) -> tuple[str | None, bool, str | None]:
    """(body, is plain text, language): ``content`` (content:encoded, Atom content) over summary."""
    candidates = [c for c in entry.get("content") or () if clean_str(c.get("value"))]
    if candidates:
        best = max(candidates, key=lambda c: len(c.get("value") or ""))
        return best.get("value"), best.get("type") == "text/plain", clean_str(best.get("language"))
    summary = clean_str(entry.get("summary"))
    detail = entry.get("summary_detail") or {}
    return summary, detail.get("type") == "text/plain", clean_str(detail.get("language"))


def entry_time(entry: Any) -> datetime | None:
    """Published time (else updated) as aware UTC; feedparser's struct_time is UTC."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _with_language(post: Post, language: str) -> Post:
    return replace(post, language=language)


def _follow(known: FollowThread | None, thread_id: str, url: str, at: datetime | None) -> FollowThread:
    """The thread to follow: page 1's URL, never a post's (a later page would pass for page 1)."""
    if known is not None and known.last_post_at is not None and (at is None or known.last_post_at > at):
        at = known.last_post_at
    return FollowThread(thread_id, xenforo_thread_url(url), at)


__all__ = ["entry_body", "entry_post", "entry_time", "posts_from_entries"]
