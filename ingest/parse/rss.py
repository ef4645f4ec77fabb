"""feedparser entries (RSS 2.0, RSS 1.0, Atom) -> Posts, with each forum platform's ids.

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
    discourse_ids,
    discourse_post_id,
    generic_item_id,
    phpbb_ids,
    post_id,
    smf_ids,
    xenforo_first_post_id,
    xenforo_thread_id,
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
    """Posts of every entry, and the XenForo threads to follow."""
    posts: list[Post] = []
    follow: list[FollowThread] = []
    for index, entry in enumerate(entries):
        post = entry_post(entry, index, platform=platform, feed_url=feed_url, source_id=source_id, host=host)
        if post.language is None and language:
            post = _with_language(post, language)
        posts.append(post)
        if platform == "xenforo" and post.thread_id and post.url:
            follow.append(FollowThread(post.thread_id, post.url, post.published_at))
    return posts, follow


def entry_post(entry: Any, index: int, *, platform: str, feed_url: str, source_id: str, host: str) -> Post:
    """The Post of one feedparser entry."""
    guid = clean_str(entry.get("id"))
    link = absolute_url(feed_url, clean_str(entry.get("link")))
    published = entry_time(entry)
    title = clean_str(entry.get("title"))
    body, is_text, body_language = entry_body(entry)
    author = clean_str(entry.get("author"))
    ref = guid or link or f"#{index}"
    item_id = generic_item_id(source_id, guid, link, title, published)
    thread_id = parent_id = None
    unwrap = False
    if platform == "discourse":
        topic, number = discourse_ids(guid, link)
        if topic and number:
            item_id = discourse_post_id(host, topic, number)
        thread_id = topic
        unwrap = not urlsplit(feed_url).path.endswith("/posts.rss")
    elif platform == "phpbb":
        topic, pid = phpbb_ids(link, guid)
        if pid:
            item_id = post_id(host, "phpbb", pid)
        thread_id = topic
        if title and _PHPBB_TITLE_SEP in title:
            title = title.split(_PHPBB_TITLE_SEP, 1)[1]
        if body:
            body = _PHPBB_FOOTER.sub("", body)
    elif platform == "smf":
        topic, msg = smf_ids(link, guid)
        if msg:
            item_id = post_id(host, "smf", msg)
        thread_id = topic
    elif platform == "xenforo":
        thread_id = xenforo_thread_id(guid, link)
        if body:
            body = _XENFORO_READ_MORE.sub(r"\1", body)
        if thread_id:
            item_id = xenforo_first_post_id(host, thread_id)
    return Post(
        ref=ref,
        item_id=item_id,
        url=link,
        title=title,
        author=author,
        published_at=published,
        body=body,
        body_is_text=is_text,
        thread_id=thread_id,
        parent_id=parent_id,
        language=body_language,
        unwrap_discourse=unwrap,
        title_is_thread=platform in ("discourse", "xenforo"),
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


__all__ = ["entry_body", "entry_post", "entry_time", "posts_from_entries"]
