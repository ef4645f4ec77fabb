"""Following XenForo threads: XenForo has only forum-level feeds, so replies are read from the
thread pages themselves, politely and incrementally.

A forum feed names threads with recent activity (:class:`FollowThread`). For each, reading
resumes at the last page read (new replies land there first), or the page after it when the
previous cycle stopped at its page budget. At most ``max_pages`` pages per feed per cycle are
read, through the same fetcher and so the same per-host limits. Thread and next-page links are
followed on the feed's own site only (same scheme, host and port as the source's URL, an http to
https upgrade on the same host aside: ``addresses.same_site``), and so are their redirects; any
other link is ``refused_url`` and counted. A link is never opted into private addresses by
itself: it may reach one only as the opted-in feed's own host. Posts already produced are
dropped later by the worker; the cursor returned here is saved only once the broker acknowledged
the posts, so a Kafka outage re-reads the same pages next time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from framewatch.contracts import RawItem
from framewatch.ingest import outcomes as oc
from framewatch.ingest.addresses import FetchPolicy
from framewatch.ingest.fetcher import Fetcher, FetchResult
from framewatch.ingest.parse.detect import FeedParseError, FollowThread, ThreadPage
from framewatch.ingest.sources import Source
from framewatch.ingest.state import ThreadCursor

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 3
_PAGE_SUFFIX = re.compile(r"/page-\d+/?$")

ParseThreadPage = Callable[..., ThreadPage]


@dataclass(slots=True)
class ThreadReading:
    """What following a feed's threads yielded in one cycle."""

    items: list[RawItem] = field(default_factory=list)
    cursors: list[ThreadCursor] = field(default_factory=list)
    fetches: list[FetchResult] = field(default_factory=list)


def thread_page_url(thread_url: str, page: int) -> str:
    """URL of page *page* (1-based) of a XenForo thread: ``.../threads/slug.123/page-N``."""
    base = _PAGE_SUFFIX.sub("", thread_url).rstrip("/")
    return f"{base}/" if page <= 1 else f"{base}/page-{page}"


def link_policy(source: Source) -> FetchPolicy:
    """The fetch policy of a link found in *source*'s feed: its site only, its opt-in only."""
    return FetchPolicy(allow_private=source.allow_private, site=source.url)


def has_new_posts(follow: FollowThread | None, cursor: ThreadCursor | None) -> bool:
    """True when the feed's last-post time is past what the cursor has read (or unknown)."""
    if cursor is None or cursor.has_more or follow is None:
        return True
    if follow.last_post_at is None or cursor.last_post_at is None:
        return True
    return follow.last_post_at > cursor.last_post_at


def resume_page(cursor: ThreadCursor) -> int:
    """The page to start from: the last one read, or the next when the budget cut reading short."""
    if cursor.last_page <= 0:
        return 1
    return cursor.last_page + 1 if cursor.has_more else cursor.last_page


async def read_thread(
    *,
    fetcher: Fetcher,
    parse_page: ParseThreadPage,
    source: Source,
    cursor: ThreadCursor,
    follow: FollowThread | None,
    max_pages: int,
    now: Callable[[], datetime],
    memory: object | None,
    out: ThreadReading,
) -> int:
    """Read up to *max_pages* new pages of one thread into *out*; returns pages read."""
    page = resume_page(cursor)
    url = thread_page_url(cursor.url, page)
    pages = 0
    complete = False
    policy = link_policy(source)
    while pages < max_pages:
        result = await fetcher.fetch(url, policy=policy)
        out.fetches.append(result)
        if not result.ok:
            log.info("feed %s: thread %s page %d: %s (%s)", source.id, cursor.thread_id, page, result.outcome, result.detail)
            break
        try:
            parsed = parse_page(
                result.body, source=source, url=url, thread_id=cursor.thread_id,
                fetched_at=now(), memory=memory,
            )
        except FeedParseError as exc:
            out.fetches[-1] = replace(result, outcome=oc.parse_outcome(exc.reason), detail=exc.detail)
            log.info("feed %s: thread %s page %d: %s", source.id, cursor.thread_id, page, exc)
            break
        except Exception as exc:  # a parser bug: stop this thread, keep the rest of the cycle
            out.fetches[-1] = replace(result, outcome=oc.PARSE_ERROR, detail=f"{type(exc).__name__}: {exc}"[:300])
            log.exception("feed %s: thread %s page %d: parser failed", source.id, cursor.thread_id, page)
            break
        pages += 1
        first_page = pages == 1
        new = _after(parsed.items, cursor.last_post_id if first_page and not cursor.has_more else None)
        out.items.extend(new)
        cursor = replace(
            cursor,
            last_page=page,
            last_post_id=parsed.items[-1].item_id if parsed.items else cursor.last_post_id,
            has_more=parsed.next_page_url is not None,
        )
        if parsed.next_page_url is None:
            complete = True
            break
        page, url = page + 1, parsed.next_page_url
    if complete and follow is not None and follow.last_post_at is not None:
        cursor = replace(cursor, last_post_at=follow.last_post_at)
    if pages:
        out.cursors.append(cursor)
    return pages


def _after(items: tuple[RawItem, ...], last_post_id: str | None) -> list[RawItem]:
    """Posts of a page after *last_post_id* (all of them when it is not on the page)."""
    ids = [item.item_id for item in items]
    if last_post_id is None or last_post_id not in ids:
        return list(items)
    return list(items[ids.index(last_post_id) + 1 :])
