"""html_text: HTML -> clean text, with boilerplate gone and block structure kept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.ingest.parse.html_text import html_to_text, plain_to_text


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>One &amp; two</p><p>Three</p>", "One & two\n\nThree"),
        ("line one<br>line two<br><br>next paragraph", "line one\nline two\n\nnext paragraph"),
        ("<ul><li>first</li><li>second</li></ul>", "first\n\nsecond"),
        ("<h2>Heading</h2>body   text\n  here", "Heading\n\nbody text here"),
        ("<p>kept</p><script>alert(1)</script><style>p{}</style><iframe src=x>no</iframe>", "kept"),
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        ("<p>Body</p><p><a href='/x'>Read more</a></p>", "Body"),
        ("<p>Post</p><p>Read full topic</p>", "Post"),
        ("<div>Quote</div><div class='bbCodeBlock-expandLink'><a>Click to expand...</a></div>", "Quote"),
        ("<p>Text</p><p>Statistics: Posted by <a href='#'>admin</a> — Mon Jan 01, 2024</p><hr />", "Text"),
        ("<p>Click to expand... is fine inside a sentence</p>", "Click to expand... is fine inside a sentence"),
        ("<!-- comment --><p>&lt;b&gt; is shown literally</p>", "<b> is shown literally"),
        ("", ""),
        ("<pre>a\n  b</pre>", "a\nb"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


def test_escaped_script_is_defused() -> None:
    text = html_to_text("<p>&lt;script&gt;steal()&lt;/script&gt; and &lt;SCRIPT src=x&gt;</p>")
    assert "<script" not in text.lower()
    assert "steal()" in text


def test_plain_text_keeps_paragraphs() -> None:
    assert plain_to_text("one\ntwo\n\n\nthree  four\r\n") == "one\ntwo\n\nthree four"


TAGS = st.sampled_from(["p", "div", "br", "script", "style", "iframe", "b", "li", "blockquote", "SCRIPT", "scr<script>ipt"])
html_chunks = st.one_of(
    st.text(max_size=30),
    TAGS.map(lambda t: f"<{t}>"),
    TAGS.map(lambda t: f"</{t}>"),
    st.sampled_from(["&lt;script&gt;", "&#60;script", "&amp;", "&#0;", "&bogus;", "<!--", "-->", "<![CDATA[", "]]>", "\x00", "<"]),
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    out = html_to_text(text)
    assert isinstance(out, str)
    assert "<script" not in out.lower()


@settings(max_examples=300, deadline=None)
@given(st.lists(html_chunks, max_size=40).map("".join))
def test_any_html_never_raises_nor_returns_script(markup: str) -> None:
    out = html_to_text(markup)
    assert "<script" not in out.lower()
    assert not re.search(r"\n{3,}", out)
    assert out == out.strip()
