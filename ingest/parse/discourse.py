"""Discourse JSON API -> Posts: ``/t/<id>.json`` (``post_stream.posts``, only the first ~20
posts of a topic) and ``/posts.json`` (``latest_posts``).

Deleted and hidden posts are skipped; ``parent_id`` is the item id of the post replied to
(``reply_to_post_number``), else of the topic's post 1 for every later post (post 1 opens the
topic and has none).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from framewatch.ingest.parse.jsonfeed import json_time
from framewatch.ingest.parse.platform import discourse_post_id
from framewatch.ingest.parse.posts import Post, clean_str


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
        reply_to = clean_str(post.get("reply_to_post_number")) or (None if number == "1" else "1")
        posts.append(
            Post(
                ref=ref,
                item_id=discourse_post_id(host, topic, number),
                url=urljoin(feed_url, f"/t/{slug}/{topic}/{number}"),
                title=clean_str(post.get("topic_title")) or topic_title,
                author=clean_str(post.get("username")) or clean_str(post.get("name")),
                published_at=json_time(post.get("created_at")),
                body=clean_str(post.get("cooked")),
                thread_id=topic,
                parent_id=discourse_post_id(host, topic, reply_to) if reply_to else None,
                title_is_thread=True,
                forum=True,
                sequence=int(number) if number.isdigit() else None,
            )
        )
    return posts, skipped
