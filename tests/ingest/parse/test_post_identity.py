"""Post identity: one item id per post, whatever the feed shape, URL style or route it came by."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.contracts import RawItem
from framewatch.ingest.parse.detect import ParsedFeed, ThreadMemory, parse_feed, parse_thread_page
from framewatch.ingest.parse.platform import (
    discourse_ids,
    forum_post_ref,
    phpbb_ids,
    post_id,
    smf_ids,
    xenforo_first_post_id,
    xenforo_thread_url,
)
from framewatch.ingest.sources import Source
from tests.ingest.parse.forum_feeds import SITES, XF, Site, entry, feed, rss, xenforo_page

FETCHED = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
FORUMS = ("xenforo", "discourse", "phpbb", "smf")


def parse(body: bytes, url: str, *, kind: str = "news", memory: ThreadMemory | None = None) -> ParsedFeed:
    source = Source(id="src", url=url, kind=kind)  # type: ignore[arg-type]
    return parse_feed(body, source=source, url=url, content_type=None, fetched_at=FETCHED, memory=memory)


def ids(result: ParsedFeed) -> list[str]:
    return [item.item_id for item in result.items]


# --- the reported case: a feed of one XenForo thread's posts --------------------------------


def test_each_post_of_a_xenforo_thread_feed_keeps_its_own_id() -> None:
    site = SITES["xenforo"]
    # the guid is the thread id on every entry, as in the feed that lost nine replies of ten
    entries = [entry(site, 4521, n, guid_style=1) for n in range(88001, 88011)]
    result = parse(rss(entries, generator="XenForo"), site.feed_url)
    assert len(set(ids(result))) == 10
    assert ids(result) == [post_id("xf.example.com", "xenforo", str(n)) for n in range(88001, 88011)]
    assert {item.thread_id for item in result.items} == {"4521"}
    # one thread to follow, at page 1's URL (a post URL would make its page pass for page 1)
    assert [(f.thread_id, f.url) for f in result.follow] == [("4521", f"{XF}/threads/chinas-social-credit.4521/")]
    assert result.follow[0].last_post_at == max(e.published for e in entries)


def test_a_thread_level_entry_is_still_the_threads_first_post() -> None:
    body = rss([entry(SITES["xenforo"], 4521, 1, guid_style=1)], generator="XenForo").replace(
        b"/post-1</link>", b"/</link>"
    )
    (item,) = parse(body, SITES["xenforo"].feed_url).items
    assert item.item_id == xenforo_first_post_id("xf.example.com", "4521")
    assert (item.thread_id, item.parent_id) == ("4521", None)  # it opens the thread


@pytest.mark.parametrize(
    ("platform", "guid", "link", "expected"),
    [
        ("xenforo", None, "https://xf.example.com/threads/a.7/post-9", ("xenforo-post", "9", "7")),
        ("xenforo", "7", "https://xf.example.com/threads/a.7/#post-9", ("xenforo-post", "9", "7")),
        ("xenforo", "https://xf.example.com/posts/9/", "https://xf.example.com/threads/a.7/", ("xenforo-post", "9", "7")),
        ("xenforo", "7", "https://xf.example.com/threads/a.7/", ("xenforo-first", "7", "7")),
        ("xenforo", "7", None, ("xenforo-first", "7", "7")),
        ("xenforo", None, "https://xf.example.com/threads/post-5-things.7/", ("xenforo-first", "7", "7")),
        ("discourse", "forum.example.org-post-12-3", None, ("discourse", "12/3", "12")),
        ("discourse", None, "/t/some-slug/12/3/", ("discourse", "12/3", "12")),
        ("discourse", None, "https://forum.example.org/t/some-slug/12", ("discourse", "12/1", "12")),
        ("discourse", "forum.example.org-topic-12", None, ("discourse", "12/1", "12")),
        ("phpbb", None, "./viewtopic.php?p=55#p55", ("phpbb-post", "55", None)),
        ("phpbb", "https://b.example/viewtopic.php?t=4&amp;p=55#p55", None, ("phpbb-post", "55", "4")),
        ("phpbb", None, "https://b.example/viewtopic.php?t=4#p55", ("phpbb-post", "55", "4")),
        ("smf", None, "https://s.example/index.php?topic=8.msg21#msg21", ("smf-post", "21", "8")),
        ("smf", None, "https://s.example/index.php/topic,8.msg21.html", ("smf-post", "21", "8")),
        ("smf", None, "index.php?topic=8.0#msg21", ("smf-post", "21", "8")),
    ],
)
def test_forum_post_ref_of_each_url_style(platform: str, guid: str | None, link: str | None, expected: tuple) -> None:
    kind, key, thread = expected
    ref = forum_post_ref(platform, "h.example", guid, link)
    assert ref is not None and ref.thread_id == thread
    if kind == "xenforo-first":
        assert ref.item_id == xenforo_first_post_id("h.example", key)
    elif kind == "discourse":
        topic, number = key.split("/")
        assert discourse_ids(guid, link) in ((topic, number), (topic, None))
        assert ref.item_id == forum_post_ref("discourse", "h.example", f"x-post-{topic}-{number}", None).item_id  # type: ignore[union-attr]
    else:
        assert ref.item_id == post_id("h.example", kind.removesuffix("-post"), key)


def test_entries_naming_a_thread_but_no_post_keep_a_generic_id() -> None:
    opener = forum_post_ref("smf", "h", None, "https://s.example/index.php?topic=8.0")  # news feed: the opener
    assert opener is not None and (opener.item_id, opener.thread_id, opener.parent_id) == (None, "8", None)
    page = forum_post_ref("smf", "h", None, "https://s.example/index.php?topic=8.15")  # a later page: not the opener
    assert page is not None and (page.item_id, page.thread_id) == (None, "8") and page.parent_id
    topic = forum_post_ref("phpbb", "h", None, "https://b.example/viewtopic.php?t=4")
    assert topic is not None and (topic.item_id, topic.thread_id) == (None, "4") and topic.parent_id
    assert forum_post_ref("discourse", "h", None, "https://forum.example.org/latest") is None
    assert forum_post_ref("rss", "h", None, "https://xf.example.com/threads/a.7/post-9") is None
    assert phpbb_ids(None, "") == (None, None) and smf_ids(None) == (None, None)


def test_thread_url_of_post_and_page_urls() -> None:
    for url in (f"{XF}/threads/a-b.7/post-9", f"{XF}/threads/a-b.7/page-3#post-9", f"{XF}/threads/a-b.7"):
        assert xenforo_thread_url(url) == f"{XF}/threads/a-b.7/"
    assert xenforo_thread_url(f"{XF}/index.php?threads/a-b.7/post-9") == f"{XF}/index.php?threads/a-b.7/"


# --- properties over every feed shape and URL style -----------------------------------------


@st.composite
def forum_feed(draw: st.DrawFn) -> tuple[str, Site, list]:
    site = SITES[draw(st.sampled_from(sorted(SITES)))]
    shape = draw(st.sampled_from(["rss", "atom", "json"]))
    threads = draw(st.lists(st.integers(1, 9999), min_size=1, max_size=3, unique=True))
    posts = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=12, unique=True))
    entries = []
    for n in posts:
        thread = draw(st.sampled_from(threads))
        e = entry(site, thread, n, link_style=draw(st.integers(0, 9)), guid_style=draw(st.integers(0, 9)),
                  minutes=draw(st.integers(0, 3)))
        if shape == "json" and e.guid == str(thread):
            e = entry(site, thread, n, link_style=0, guid_style=0)  # JSON Feed ids are unique by spec
        entries.append(e)
    return shape, site, entries


@settings(max_examples=150, deadline=None)
@given(forum_feed())
def test_n_distinct_posts_give_n_distinct_ids(case: tuple[str, Site, list]) -> None:
    shape, site, entries = case
    result = parse(feed(shape, site, entries), site.feed_url, memory=ThreadMemory())
    assert len(result.items) == len(entries)
    assert len(set(ids(result))) == len(entries)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(FORUMS), st.sampled_from(["rss", "atom"]), st.integers(1, 9999), st.integers(2, 10**6),
    st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9),
)
def test_one_post_through_two_routes_gets_one_id(
    platform: str, shape: str, thread: int, post: int, link_a: int, guid_a: int, link_b: int, guid_b: int
) -> None:
    site = SITES[platform]
    one = parse(feed(shape, site, [entry(site, thread, post, link_style=link_a, guid_style=guid_a)]), site.feed_url)
    # the other route: another feed of the same site (topic feed, Atom vs RSS) and another URL style
    other_url = site.feed_url.replace("forum/3", f"topic/{thread}").replace("posts.rss", f"t/x/{thread}.rss")
    other_shape = "atom" if shape == "rss" else "rss"
    two = parse(feed(other_shape, site, [entry(site, thread, post, link_style=link_b, guid_style=guid_b)]), other_url)
    assert ids(one) == ids(two) and len(ids(one)) == 1


def test_xenforo_reply_in_a_feed_and_on_the_thread_page_is_one_item() -> None:
    site = SITES["xenforo"]
    body = rss([entry(site, 4521, n, link_style=n) for n in (88005, 88006, 88007)], generator="XenForo")
    from_feed = ids(parse(body, site.feed_url))
    page = parse_thread_page(
        xenforo_page(4521, [(88001, "Harald", "Opening post."), *((n, f"user{n}", "Reply.") for n in (88005, 88006, 88007))]),
        source=Source(id="xf", url=site.feed_url, kind="forum"), url=f"{XF}/threads/chinas-social-credit.4521/",
        thread_id="4521", fetched_at=FETCHED, memory=None,
    )
    first, *replies = page.items
    assert first.item_id == xenforo_first_post_id("xf.example.com", "4521") and first.parent_id is None
    assert [r.item_id for r in replies] == from_feed
    assert all(r.parent_id == first.item_id for r in replies)


# --- kind and thread standing are decided by the parser -------------------------------------


@pytest.mark.parametrize("platform", FORUMS)
def test_forum_feeds_are_forum_posts_whatever_the_source_says(platform: str) -> None:
    site = SITES[platform]
    body = rss([entry(site, 7, n) for n in (2, 3)], generator=site.generator)
    for kind in ("news", "forum"):
        items = parse(body, site.feed_url, kind=kind).items
        assert [i.kind for i in items] == ["forum_post", "forum_post"]
        # replies of unknown standing point at a parent, so no thread title is framed as theirs
        assert all(i.thread_id == "7" and i.parent_id for i in items)


def test_news_feed_stays_articles() -> None:
    site = SITES["rss"]
    items = parse(rss([entry(site, 1, n) for n in (1, 2)]), site.feed_url).items
    assert [(i.kind, i.thread_id, i.parent_id) for i in items] == [("article", None, None)] * 2


@pytest.mark.parametrize(
    ("platform", "feed_url", "link"),
    [
        ("discourse", "https://forum.example.org/latest.rss", "https://forum.example.org/t/slug/12"),
        ("phpbb", "https://board.example.eu/app.php/feed/news", "https://board.example.eu/viewtopic.php?t=12&p=90#p90"),
        ("phpbb", "https://board.example.eu/feed.php?mode=topics", "https://board.example.eu/viewtopic.php?t=12&p=90#p90"),
        ("smf", "https://smf.example.com/index.php?action=.xml;type=rss2;sa=news", "https://smf.example.com/index.php?topic=12.0"),
    ],
)
def test_topic_level_feeds_give_thread_openers(platform: str, feed_url: str, link: str) -> None:
    e = entry(SITES[platform], 12, 1)
    body = rss([type(e)(e.title, link, None, e.published, e.author, e.html)], generator=SITES[platform].generator)
    (item,) = parse(body, feed_url).items
    assert (item.kind, item.thread_id, item.parent_id) == ("forum_post", "12", None)


# --- copied quotes do not depend on the order the feed lists posts in ----------------------

ARTICLE = ("The national social credit system is mostly a set of court blacklists for people who refuse "
           "to pay debts they owe. Companies get a public credit rating that customs officers check.")


def _thread(platform: str, same_time: bool) -> list:
    site = SITES[platform]
    minutes = (lambda n: 0) if same_time else (lambda n: n)
    return [
        entry(site, 7, 1, minutes=minutes(1), html=f"<p>{ARTICLE}</p>"),
        entry(site, 7, 2, minutes=minutes(2), html=f"<p>{ARTICLE}</p><p>So the dystopia stories are overblown.</p>"),
        entry(site, 7, 3, minutes=minutes(3), html="<p>Blacklists without a trial are still punishment.</p>"),
        entry(site, 7, 4, minutes=minutes(4), html=f"<p>Still a social credit blacklist.</p><p>{ARTICLE}</p>"),
    ]


def _split(platform: str, entries: list) -> dict[str, tuple]:
    site = SITES[platform]
    items: tuple[RawItem, ...] = parse(rss(entries, generator=site.generator), site.feed_url, memory=ThreadMemory()).items
    return {i.item_id: (i.text, tuple((q.text, q.source_post, q.origin) for q in i.quotes)) for i in items}


@pytest.mark.parametrize("platform", FORUMS)
@pytest.mark.parametrize("same_time", [False, True])
def test_own_text_is_the_same_in_either_feed_order(platform: str, same_time: bool) -> None:
    posts = _thread(platform, same_time)
    oldest_first, newest_first = _split(platform, posts), _split(platform, posts[::-1])
    assert oldest_first == newest_first
    if not same_time:
        texts = sorted(text for text, _ in oldest_first.values())
        assert "So the dystopia stories are overblown." in texts  # the paste became a quote
        assert "Still a social credit blacklist." in texts


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(FORUMS), st.permutations(range(4)))
def test_own_text_is_the_same_in_any_feed_order(platform: str, order: list[int]) -> None:
    posts = _thread(platform, False)
    assert _split(platform, [posts[i] for i in order]) == _split(platform, posts)
