"""parser: fixture feeds of every supported format and platform -> RawItems, and bad inputs."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.contracts import RawItem, decode, encode
from framewatch.ingest.parse.detect import (
    ENTRY_SKIP_REASONS,
    PARSE_REASONS,
    FeedParseError,
    ParsedFeed,
    ThreadMemory,
    ThreadPage,
    parse_feed,
    parse_thread_page,
)
from framewatch.ingest.parse.platform import canonical_url
from framewatch.ingest.sources import Source
from tests.helpers.paths import FEEDS as FIXTURES

FETCHED = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
XF_THREAD = "https://xf.example.com/threads/chinas-social-credit-system-dystopia-or-debt-collection.4521/"

# fixture -> (source kind, feed URL, items, skipped)
FEEDS = {
    "rss2_news.xml": ("news", "https://news.example.com/feeds/china.xml", 2, 1),
    "rss1_rdf.xml": ("news", "https://digest.example.org/rss", 2, 0),
    "atom_news.xml": ("news", "https://www.observer.example.net/world/china.atom", 2, 0),
    "jsonfeed.json": ("news", "https://civictech.example.io/feed.json", 2, 1),
    "wrong_encoding.xml": ("news", "https://lemonde.example.fr/chine/rss.xml", 1, 0),
    "discourse_topic.rss": ("forum", "https://forum.example.org/t/is-the-social-credit-system-overhyped/1234.rss", 3, 0),
    "discourse_topic.json": ("forum", "https://forum.example.org/t/1234.json", 3, 1),
    "discourse_posts.json": ("forum", "https://forum.example.org/posts.json", 2, 1),
    "phpbb_topic.atom": ("forum", "https://board.example.eu/app.php/feed/topic/57", 2, 0),
    "smf_recent.rss": ("forum", "https://smf.example.com/index.php?action=.xml;type=rss2;sa=recent", 2, 0),
    "xenforo_forum.rss": ("forum", "https://xf.example.com/forums/world-politics.12/index.rss", 2, 0),
}
BAD = {
    "broken.xml": "malformed",
    "empty.xml": "empty",
    "html_page.html": "not_a_feed",
}

# (fixture, a sentence that is only ever quoted there, its quoted author or None)
QUOTED = [
    ("rss2_news.xml", "It is a compliance tool for companies, not a score for every citizen", None),
    ("discourse_topic.rss", "the national system is mostly court blacklists of people who refuse to pay debts", "alice"),
    ("discourse_topic.rss", "It is a compliance tool for companies, not a score for every citizen.", None),
    ("discourse_topic.rss", "A patchwork of court blacklists and corporate ratings.", None),  # onebox
    ("discourse_topic.json", "a real punishment without a trial", "bob_k"),
    ("discourse_posts.json", "Rongcheng ran a points pilot.", None),
    ("phpbb_topic.atom", "Credit repair is possible after one year.", None),
    ("smf_recent.rss", "The app gives discounts on buses and library loans for volunteering.", "wenjun"),
]
BOILERPLATE = ("Click to expand", "Read more", "Read full topic", "Statistics: Posted by", "wrote:", "appeared first on")


def source_for(name: str, kind: str, url: str, **overrides: object) -> Source:
    values: dict[str, object] = {"id": name.split(".")[0].replace("_", "-"), "url": url, "kind": kind,
                                 "outlet": "Example Outlet", "tags": ("china", "social-credit")}
    values.update(overrides)
    return Source(**values)  # type: ignore[arg-type]


def parse(name: str, memory: ThreadMemory | None = None, **overrides: object) -> ParsedFeed:
    kind, url, _, _ = FEEDS.get(name, ("news", "https://bad.example.com/feed", 0, 0))
    return parse_feed(
        (FIXTURES / name).read_bytes(), source=source_for(name, kind, url, **overrides), url=url,
        content_type=None, fetched_at=FETCHED, memory=memory,
    )


def page(n: int, memory: ThreadMemory | None) -> ThreadPage:
    url = XF_THREAD if n == 1 else f"{XF_THREAD}page-{n}"
    return parse_thread_page(
        (FIXTURES / f"xenforo_thread_page{n}.html").read_bytes(),
        source=source_for("xf", "forum", "https://xf.example.com/forums/world-politics.12/index.rss"),
        url=url, thread_id="4521", fetched_at=FETCHED, memory=memory,
    )


def all_items(name: str) -> tuple[RawItem, ...]:
    return parse(name, ThreadMemory()).items


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_item_and_skip_counts(name: str) -> None:
    result = parse(name, ThreadMemory())
    _, _, items, skipped = FEEDS[name]
    assert len(result.items) == items
    assert len(result.skipped) == skipped
    assert result.title or name == "discourse_posts.json"  # /posts.json has no title


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_ids_are_stable_across_parses(name: str) -> None:
    memory = ThreadMemory()
    first = parse(name, memory)
    again = parse(name, memory)  # the same memory: a re-read must not turn posts into copies
    fresh = parse(name, ThreadMemory())
    assert [i.item_id for i in first.items] == [i.item_id for i in again.items] == [i.item_id for i in fresh.items]
    assert first.items == again.items == fresh.items
    assert len({i.item_id for i in first.items}) == len(first.items)


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_items_are_well_formed(name: str) -> None:
    kind = FEEDS[name][0]
    for item in all_items(name):
        assert item.published_at.utcoffset() == timedelta(0)
        assert item.fetched_at == FETCHED
        assert item.url is None or item.url.startswith("https://")
        assert item.kind == ("article" if kind == "news" else "forum_post")
        assert item.outlet == "Example Outlet" and item.tags == ("china", "social-credit")
        assert item.text or item.quotes or item.title
        assert decode(RawItem, encode(item)) == item
        for phrase in BOILERPLATE:
            assert phrase not in item.text
            assert all(phrase not in q.text for q in item.quotes)


@pytest.mark.parametrize(("name", "sentence", "author"), QUOTED)
def test_quoted_sentences_appear_only_in_quotes(name: str, sentence: str, author: str | None) -> None:
    items = all_items(name)
    holders = [q for item in items for q in item.quotes if sentence in q.text]
    assert holders, f"{sentence!r} not found in any quote"
    assert holders[0].author == author
    # in no item's own words, except those of the post it was quoted from (when that post is in
    # the feed too, the sentence is its author's own text there)
    sources = {q.source_post for q in holders}
    assert [item.item_id for item in items if sentence in item.text and item.item_id not in sources] == []


def test_rss2_news_fields() -> None:
    first, second = all_items("rss2_news.xml")
    assert first.author == "Li Wen"  # dc:creator wins over <author>
    assert first.title == "Inside China’s social credit system: fewer scores, more blacklists"
    assert first.url == "https://news.example.com/2024/03/social-credit-blacklists?utm_source=rss&utm_medium=feed"
    assert first.published_at == datetime(2024, 3, 11, 0, 30, tzinfo=UTC)
    assert first.language == "en-us"
    assert "trackPageView" not in first.text
    assert first.text.startswith("China’s social credit system is less a single national score")
    assert "Local pilots\n\nRongcheng ran a points pilot." in first.text
    assert second.text == "The AI Act bans public authorities from social scoring, a practice lawmakers repeatedly linked to China."


def test_relative_links_are_resolved() -> None:
    assert all_items("atom_news.xml")[0].url == "https://www.observer.example.net/world/china/2024/mar/14/social-credit-myth"
    assert all_items("jsonfeed.json")[0].url == "https://civictech.example.io/posts/scoring-myths"


def test_atom_and_rdf_and_jsonfeed_fields() -> None:
    atom = all_items("atom_news.xml")
    assert atom[0].title == "Myth and reality of the social credit score"
    assert atom[0].published_at == datetime(2024, 3, 14, 9, 15, tzinfo=UTC)
    assert atom[1].published_at == datetime(2024, 3, 12, 7, 45, tzinfo=UTC)  # only <updated>
    rdf = all_items("rss1_rdf.xml")
    assert rdf[0].author == "Mei Zhang" and "dishonesty blacklist & requires" in rdf[0].text
    feed = all_items("jsonfeed.json")
    assert feed[0].author == "Sam Ortiz" and feed[1].author == "Civic Tech Notes"
    assert feed[1].text == "Companies can apply for credit repair after fixing the violation.\n\nThe process takes weeks and is handled by local authorities."


def test_missing_time_falls_back_to_fetched_at() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1", "title": "t", "items": [{"id": "1", "content_text": "Social credit."}]}'
    result = parse_feed(body, source=source_for("j", "news", "https://j.example/feed.json"),
                        url="https://j.example/feed.json", content_type="application/feed+json", fetched_at=FETCHED)
    assert result.items[0].published_at == FETCHED


def test_discourse_rss_unwraps_the_author_post() -> None:
    alice, bob, carol = all_items("discourse_topic.rss")
    assert alice.text.startswith("Every week another article claims")
    assert alice.quotes == ()
    assert bob.text == "The blacklists still stop people from buying plane tickets, which is a real punishment without a trial."
    assert carol.text == "This piece from last week is a good summary.\n\nThat framing matches what the @alice post said."
    assert (alice.thread_id, alice.author) == ("1234", "alice")


def test_same_discourse_post_gets_one_id_across_feeds() -> None:
    rss = {i.url: i.item_id for i in all_items("discourse_topic.rss")}
    topic = {i.url: i.item_id for i in all_items("discourse_topic.json")}
    posts = {i.url: i.item_id for i in all_items("discourse_posts.json")}
    for other in (rss, posts):
        common = set(topic) & set(other)
        assert common and all(topic[u] == other[u] for u in common)


def test_discourse_json_parent_and_quote_links() -> None:
    alice, bob, dmitri = all_items("discourse_topic.json")
    assert bob.parent_id == alice.item_id and dmitri.parent_id == bob.item_id
    assert bob.quotes[0].source_post == alice.item_id
    assert dmitri.quotes[0].source_post == bob.item_id
    assert alice.parent_id is None


def test_phpbb_fields() -> None:
    reply, first = all_items("phpbb_topic.atom")
    assert reply.title == "Re: Social credit in the Greater Bay Area"
    assert reply.thread_id == "57" and reply.language == "en-gb"
    assert reply.quotes[0].source_post == first.item_id
    assert reply.text == ("That rating is published online, so anyone can check a supplier before signing a contract."
                          "\n\nThe appeal rule is the part the foreign press rarely mentions.")
    assert first.published_at == datetime(2024, 3, 5, 15, 10, 44, tzinfo=UTC)


def test_smf_fields() -> None:
    reply, first = all_items("smf_recent.rss")
    assert reply.text == "Rewards for volunteering are the carrot side that reporting usually leaves out."
    assert reply.quotes[0].source_post == first.item_id and reply.thread_id == "311"


def test_xenforo_forum_rss_items_and_threads_to_follow() -> None:
    result = parse("xenforo_forum.rss", ThreadMemory())
    assert [f.thread_id for f in result.follow] == ["4521", "4517"]
    assert result.follow[0].url == XF_THREAD
    assert result.follow[0].last_post_at == datetime(2024, 3, 7, 12, 40, 2, tzinfo=UTC)
    first = result.items[0]
    assert first.author == "Harald" and first.thread_id == "4521"
    assert first.text.startswith("I keep reading two completely different stories")


def test_xenforo_thread_pages() -> None:
    memory = ThreadMemory()
    rss_first = parse("xenforo_forum.rss", memory).items[0]
    one = page(1, memory)
    assert one.next_page_url == f"{XF_THREAD}page-2"
    harald, kiri, lena = one.items
    assert harald.item_id == rss_first.item_id  # the full first post supersedes the RSS copy
    assert harald.text.endswith("I would like sources, not vibes.")
    assert harald.published_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert harald.url == f"{XF_THREAD}post-88001" and harald.language == "en-US"
    assert lena.text == ("Both, depending on whether you live in a pilot city.\n\nThe national layer is debt "
                         "enforcement, the local pilots are where the scoring experiments happen.")
    assert [(q.author, q.source_post, q.text) for q in lena.quotes] == [
        ("Harald", harald.item_id, "Which one is closer to the truth?")
    ]
    two = page(2, memory)
    assert two.next_page_url is None
    oskar, harald2 = two.items
    # a whole earlier post pasted without markup, plus one line: exactly that line is own text
    assert oskar.text == "Funny how nobody here mentions that the EU just banned exactly this kind of scoring."
    assert [(q.origin, q.author, q.source_post) for q in oskar.quotes] == [("copied", "Kiri", kiri.item_id)]
    assert oskar.quotes[0].text == kiri.text
    assert harald2.text == "Thanks, that distinction between the national layer and the pilots is what the newspapers keep missing."
    assert [q.author for q in harald2.quotes] == ["Lena", None]
    assert harald2.quotes[0].source_post == lena.item_id


def test_thread_page_without_memory_keeps_the_paste_as_own_text() -> None:
    oskar = page(2, None).items[0]
    assert oskar.quotes == () and "33 million businesses" in oskar.text


@pytest.mark.parametrize(("name", "reason"), sorted(BAD.items()))
def test_bad_fixtures_give_their_reason(name: str, reason: str) -> None:
    with pytest.raises(FeedParseError) as info:
        parse(name)
    assert info.value.reason == reason
    assert info.value.reason in PARSE_REASONS


def test_wrong_declared_encoding_still_parses() -> None:
    (item,) = all_items("wrong_encoding.xml")
    assert item.title == "Crédit social : le système chinois décortiqué"
    assert item.language == "fr"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"   \n\t ", None, "empty"),
        (gzip.compress(b"<rss version='2.0'><channel></channel></rss>"), "application/rss+xml", "bad_encoding"),
        (b"\x00\x01\x02binary\x00", None, "bad_encoding"),
        ('{"version": "https://jsonfeed.org/version/1.1", "title": "é"}'.encode("latin-1"), "application/json", "bad_encoding"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "application/feed+json", "malformed"),
        (b'{"status": "ok"}', "application/json", "not_a_feed"),
        (b"[1, 2, 3]", None, "not_a_feed"),
        (b"<?xml version='1.0'?><note><to>you</to></note>", "text/xml", "not_a_feed"),
        (b"/etc/passwd", None, "not_a_feed"),  # never opened as a file
        (b"<html><body><p>Not found</p></body></html>", "text/html", "not_a_feed"),
    ],
)
def test_bad_bodies(body: bytes, content_type: str | None, reason: str) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, source=source_for("bad", "news", "https://bad.example/feed"),
                   url="https://bad.example/feed", content_type=content_type, fetched_at=FETCHED)
    assert info.value.reason == reason


def test_valid_feed_without_entries_is_empty_not_an_error() -> None:
    body = b"<?xml version='1.0'?><rss version='2.0'><channel><title>Quiet</title></channel></rss>"
    result = parse_feed(body, source=source_for("q", "news", "https://q.example/rss"), url="https://q.example/rss",
                        content_type="application/rss+xml", fetched_at=FETCHED)
    assert result == ParsedFeed(items=(), title="Quiet")


def test_platform_from_source_overrides_detection() -> None:
    forced = parse("discourse_topic.rss", ThreadMemory(), platform="rss")
    assert "Every week another article" not in forced.items[0].text  # wrapper no longer unwrapped


def test_discourse_json_by_shape_without_content_type() -> None:
    body = json.dumps({"latest_posts": [{"topic_id": 5, "post_number": 2, "username": "u",
                                         "created_at": "2024-03-01T00:00:00Z", "cooked": "<p>Hi</p>"}]}).encode()
    result = parse_feed(body, source=source_for("d", "forum", "https://d.example/posts.json"),
                        url="https://d.example/posts.json", content_type=None, fetched_at=FETCHED)
    assert result.items[0].text == "Hi" and result.items[0].url == "https://d.example/t/-/5/2"


def test_skip_reasons_are_bounded() -> None:
    for name in FEEDS:
        assert {reason for _, reason in parse(name, ThreadMemory()).skipped} <= set(ENTRY_SKIP_REASONS)


def test_canonical_url_for_ids() -> None:
    assert canonical_url("HTTPS://News.Example.com/a/b?utm_source=rss&id=3&utm_medium=x#frag") == "https://news.example.com/a/b?id=3"


def test_xenforo_translated_read_more_is_dropped_by_position() -> None:
    body = (FIXTURES / "xenforo_forum.rss").read_bytes().replace(b">Read more</a>", b">Weiterlesen</a>")
    url = FEEDS["xenforo_forum.rss"][1]
    result = parse_feed(body, source=source_for("xf", "forum", url), url=url, content_type=None, fetched_at=FETCHED)
    assert "Weiterlesen" not in result.items[0].text


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(FEEDS)), st.floats(0, 1), st.binary(max_size=20))
def test_truncated_or_garbled_feeds_parse_or_fail_with_a_reason(name: str, cut: float, junk: bytes) -> None:
    whole = (FIXTURES / name).read_bytes()
    body = whole[: int(len(whole) * cut)] + junk
    kind, url, _, _ = FEEDS[name]
    try:
        result = parse_feed(body, source=source_for(name, kind, url), url=url, content_type=None, fetched_at=FETCHED)
    except FeedParseError as exc:
        assert exc.reason in PARSE_REASONS
    else:
        assert all(item.published_at.utcoffset() == timedelta(0) for item in result.items)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_with_a_reason(body: bytes) -> None:
    for parse_one in (
        lambda: parse_feed(body, source=source_for("x", "news", "https://x.example/f"), url="https://x.example/f",
                           content_type=None, fetched_at=FETCHED),
        lambda: parse_thread_page(body, source=source_for("x", "forum", "https://x.example/f"),
                                  url="https://x.example/threads/a.1/", thread_id="1", fetched_at=FETCHED, memory=None),
    ):
        try:
            parse_one()
        except FeedParseError as exc:
            assert exc.reason in PARSE_REASONS


def test_thread_page_bad_inputs() -> None:
    def run(body: bytes) -> ThreadPage:
        return parse_thread_page(body, source=source_for("xf", "forum", "https://xf.example.com/f"), url=XF_THREAD,
                                 thread_id="4521", fetched_at=FETCHED, memory=None)

    for body, reason in ((b"", "empty"), ((FIXTURES / "html_page.html").read_bytes(), "not_a_feed"),
                         ((FIXTURES / "rss2_news.xml").read_bytes(), "not_a_feed")):
        with pytest.raises(FeedParseError) as info:
            run(body)
        assert info.value.reason == reason
    assert run(b'<html data-template="thread_view"><body><p>No posts you can see.</p></body></html>') == ThreadPage(())
