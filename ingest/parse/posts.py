"""One step shared by every feed format: parsed posts -> RawItem records.

Each format module turns its entries into ``Post`` values (platform ids already resolved);
``build_items`` splits quotes (markup, then copied via ``ThreadMemory``), fills the record and
skips entries with neither text nor title.

An item's ``kind`` is ``forum_post`` when its source is a forum, and also when the parser found
a forum platform behind the feed (a Discourse, phpBB, SMF or XenForo feed is forum posts
whatever the source says): ``framewatch analyze``, which knows no source kind, and ingest decide
it in this one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from framewatch.contracts import Quote, RawItem
from framewatch.ingest.parse.html_text import html_to_text, plain_to_text
from framewatch.ingest.parse.platform import resolve_quote_ref
from framewatch.ingest.parse.quotes import split_post
from framewatch.ingest.parse.thread_memory import ThreadMemory
from framewatch.ingest.sources import Source
from framewatch.timeutil import to_utc


@dataclass(frozen=True, slots=True)
class Post:
    """One entry of a feed or thread page, before quote splitting."""

    ref: str  # how a skipped entry is named: guid, link or position
    item_id: str
    url: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    body: str | None
    body_is_text: bool = False
    thread_id: str | None = None
    parent_id: str | None = None
    language: str | None = None
    unwrap_discourse: bool = False
    title_is_thread: bool = False  # the thread's title, repeated on every post: not content
    forum: bool = False  # read from a forum platform's feed or page: a forum post
    sequence: int | None = None  # the platform's post number: orders posts of equal time


@dataclass(frozen=True, slots=True)
class PostContext:
    """What every post of one feed shares."""

    source: Source
    feed_url: str
    host: str
    fetched_at: datetime
    memory: ThreadMemory | None = None
    known_posts: tuple[tuple[str, str], ...] = ()  # quote ref -> item id, for this page


def build_items(
    posts: Iterable[Post], ctx: PostContext
) -> tuple[tuple[RawItem, ...], tuple[tuple[str, str], ...]]:
    """RawItems of *posts* in their given order, and (ref, reason) of the skipped ones.

    Posts are split in time order (then post number, then item id) so the thread memory sees
    earlier posts first and the split is the same whatever order the feed lists them in (RSS
    lists newest first).
    """
    posts = list(posts)
    known = _known_authors(posts, ctx)
    chronological = sorted(range(len(posts)), key=lambda i: _order_key(posts[i], ctx))
    built: dict[int, RawItem | str] = {}
    for i in chronological:
        built[i] = build_item(posts[i], ctx, known)
    items = tuple(v for _, v in sorted(built.items()) if isinstance(v, RawItem))
    skipped = tuple((posts[i].ref, v) for i, v in sorted(built.items()) if isinstance(v, str))
    return items, skipped


def build_item(post: Post, ctx: PostContext, known_authors: Iterable[str] = ()) -> RawItem | str:
    """The RawItem of one post, or the reason it is skipped."""
    published = _time_of(post, ctx)
    thread_key = f"{ctx.host}|{post.thread_id}" if post.thread_id else None
    quotes: tuple[Quote, ...]
    if post.body_is_text:
        own, quotes = plain_to_text(post.body), ()
        if ctx.memory is not None and thread_key is not None:
            own, quotes = ctx.memory.split_copied(thread_key, post.item_id, published, own)
            ctx.memory.remember(thread_key, post.item_id, post.author, published, own)
    else:
        own, quotes = split_post(
            post.body,
            memory=ctx.memory,
            thread_key=thread_key,
            post_key=post.item_id,
            author=post.author,
            published_at=published,
            unwrap_discourse=post.unwrap_discourse,
            known_authors=known_authors,
        )
    title = clean_title(post.title)
    if not own and not quotes and (not title or post.title_is_thread):
        return "no_content"
    return RawItem(
        item_id=post.item_id,
        source_id=ctx.source.id,
        feed_url=ctx.feed_url,
        kind="forum_post" if post.forum or ctx.source.kind == "forum" else "article",
        url=post.url,
        title=title,
        author=clean_author(post.author),
        published_at=published,
        fetched_at=to_utc(ctx.fetched_at),
        text=own,
        quotes=tuple(_resolve(q, ctx, post.thread_id) for q in quotes),
        thread_id=post.thread_id,
        parent_id=post.parent_id,
        language=post.language,
        outlet=ctx.source.outlet,
        tags=ctx.source.tags,
    )


def absolute_url(base: str, link: str | None) -> str | None:
    """*link* resolved against *base*; a link that does not parse is kept as it is."""
    if not link:
        return None
    try:
        return urljoin(base, link)
    except ValueError:
        return link


def clean_str(value: Any) -> str | None:
    """A scalar field as stripped text; None for missing, empty and non-scalar values."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def clean_title(title: str | None) -> str | None:
    """A title as one line of plain text, or None."""
    if not title:
        return None
    text = " ".join(html_to_text(title).split()) if "<" in title or "&" in title else " ".join(title.split())
    return text or None


def clean_author(author: str | None) -> str | None:
    """An author name without Reddit's ``/u/`` prefix or RSS's ``email (Name)`` form."""
    if not author:
        return None
    name = " ".join(str(author).split())
    match = re.fullmatch(r"\S+@\S+\s*\((.+)\)", name)
    if match:
        name = match.group(1).strip()
    name = re.sub(r"^/?u/(?=\w)", "", name)
    return name or None


def _resolve(quote: Quote, ctx: PostContext, thread_id: str | None) -> Quote:
    if quote.origin != "markup" or not quote.source_post:
        return quote
    local = dict(ctx.known_posts).get(quote.source_post)
    return replace(quote, source_post=local or resolve_quote_ref(quote.source_post, ctx.host, thread_id))


def _order_key(post: Post, ctx: PostContext) -> tuple[datetime, bool, int, str]:
    return _time_of(post, ctx), post.sequence is None, post.sequence or 0, post.item_id


def _time_of(post: Post, ctx: PostContext) -> datetime:
    return to_utc(post.published_at) if post.published_at is not None else to_utc(ctx.fetched_at)


def _known_authors(posts: list[Post], ctx: PostContext) -> tuple[str, ...]:
    names = {p.author for p in posts if p.author}
    if ctx.memory is not None:
        for thread_id in {p.thread_id for p in posts if p.thread_id}:
            names.update(r.author for r in ctx.memory.posts(f"{ctx.host}|{thread_id}") if r.author)
    return tuple(sorted(names))


__all__ = ["Post", "PostContext", "build_item", "build_items", "clean_author", "clean_title"]
