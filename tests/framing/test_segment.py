"""Segmentation: paragraphs merged/split to fit, titles for short items, quotes never included."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.contracts import Quote, RawItem
from framewatch.processing.framing.segment import (
    TRUNCATED,
    estimate_tokens,
    segment_item,
    segment_text,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def item(text: str, *, kind: str = "article", title: str | None = "A headline", quotes: tuple[Quote, ...] = ()) -> RawItem:
    return RawItem(
        item_id="i1", source_id="s", feed_url="https://example.org/feed", kind=kind,  # type: ignore[arg-type]
        url=None, title=title, author="a", published_at=T0, fetched_at=T0, text=text, quotes=quotes,
    )


def words(texts: list[str]) -> list[str]:
    return " ".join(texts).split()


def test_headline_and_summary_make_one_segment_with_title() -> None:
    segs = segment_item(item("Officials say the scores build trust.", title="Social credit expands"))
    assert [s.text for s in segs] == ["Social credit expands. Officials say the scores build trust."]
    assert segs[0].index == 0 and len(segs[0].text_hash) == 32


def test_headline_only() -> None:
    assert [s.text for s in segment_item(item("", title="Only a title"))] == ["Only a title"]


def test_empty_item_has_no_segments() -> None:
    assert segment_item(item("  \n ", title=None)) == []
    assert segment_item(item("", kind="forum_post", title="Re: thread")) == []


def test_long_article_paragraphs_merged_and_split() -> None:
    short = "Short para."
    sentence = "This sentence has exactly eight words in it. "
    long_para = sentence * 60  # ~480 words: must be split at sentence ends
    text = f"{short}\n\n{short}\n\n{long_para}\n\nClosing words here."
    segs = segment_item(item(text), max_tokens=100, min_chars=40)
    assert len(segs) > 4
    assert all(estimate_tokens(s.text) <= 100 for s in segs)
    assert segs[0].text.startswith("Short para. Short para.")  # short paragraphs merged
    assert all(s.text.endswith((".", "here.")) for s in segs)  # split at sentence boundaries
    assert words([s.text for s in segs]) == text.split()
    assert [s.index for s in segs] == list(range(len(segs)))


def test_forum_post_uses_only_authors_text() -> None:
    quote = Quote("The system is a dystopia, obviously.", author="other")
    segs = segment_item(item("I disagree, it makes people behave better.", kind="forum_post", quotes=(quote,)))
    assert [s.text for s in segs] == ["I disagree, it makes people behave better."]


def test_absurdly_long_text_is_truncated_and_flagged() -> None:
    text = "word " * 50_000
    segs = segment_text(text, max_tokens=200, max_chars=10_000)
    assert segs[-1].flags == (TRUNCATED,)
    assert all(TRUNCATED not in s.flags for s in segs[:-1])
    assert sum(len(s.text) for s in segs) <= 10_000


def test_sentence_splitter_keeps_abbreviations_and_decimals() -> None:
    text = ("The rate rose 3.5 percent, e.g. in cities. " * 30).strip()
    segs = segment_text(text, max_tokens=60, min_chars=10)
    assert all("3.5" in s.text for s in segs)


_word = st.text(alphabet="abcdefghij", min_size=1, max_size=8)
_sentence = st.lists(_word, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
_paragraph = st.lists(_sentence, min_size=1, max_size=12).map(" ".join)
_body = st.lists(_paragraph, min_size=1, max_size=6).map("\n\n".join)
# quotes use letters that never occur in the author's text
_quote = st.lists(st.text(alphabet="QRSTUVWXYZ", min_size=3, max_size=8), min_size=1, max_size=20).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(body=_body, quotes=st.lists(_quote, max_size=3), max_tokens=st.integers(8, 300), kind=st.sampled_from(["article", "forum_post"]))
def test_segments_cover_text_fit_cap_and_exclude_quotes(body: str, quotes: list[str], max_tokens: int, kind: str) -> None:
    it = item(body, kind=kind, title=None, quotes=tuple(Quote(q) for q in quotes))
    segs = segment_item(it, max_tokens=max_tokens, min_chars=50)
    assert words([s.text for s in segs]) == body.split()  # cover the text, in order, nothing else
    assert all(estimate_tokens(s.text) <= max_tokens for s in segs)
    for s in segs:
        assert not any(q in s.text for q in quotes)
        assert not any(ch in s.text for ch in "QRSTUVWXYZ")
