"""XenForo 2 thread pages -> Posts: ``article.message`` blocks and the next page's link.

The first post of page 1 gets the same item id as the forum RSS item of its thread
(``xenforo_first_post_id``), so the full text supersedes the truncated RSS copy; it opens the
thread (no ``parent_id``). Every other post is keyed by its post id, as in a feed that names it,
and its parent is the thread's first post.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from framewatch.ingest.parse.platform import post_id, xenforo_first_post_id
from framewatch.ingest.parse.posts import Post
from framewatch.timeutil import to_utc

_POST_NUMBER = re.compile(r"(?:js-)?post-(\d+)$")
_PAGE = re.compile(r"/page-(\d+)/?$")


def thread_posts(soup: BeautifulSoup, *, url: str, thread_id: str, host: str) -> list[Post]:
    """Posts of one thread page, in page order."""
    title_tag = soup.select_one("h1.p-title-value") or soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else None
    html_tag = soup.find("html")
    language = html_tag.get("lang") if isinstance(html_tag, Tag) else None
    first_page = not _is_later_page(url)
    first_id = xenforo_first_post_id(host, thread_id)
    posts: list[Post] = []
    for index, article in enumerate(soup.select("article.message")):
        number = _post_number(article)
        first = first_page and index == 0
        if first:
            item_id = first_id
        elif number:
            item_id = post_id(host, "xenforo", number)
        else:
            continue  # not a post (e.g. a deleted-post placeholder without id)
        body = article.select_one(".message-body .bbWrapper") or article.select_one(".message-body")
        posts.append(
            Post(
                ref=f"post-{number}" if number else f"#{index}",
                item_id=item_id,
                url=_permalink(article, url, number),
                title=title,
                author=_attr(article, "data-author") or _author_from_user(article),
                published_at=_post_time(article),
                body=str(body) if body is not None else None,
                thread_id=thread_id,
                parent_id=None if first else first_id,
                language=str(language) if language else None,
                title_is_thread=True,
                forum=True,
                sequence=int(number) if number else None,
            )
        )
    return posts


def next_page_url(soup: BeautifulSoup, url: str) -> str | None:
    """Absolute URL of the next page of the thread, if there is one."""
    link = soup.select_one("a.pageNav-jump--next[href]") or soup.select_one("link[rel~=next][href]")
    return urljoin(url, str(link["href"])) if link is not None else None


def first_post_refs(posts: list[Post], host: str, thread_id: str) -> tuple[tuple[str, str], ...]:
    """Quote ref of the first post (``xenforo:<post id>``) -> its first-post item id."""
    first_id = xenforo_first_post_id(host, thread_id)
    return tuple(
        (f"xenforo:{p.ref.removeprefix('post-')}", first_id)
        for p in posts
        if p.item_id == first_id and p.ref.startswith("post-")
    )


def _post_number(article: Tag) -> str | None:
    for value in (article.get("data-content"), article.get("id")):
        if isinstance(value, str) and (match := _POST_NUMBER.search(value.strip())):
            return match.group(1)
    inner = article.select_one("[data-lb-id^=post-]")
    if inner is not None and (match := _POST_NUMBER.search(str(inner.get("data-lb-id")))):
        return match.group(1)
    return None


def _post_time(article: Tag) -> datetime | None:
    stamp = article.select_one(".message-attribution time, time.u-dt") or article.find("time")
    if not isinstance(stamp, Tag):
        return None
    value = stamp.get("datetime")
    if isinstance(value, str):
        try:
            return to_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            pass
    epoch = stamp.get("data-time")
    if isinstance(epoch, str) and epoch.strip().isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return None


def _permalink(article: Tag, page_url: str, number: str | None) -> str:
    if number:
        link = article.select_one(f"a[href*='/post-{number}']")
        if link is not None:
            return urljoin(page_url, str(link["href"]))
        return urljoin(page_url, f"#post-{number}")
    return page_url


def _author_from_user(article: Tag) -> str | None:
    user = article.select_one(".message-name .username, .message-userDetails .username")
    return " ".join(user.get_text(" ").split()) or None if user is not None else None


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _is_later_page(url: str) -> bool:
    match = _PAGE.search(urlsplit(url).path)
    return bool(match and int(match.group(1)) > 1)


__all__ = ["first_post_refs", "next_page_url", "thread_posts"]
