"""Property tests for ingest's parsers: whatever a feed or a XenForo thread page holds (odd
unicode, lone surrogates, quotes, markup nested deep, broken escaping, truncated or damaged
bytes), ``parse_feed`` and ``parse_thread_page`` return items or raise ``FeedParseError`` with a
reason from ``outcomes.PARSE_REASONS``, and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framewatch.contracts import RawItem
from framewatch.ingest import outcomes as oc
from framewatch.ingest.parse.detect import FeedParseError, parse_feed, parse_thread_page
from framewatch.ingest.sources import Source

SOURCE = Source("prop", "https://forum.example.org/forums/f.1/index.rss", "forum")
AT = datetime(2025, 11, 19, 8, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# odd characters weighted in: lone surrogates, NUL, BOM, bidi override, zero width, markup
ODD = st.sampled_from(list("\ud800\udfff\x00\ufeff\u202e\u200b<>&\"']\\\n\t\x0b\U0001f600\u0301"))
CHAR = st.one_of(st.characters(), ODD, ODD)
TEXT = st.text(CHAR, max_size=30)
DEPTH = st.one_of(st.integers(0, 50), st.integers(900, 5_000))
WORDS = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=30)


def _xml_text(draw: st.DrawFn, text: str) -> str:
    """Text as a careless feed generator writes it: escaped, raw, or in CDATA (which may break)."""
    how = draw(st.sampled_from(["escape", "escape", "raw", "cdata"]))
    if how == "escape":
        return escape(text)
    return f"<![CDATA[{text}]]>" if how == "cdata" else text


def html(max_leaves: int = 12) -> st.SearchStrategy[str]:
    """Post HTML: paragraphs, blockquotes, forum quote markup and links nested at random."""
    leaf = st.one_of(TEXT.map(escape), TEXT, st.just("<br>"), st.just("Click to expand..."))

    def wrap(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(
            st.sampled_from([
                ("<p>", "</p>"), ("<div>", "</div>"), ("<blockquote>", "</blockquote>"), ("<b>", ""),
                ('<blockquote class="bbCodeBlock bbCodeBlock--quote" data-quote={q} data-source="post: {n}">'
                 '<div class="bbCodeBlock-title">{q} said:</div><div class="bbCodeBlock-content">'
                 '<div class="bbCodeBlock-expandContent">', "</div></div></blockquote>"),
                ('<aside class="quote" data-username={q} data-post="{n}"><div class="title">{q}:</div><blockquote>',
                 "</blockquote></aside>"),
                ('<a href={q}>', "</a>"), ("<ul><li>", "</li></ul>"), ("<table><tr><td>", ""),
            ]),
            st.lists(children, min_size=1, max_size=3), TEXT, st.integers(-5, 10**12),
        ).map(lambda t: t[0][0].format(q=quoteattr(t[2]), n=t[3]) + "".join(t[1]) + t[0][1])

    nested = st.recursive(leaf, wrap, max_leaves=max_leaves)
    deep = st.tuples(nested, DEPTH, st.sampled_from(["div", "blockquote", "p"])).map(
        lambda t: f"<{t[2]}>" * t[1] + t[0] + f"</{t[2]}>" * t[1])  # nesting far past any recursion limit
    return st.one_of(nested, nested, nested, deep)


@st.composite
def rss_feed(draw: st.DrawFn) -> str:
    """An RSS 2.0 feed with random titles, links, guids, dates and bodies."""
    items = []
    for _ in range(draw(st.integers(0, 5))):
        parts = [
            f"<title>{_xml_text(draw, draw(TEXT))}</title>" if draw(st.booleans()) else "",
            f"<link>{escape(draw(st.one_of(WORDS, st.just('https://forum.example.org/threads/a-b.12/'), st.just('javascript:alert(1)'))))}</link>",
            f"<guid isPermaLink={quoteattr(draw(st.sampled_from(['true', 'false', 'maybe'])))}>{escape(draw(TEXT))}</guid>" if draw(st.booleans()) else "",
            f"<pubDate>{escape(draw(st.one_of(st.just('Wed, 19 Nov 2025 08:00:00 GMT'), WORDS)))}</pubDate>",
            f"<dc:creator>{_xml_text(draw, draw(TEXT))}</dc:creator>" if draw(st.booleans()) else "",
            f"<description>{escape(draw(html()))}</description>" if draw(st.booleans()) else "",
            f"<content:encoded><![CDATA[{draw(html())}]]></content:encoded>" if draw(st.booleans()) else "",
        ]
        items.append("<item>" + "".join(draw(st.permutations(parts))) + "</item>")
    generator = draw(st.sampled_from(["", "<generator>XenForo</generator>", "<generator>Discourse</generator>", "<generator>phpBB</generator>"]))
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>{_xml_text(draw, draw(TEXT))}</title><link>https://forum.example.org/</link>{generator}"
            + "".join(items) + "</channel></rss>")


@st.composite
def atom_feed(draw: st.DrawFn) -> str:
    """An Atom feed with html, text and xhtml content."""
    entries = []
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["html", "text", "xhtml"]))
        body = escape(draw(html())) if kind != "xhtml" else f'<div xmlns="http://www.w3.org/1999/xhtml">{draw(html())}</div>'
        entries.append(
            f"<entry><title type=\"html\">{_xml_text(draw, draw(TEXT))}</title><id>{escape(draw(TEXT)) or i}</id>"
            f"<link href={quoteattr(draw(WORDS))}/><updated>{escape(draw(st.one_of(st.just('2025-11-19T08:00:00Z'), WORDS)))}</updated>"
            f"<author><name>{escape(draw(TEXT))}</name></author><content type=\"{kind}\">{body}</content></entry>")
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(draw(TEXT))}</title><id>urn:x</id>" + "".join(entries) + "</feed>")


JSON_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
                          lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(TEXT, c, max_size=3)), max_leaves=8)


@st.composite
def json_feed(draw: st.DrawFn) -> bytes:
    """A JSON Feed whose fields are mostly the right type, sometimes any JSON at all."""
    def field(right: st.SearchStrategy[object]) -> object:
        return draw(st.one_of(right, right, right, JSON_VALUE))

    items = [
        {k: v for k, v in {
            "id": field(TEXT), "url": field(WORDS), "title": field(TEXT), "content_html": field(html()),
            "content_text": field(TEXT), "date_published": field(st.just("2025-11-19T08:00:00Z")),
            "authors": field(st.lists(st.fixed_dictionaries({"name": TEXT}), max_size=2)),
        }.items() if draw(st.booleans())}
        for _ in range(draw(st.integers(0, 5)))
    ]
    doc = {"version": draw(st.sampled_from(["https://jsonfeed.org/version/1.1", "https://jsonfeed.org/version/1"])),
           "title": field(TEXT), "items": draw(st.one_of(st.just(items), st.just(items), JSON_VALUE))}
    # lone surrogates as \\ud800 escapes, or (ensure_ascii off, encoded below) as invalid UTF-8
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    depth = draw(DEPTH)  # an extension nested deep, as a hostile feed would
    text = text[:-1] + ', "_ext": ' + "[" * depth + "1" + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass")


@st.composite
def thread_page(draw: st.DrawFn) -> str:
    """A XenForo 2 thread page: posts with odd authors and ids, nested quotes, a next link."""
    posts = "".join(
        f"<article class=\"message message--post\" data-author={quoteattr(draw(TEXT))} "
        f"data-content={quoteattr(draw(st.one_of(st.just(f'post-{n}'), TEXT)))} id=\"js-post-{n}\">"
        f"<time class=\"u-dt\" datetime={quoteattr(draw(st.one_of(st.just('2024-03-01T09:00:00+0000'), WORDS)))}></time>"
        f"<div class=\"message-body\"><div class=\"bbWrapper\">{draw(html())}</div></div></article>"
        for n in draw(st.lists(st.integers(0, 10**9), max_size=5))
    )
    nxt = draw(st.one_of(st.just(""), WORDS.map(lambda h: f'<a class="pageNav-jump pageNav-jump--next" href={quoteattr(h)}>Next</a>')))
    return (f'<!DOCTYPE html><html lang={quoteattr(draw(WORDS))} data-template="thread_view"><head><meta charset="utf-8">'
            f"<title>{escape(draw(TEXT))}</title></head><body><h1 class=\"p-title-value\">{draw(TEXT)}</h1>{posts}{nxt}</body></html>")


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """*body* as it may arrive: whole, cut short, with bytes overwritten, or re-encoded."""
    how = draw(st.sampled_from(["whole", "whole", "cut", "flip", "utf-16", "latin-1"]))
    if how == "cut" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    if how in ("utf-16", "latin-1"):
        return body.decode("utf-8", "surrogatepass").encode(how, "surrogatepass" if how == "utf-16" else "replace")
    return body


def _parses_or_refuses(body: bytes, content_type: str | None) -> None:
    try:
        parsed = parse_feed(body, source=SOURCE, url=SOURCE.url, content_type=content_type, fetched_at=AT)
    except FeedParseError as exc:
        assert exc.reason in oc.PARSE_REASONS
        return
    assert all(isinstance(item, RawItem) and item.source_id == SOURCE.id for item in parsed.items)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate stays in as invalid UTF-8


@PROPERTY
@given(st.data(), rss_feed())
def test_any_rss_feed_parses_or_is_refused_with_a_reason(data: st.DataObject, feed: str) -> None:
    _parses_or_refuses(data.draw(damaged(_encode(feed))), data.draw(st.sampled_from([None, "application/rss+xml", "text/xml; charset=iso-8859-1"])))


@PROPERTY
@given(st.data(), atom_feed())
def test_any_atom_feed_parses_or_is_refused_with_a_reason(data: st.DataObject, feed: str) -> None:
    _parses_or_refuses(data.draw(damaged(_encode(feed))), "application/atom+xml")


@PROPERTY
@given(st.data(), json_feed())
def test_any_json_feed_parses_or_is_refused_with_a_reason(data: st.DataObject, feed: bytes) -> None:
    _parses_or_refuses(data.draw(damaged(feed)), data.draw(st.sampled_from([None, "application/feed+json"])))


@PROPERTY
@given(st.data(), thread_page())
def test_any_xenforo_thread_page_parses_or_is_refused_with_a_reason(data: st.DataObject, page: str) -> None:
    body = data.draw(damaged(_encode(page)))
    url = "https://forum.example.org/threads/a-thread.4521/" + data.draw(st.sampled_from(["", "page-2"]))
    try:
        parsed = parse_thread_page(body, source=SOURCE, url=url, thread_id="4521", fetched_at=AT, memory=None)
    except FeedParseError as exc:
        assert exc.reason in oc.PARSE_REASONS
        return
    assert all(isinstance(item, RawItem) and item.thread_id == "4521" for item in parsed.items)


@PROPERTY
@given(st.binary(max_size=2000), st.sampled_from([None, "application/rss+xml", "application/json", "text/html"]))
def test_any_bytes_parse_or_are_refused_with_a_reason(body: bytes, content_type: str | None) -> None:
    _parses_or_refuses(body, content_type)
