"""Segmentation of forum threads: the thread's title is its opening post's, never a reply's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.contracts import RawItem
from framewatch.processing.framing.segment import opens_thread, segment_item

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HEADLINE = "China's social credit system is a blacklist for debtors, report says"


def post(text: str, *, thread_id: str | None = "7", parent_id: str | None = None, kind: str = "forum_post",
         title: str | None = HEADLINE) -> RawItem:
    return RawItem(
        item_id="p", source_id="s", feed_url="https://forum.example.org/posts.rss", kind=kind,  # type: ignore[arg-type]
        url=None, title=title, author="a", published_at=T0, fetched_at=T0, text=text,
        thread_id=thread_id, parent_id=parent_id,
    )


@pytest.mark.parametrize(
    ("item", "opener"),
    [
        (post("x"), True),
        (post("x", parent_id="first"), False),
        (post("x", thread_id=None), False),  # standing unknown: treated as a reply
        (post("x", kind="article"), False),
    ],
)
def test_opens_thread(item: RawItem, opener: bool) -> None:
    assert opens_thread(item) is opener


def test_one_line_reply_is_framed_on_its_own_words() -> None:
    segs = segment_item(post("It makes people behave better.", parent_id="first"))
    assert [s.text for s in segs] == ["It makes people behave better."]


def test_opening_post_keeps_the_thread_title_like_a_headline() -> None:
    segs = segment_item(post("Interesting read."))
    assert [s.text for s in segs] == [f"{HEADLINE}. Interesting read."]
    assert [s.text for s in segment_item(post(""))] == [HEADLINE]  # a shared link with no words


def test_reply_without_words_has_no_segment() -> None:
    assert segment_item(post("", parent_id="first")) == []


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefg .\n", min_size=1, max_size=300), st.sampled_from(["first", "topic-key", "p5"]))
def test_no_reply_segment_holds_the_thread_title(text: str, parent: str) -> None:
    segs = segment_item(post(text, parent_id=parent, title="ZZZ Thread Title"))
    assert all("ZZZ" not in s.text for s in segs)
    assert " ".join(s.text for s in segs).split() == text.split()
