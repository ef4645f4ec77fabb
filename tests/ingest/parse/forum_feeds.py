"""Fixture feeds written in the tests: RSS, Atom and JSON Feed bodies of forum posts and news, in
each platform's URL and guid styles (see /work/shared/FEEDS.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
HEADLINE = "China's social credit system is a blacklist for debtors, report says"


@dataclass(frozen=True)
class Entry:
    """One feed entry; ``guid`` None leaves the element out."""

    title: str
    link: str
    guid: str | None
    published: datetime
    author: str
    html: str


@dataclass(frozen=True)
class Site:
    """A forum (or news site): feed URL, generator, and its ways of naming post N of thread T."""

    platform: str
    feed_url: str
    generator: str
    links: tuple[Callable[[int, int], str], ...]  # (thread, post) -> link naming that post
    guids: tuple[Callable[[int, int], str | None], ...]  # (thread, post) -> guid naming it, or None


XF = "https://xf.example.com"
DC = "https://forum.example.org"
BB = "https://board.example.eu"
SMF = "https://smf.example.com"
NEWS = "https://news.example.com"

SITES = {
    "xenforo": Site(
        "xenforo", f"{XF}/forums/world-politics.12/index.rss", "XenForo",
        links=(
            lambda t, n: f"{XF}/threads/chinas-social-credit.{t}/post-{n}",
            lambda t, n: f"/threads/chinas-social-credit.{t}/post-{n}/",
            lambda t, n: f"{XF}/threads/chinas-social-credit.{t}/#post-{n}",
            lambda t, n: f"{XF}/threads/chinas-social-credit.{t}/page-3#post-{n}",
            lambda t, n: f"{XF}/posts/{n}/",
            lambda t, n: f"{XF}/index.php?threads/chinas-social-credit.{t}/post-{n}",
            lambda t, n: f"{XF}/threads/chinas-social-credit.{t}/post-{n}?utm_source=rss#footer",
            lambda t, n: f"{XF}/goto/post?id={n}",
        ),
        guids=(lambda t, n: None, lambda t, n: str(t), lambda t, n: f"{XF}/posts/{n}/"),
    ),
    "discourse": Site(
        "discourse", f"{DC}/posts.rss", "Discourse",
        links=(
            lambda t, n: f"{DC}/t/is-the-social-credit-system-overhyped/{t}/{n}",
            lambda t, n: f"/t/is-the-social-credit-system-overhyped/{t}/{n}/",
            lambda t, n: f"{DC}/t/is-the-social-credit-system-overhyped/{t}/{n}?u=alice",
            lambda t, n: f"{DC}/t/{t}/{n}",
        ),
        guids=(lambda t, n: None, lambda t, n: f"forum.example.org-post-{t}-{n}"),
    ),
    "phpbb": Site(
        "phpbb", f"{BB}/app.php/feed/forum/3", "phpBB",
        links=(
            lambda t, n: f"{BB}/viewtopic.php?t={t}&p={n}#p{n}",
            lambda t, n: f"./viewtopic.php?p={n}#p{n}",
            lambda t, n: f"{BB}/viewtopic.php?f=3&t={t}&p={n}",
            lambda t, n: f"{BB}/viewtopic.php?t={t}&start=15#p{n}",
            lambda t, n: f"/viewtopic.php?p={n}&sid=0123abcd#p{n}",
        ),
        guids=(lambda t, n: None, lambda t, n: f"{BB}/viewtopic.php?t={t}&p={n}#p{n}"),
    ),
    "smf": Site(
        "smf", f"{SMF}/index.php?action=.xml;type=rss2;sa=recent", "SMF",
        links=(
            lambda t, n: f"{SMF}/index.php?topic={t}.msg{n}#msg{n}",
            lambda t, n: f"index.php?topic={t}.msg{n}",
            lambda t, n: f"{SMF}/index.php?topic={t}.0#msg{n}",
            lambda t, n: f"{SMF}/index.php/topic,{t}.msg{n}.html#msg{n}",
        ),
        guids=(lambda t, n: None, lambda t, n: f"{SMF}/index.php?topic={t}.msg{n}#msg{n}"),
    ),
    "rss": Site(
        "rss", f"{NEWS}/feeds/china.xml", "",
        links=(lambda t, n: f"{NEWS}/2024/03/story-{t}-{n}", lambda t, n: f"/2024/03/story-{t}-{n}?utm_source=rss"),
        guids=(lambda t, n: f"{NEWS}/?p={t}-{n}", lambda t, n: None),
    ),
}


def entry(site: Site, thread: int, post: int, *, link_style: int = 0, guid_style: int = 0, minutes: int | None = None,
          html: str | None = None, title: str = HEADLINE) -> Entry:
    """An entry for post *post* of *thread* on *site*, in the given link and guid styles."""
    return Entry(
        title=title,
        link=site.links[link_style % len(site.links)](thread, post),
        guid=site.guids[guid_style % len(site.guids)](thread, post),
        published=T0 + timedelta(minutes=post if minutes is None else minutes),
        author=f"user{post}",
        html=html or f"<p>Post number {post} about the social credit blacklist.</p>",
    )


def rss(entries: list[Entry], *, generator: str = "", title: str = "Feed") -> bytes:
    """An RSS 2.0 body with content:encoded and dc:creator."""
    items = "".join(
        f"<item><title>{escape(e.title)}</title><link>{escape(e.link)}</link>"
        + (f'<guid isPermaLink="false">{escape(e.guid)}</guid>' if e.guid else "")
        + f"<pubDate>{format_datetime(e.published)}</pubDate><dc:creator>{escape(e.author)}</dc:creator>"
        f"<content:encoded><![CDATA[{e.html}]]></content:encoded></item>"
        for e in entries
    )
    gen = f"<generator>{escape(generator)}</generator>" if generator else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{escape(title)}</title>{gen}{items}</channel></rss>"
    ).encode()


def atom(entries: list[Entry], *, generator: str = "", title: str = "Feed") -> bytes:
    """An Atom body with html content."""
    items = "".join(
        f"<entry><title>{escape(e.title)}</title><link href=\"{escape(e.link)}\"/>"
        + (f"<id>{escape(e.guid)}</id>" if e.guid else "")
        + f"<published>{e.published.isoformat()}</published><author><name>{escape(e.author)}</name></author>"
        f'<content type="html">{escape(e.html)}</content></entry>'
        for e in entries
    )
    gen = f"<generator>{escape(generator)}</generator>" if generator else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title>{gen}{items}</feed>"
    ).encode()


def jsonfeed(entries: list[Entry], *, title: str = "Feed") -> bytes:
    """A JSON Feed 1.1 body (``id`` left out when the entry has no guid)."""
    items = [
        {**({"id": e.guid} if e.guid else {}), "url": e.link, "title": e.title, "content_html": e.html,
         "date_published": e.published.isoformat(), "authors": [{"name": e.author}]}
        for e in entries
    ]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}).encode()


SHAPES: dict[str, Callable[..., bytes]] = {"rss": rss, "atom": atom, "json": jsonfeed}


def feed(shape: str, site: Site, entries: list[Entry]) -> bytes:
    """*entries* as a body of *shape* (``rss``, ``atom`` or ``json``) as *site* would serve it."""
    if shape == "json":
        return jsonfeed(entries)
    return SHAPES[shape](entries, generator=site.generator)


def xenforo_page(thread: int, posts: list[tuple[int, str, str]], *, title: str = HEADLINE) -> bytes:
    """A XenForo 2 thread page holding (post id, author, html) articles."""
    articles = "".join(
        f'<article class="message message--post" data-author="{a}" data-content="post-{n}" id="js-post-{n}">'
        f'<header class="message-attribution"><a href="/threads/chinas-social-credit.{thread}/post-{n}">'
        f'<time class="u-dt" datetime="{(T0 + timedelta(minutes=n)).isoformat()}">x</time></a></header>'
        f'<div class="message-body"><div class="bbWrapper">{html}</div></div></article>'
        for n, a, html in posts
    )
    return (
        f'<!DOCTYPE html><html lang="en" data-template="thread_view"><body>'
        f'<h1 class="p-title-value">{escape(title)}</h1>{articles}</body></html>'
    ).encode()
