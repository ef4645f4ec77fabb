"""Fetched feed bytes -> RawItem records: which format and platform they are, detected here
and only here, then handed to that format's module (``rss``, ``jsonfeed``, ``discourse``,
``xenforo``). To add a feed format: a module beside those, and a branch in this one.

``parse_feed`` reads RSS 2.0, RSS 1.0, Atom (through feedparser), JSON Feed and the Discourse
JSON API, and knows the shapes of Discourse, phpBB, SMF and XenForo feeds (see FEEDS.md);
``parse_thread_page`` reads XenForo 2 thread pages; ``ParsePool`` runs them off the worker's
event loop. Both raise ``FeedParseError`` with a
``reason`` from ``PARSE_REASONS``:

* ``empty``: no bytes, or only whitespace;
* ``bad_encoding``: bytes that are no text (NUL bytes without a UTF-16/32 byte-order mark, a
  gzip body left compressed), or JSON that is not UTF-8/16/32;
* ``not_a_feed``: an HTML page, JSON that is neither JSON Feed nor Discourse, or well-formed
  XML that is no feed;
* ``malformed``: broken XML or JSON from which no entry could be recovered. feedparser's
  ``bozo`` flag alone is not fatal: a feed with a wrong declared encoding, or broken after a
  few good entries, still yields those entries.

Every item comes out repaired and capped (``results.finish_items``): a lone surrogate (JSON
may escape one, ``"\\ud800"``) becomes U+FFFD and the item is flagged ``repaired_text``; text
and quotes past ``max_entry_chars`` are cut and the item flagged ``truncated``. So no item
fails later, at encoding.

A feed that is valid but has no entries gives an empty ``ParsedFeed``. Entries with neither
text nor title are left out and listed in ``ParsedFeed.skipped`` as ``(ref, "no_content")``;
deleted Discourse posts as ``(ref, "deleted")``.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from framewatch.ingest.parse.discourse import discourse_posts
from framewatch.ingest.parse.html_text import parse_html
from framewatch.ingest.parse.jsonfeed import jsonfeed_posts
from framewatch.ingest.parse.platform import DISCOURSE_GUID, XENFORO_THREAD, host_of
from framewatch.ingest.parse.posts import PostContext, build_items, clean_title
from framewatch.ingest.parse.results import (
    DEFAULT_ENTRY_MAX_CHARS,
    ENTRY_SKIP_REASONS,
    PARSE_REASONS,
    FeedParseError,
    FollowThread,
    ParsedFeed,
    ThreadPage,
    finish_items,
    repair_json,
)
from framewatch.ingest.parse.rss import posts_from_entries
from framewatch.ingest.parse.thread_memory import ThreadMemory
from framewatch.ingest.parse.xenforo import first_post_refs, next_page_url, thread_posts
from framewatch.ingest.sources import Source

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])", re.I | re.S)


def parse_feed(
    body: bytes,
    *,
    source: Source,
    url: str,
    content_type: str | None,
    fetched_at: datetime,
    memory: ThreadMemory | None = None,
    max_entry_chars: int = DEFAULT_ENTRY_MAX_CHARS,
) -> ParsedFeed:
    """Parse a fetched feed body into items; raises FeedParseError (see the module doc)."""
    _check_bytes(body)
    ctx = PostContext(source=source, feed_url=url, host=host_of(url), fetched_at=fetched_at, memory=memory)
    if _is_json(body, content_type):
        parsed, suspect, repaired = _parse_json(body, ctx)
    else:
        parsed, suspect, repaired = _parse_xml(body, ctx, content_type), False, set()
    items = finish_items(parsed.items, max_entry_chars, suspect=suspect, repaired=repaired)
    return replace(parsed, items=items)


def parse_thread_page(
    body: bytes,
    *,
    source: Source,
    url: str,
    thread_id: str,
    fetched_at: datetime,
    memory: ThreadMemory | None,
    max_entry_chars: int = DEFAULT_ENTRY_MAX_CHARS,
) -> ThreadPage:
    """Parse one XenForo 2 thread page: its posts, and the next page's URL if any."""
    _check_bytes(body)
    soup = parse_html(body)  # finds the encoding from BOM, meta tag or content
    if soup.select_one("article.message") is None and soup.select_one("[data-template=thread_view]") is None:
        raise FeedParseError("not_a_feed", "not a XenForo thread page")
    host = host_of(url)
    posts = thread_posts(soup, url=url, thread_id=thread_id, host=host)
    ctx = PostContext(
        source=source, feed_url=url, host=host, fetched_at=fetched_at, memory=memory,
        known_posts=first_post_refs(posts, host, thread_id),
    )  # fmt: skip
    items, _skipped = build_items(posts, ctx)
    return ThreadPage(items=finish_items(items, max_entry_chars), next_page_url=next_page_url(soup, url))


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



def detect_platform(
    feed_url: str, generator: str, guids: list[str], links: list[str], body: bytes
) -> str:
    """Best guess of the forum software behind a feed: generator, then URL and id shapes."""
    generator = generator.lower()
    for name, platform in (
        ("discourse", "discourse"), ("xenforo", "xenforo"), ("phpbb", "phpbb"),
        ("simple machines", "smf"), ("smf", "smf"),
    ):  # fmt: skip
        if name in generator:
            return platform
    path = urlsplit(feed_url).path
    if re.search(r"/t/[^/]+/\d+\.(rss|json)$|/t/\d+\.json$|/posts\.(rss|json)$", path):
        return "discourse"
    if re.search(r"app\.php/feed|/feed\.php", feed_url):
        return "phpbb"
    if "action=.xml" in feed_url:
        return "smf"
    if re.search(r"/forums/(.+/)?index\.rss$", path):
        return "xenforo"
    if any(DISCOURSE_GUID.search(g) or re.search(r"-topic-\d+$", g) for g in guids):
        return "discourse"
    if any("viewtopic.php" in link for link in links):
        return "phpbb"
    if any(re.search(r"topic=\d+\.msg\d+", link) for link in links):
        return "smf"
    if b"bbWrapper" in body or any(XENFORO_THREAD.search(urlsplit(link).path) for link in links):
        return "xenforo"
    if "reddit.com" in feed_url:
        return "reddit"
    return "rss"


_CHILD_MEMORY: ThreadMemory | None = None  # in a parse process: the memory of its hosts' threads


def _parse_in_child(parse: Callable[..., Any], body: bytes, kwargs: dict[str, Any]) -> Any:
    """Run in a parse process: *parse* with this process's own thread memory."""
    global _CHILD_MEMORY
    if _CHILD_MEMORY is None:
        _CHILD_MEMORY = ThreadMemory()
    return parse(body, memory=_CHILD_MEMORY, **kwargs)


class ParsePool:
    """Runs ``parse_feed`` (or any parser of the same shape) off the event loop.

    ``workers`` single-worker executors (slots); a site (host and port of the URL) gets the next
    slot when first seen and keeps it, so the memory of its threads (copied quotes) is in one
    place, its bodies are parsed in order, and sites spread evenly over the slots. Threads by
    default: the loop's longest stall while a 4.8 MB feed is parsed is 0.06 s (6.5 s inline),
    and all memory stays in one process. ``processes``: forkserver processes, which take the
    GIL off the loop (0.03 s) but each hold their own peak memory (bench/parse.py).
    """

    def __init__(self, workers: int, *, processes: bool = False) -> None:
        self.processes = processes
        # the slots share one memory budget (ThreadMemory's default shingle cap)
        self._memories = [ThreadMemory(max_shingles=2_000_000 // workers) for _ in range(workers)] if not processes else []
        self._executors: list[Executor] = [self._new() for _ in range(max(1, workers))]
        self._slots: dict[str, int] = {}  # site -> its slot, for the worker's lifetime

    def _new(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(1, thread_name_prefix="framewatch-parse")
        # forked from a small server that imported the parsers once, never from this threaded process
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["framewatch.ingest.parse.detect"])
        return ProcessPoolExecutor(1, mp_context=context)

    def slot(self, url: str) -> int:
        """The slot that parses bodies fetched from *url*'s site."""
        site = urlsplit(url).netloc.lower().removeprefix("www.")
        return self._slots.setdefault(site, len(self._slots) % len(self._executors))

    async def run(self, site_url: str, parse: Callable[..., Any], body: bytes, /, **kwargs: Any) -> Any:
        """``parse(body, memory=..., **kwargs)`` in the slot of *site_url*'s site; raises what it raises."""
        index = self.slot(site_url)
        executor = self._executors[index]
        if not self.processes:  # each slot's thread has its own memory: no locking
            call = functools.partial(parse, body, memory=self._memories[index], **kwargs)
        else:
            call = functools.partial(_parse_in_child, parse, body, kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except BrokenProcessPool:
            # the process died (memory, a crash in C): this body is a parse_error, the next gets a new one
            self._executors[index] = self._new()
            executor.shutdown(wait=False)
            raise

    def close(self) -> None:
        """Stop the executors (a parse in progress finishes, queued ones are dropped)."""
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)


def _check_bytes(body: bytes) -> None:
    if not body or not body.strip():
        raise FeedParseError("empty", "the body is empty")
    head = body[:4096]
    if head.startswith(b"\x1f\x8b"):
        raise FeedParseError("bad_encoding", "the body is still gzip-compressed")
    if b"\x00" in head and not head.startswith(_BOMS[1:]):
        raise FeedParseError("bad_encoding", "the body holds NUL bytes: binary, or UTF-16/32 without a BOM")


def _is_json(body: bytes, content_type: str | None) -> bool:
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        return True
    return bool(content_type and "json" in content_type.lower() and start != b"<")


def _parse_json(body: bytes, ctx: PostContext) -> tuple[ParsedFeed, bool, set[str]]:
    """The feed; whether strings had to be repaired outside JSON Feed items (a lone surrogate
    would fail ids and encoding); the ids of the JSON Feed items that were."""
    try:
        data = json.loads(body)  # detects UTF-8/16/32 itself
    except UnicodeDecodeError as exc:
        raise FeedParseError("bad_encoding", f"JSON is not UTF-8: {exc}") from exc
    except ValueError as exc:
        raise FeedParseError("malformed", f"broken JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the interpreter's stack
        raise FeedParseError("malformed", "JSON nested too deep") from exc
    kind = json_kind(data)
    if kind is None:
        raise FeedParseError("not_a_feed", "JSON that is neither JSON Feed nor Discourse")
    repaired_ids: set[str] = set()
    if kind == "jsonfeed":  # repairs each item itself, so it knows which ones
        posts, skipped = jsonfeed_posts(data, feed_url=ctx.feed_url, source_id=ctx.source.id, repaired=repaired_ids)
        data, repaired = repair_json(data)
    else:
        data, repaired = repair_json(data)
        posts, skipped = discourse_posts(data, feed_url=ctx.feed_url, host=ctx.host)
    items, no_content = build_items(posts, ctx)
    title = clean_title(_str(data.get("title")))
    return ParsedFeed(items=items, title=title, skipped=(*skipped, *no_content)), repaired > 0, repaired_ids


def _parse_xml(body: bytes, ctx: PostContext, content_type: str | None) -> ParsedFeed:
    # Only a declared charset is worth passing on; otherwise the XML declaration decides.
    declared = content_type if content_type and "charset" in content_type.lower() else "application/xml"
    headers = {"content-location": ctx.feed_url, "content-type": declared}
    # A stream, never bytes: given bytes that look like a path, feedparser would open the file.
    result = feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=False)
    entries = list(result.get("entries") or ())
    if not entries:
        _raise_for_no_entries(body, result)
    feed = result.get("feed") or {}
    platform = ctx.source.platform
    if platform == "auto":
        platform = detect_platform(
            ctx.feed_url,
            _str(feed.get("generator")) or "",
            [_str(e.get("id")) or "" for e in entries],
            [_str(e.get("link")) or "" for e in entries],
            body[:200_000],
        )
    language = _str(feed.get("language")) or _str((feed.get("title_detail") or {}).get("language"))
    posts, follow = posts_from_entries(
        entries, platform=platform, feed_url=ctx.feed_url, source_id=ctx.source.id,
        host=ctx.host, language=language,
    )  # fmt: skip
    items, skipped = build_items(posts, ctx)
    if not items and _fatal_bozo(result):
        raise FeedParseError("malformed", f"no entry recovered: {result.get('bozo_exception')}")
    return ParsedFeed(
        items=items, follow=tuple(follow), title=clean_title(_str(feed.get("title"))), skipped=skipped
    )


def _fatal_bozo(result: Any) -> bool:
    """Broken XML, as opposed to a harmless encoding override or odd content type."""
    return bool(result.get("bozo")) and not isinstance(
        result.get("bozo_exception"), (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
    )


def _raise_for_no_entries(body: bytes, result: Any) -> None:
    """A body without entries is an error unless it is a well-formed feed that is just empty."""
    if _HTML_START.match(body[:4096]) and not result.get("version"):
        raise FeedParseError("not_a_feed", "an HTML page, not a feed")
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise FeedParseError("not_a_feed", "neither markup nor JSON")
    if _fatal_bozo(result):
        exc = result.get("bozo_exception")
        if isinstance(exc, feedparser.CharacterEncodingUnknown):
            raise FeedParseError("bad_encoding", str(exc))
        raise FeedParseError("malformed", f"no entries recovered: {exc}")
    if not result.get("version"):
        raise FeedParseError("not_a_feed", "well-formed XML, but no RSS or Atom feed")


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


__all__ = [
    "ENTRY_SKIP_REASONS",
    "PARSE_REASONS",
    "FeedParseError",
    "FollowThread",
    "ParsePool",
    "ParsedFeed",
    "ThreadMemory",
    "ThreadPage",
    "parse_feed",
    "parse_thread_page",
]
