"""quotes: quoted passages apart from the author's own words; copied quotes via ThreadMemory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.ingest.parse.quotes import split_post, split_quotes
from framewatch.ingest.parse.thread_memory import ThreadMemory

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_xenforo2_quote_with_title_and_expand_link() -> None:
    own, quotes = split_quotes(
        '<blockquote data-quote="Harald" data-source="post: 88001" class="bbCodeBlock bbCodeBlock--quote">'
        '<div class="bbCodeBlock-title"><a href="/goto/post?id=88001">Harald said:</a></div>'
        '<div class="bbCodeBlock-content"><div class="bbCodeBlock-expandContent">Is it a score?</div>'
        '<div class="bbCodeBlock-expandLink"><a>Click to expand...</a></div></div></blockquote>'
        "No, mostly blacklists."
    )
    assert own == "No, mostly blacklists."
    assert [(q.text, q.author, q.source_post, q.origin) for q in quotes] == [
        ("Is it a score?", "Harald", "xenforo:88001", "markup")
    ]


def test_nested_quotes_are_taken_outermost_first() -> None:
    own, quotes = split_quotes(
        '<blockquote class="bbCodeBlock bbCodeBlock--quote" data-quote="A">outer'
        '<blockquote class="bbCodeBlock bbCodeBlock--quote" data-quote="B">inner</blockquote></blockquote>mine'
    )
    assert own == "mine"
    assert len(quotes) == 1 and quotes[0].author == "A"
    assert "inner" in quotes[0].text


def test_xenforo1_quote() -> None:
    own, quotes = split_quotes(
        '<div class="bbCodeBlock bbCodeQuote" data-author="Kiri"><aside><div class="attribution type">Kiri said:'
        ' <a href="goto/post?id=77#post-77" class="AttributionLink">↑</a></div>'
        '<blockquote class="quoteContainer"><div class="quote">Old quote text.</div>'
        '<div class="quoteExpand">Click to expand...</div></blockquote></aside></div>Reply text.'
    )
    assert own == "Reply text."
    assert quotes[0].author == "Kiri" and quotes[0].text == "Old quote text."


def test_discourse_quote_and_onebox() -> None:
    own, quotes = split_quotes(
        '<aside class="quote no-group" data-username="alice" data-post="1" data-topic="1234">'
        '<div class="title"><div class="quote-controls"></div><img src="a.png"> alice:</div>'
        "<blockquote><p>Blacklists, not scores.</p></blockquote></aside><p>Agreed.</p>"
        '<aside class="onebox" data-onebox-src="https://news.example.com/a"><header class="source">'
        '<a href="https://news.example.com/a">news.example.com</a></header>'
        '<article class="onebox-body"><h3>Preview title</h3></article></aside>'
    )
    assert own == "Agreed."
    assert quotes[0].author == "alice" and quotes[0].source_post == "discourse:1234:1"
    assert quotes[0].text == "Blacklists, not scores."
    assert quotes[1].author is None and quotes[1].source_post == "https://news.example.com/a"
    assert "Preview title" in quotes[1].text


def test_discourse_quote_from_other_topic_without_username_takes_title() -> None:
    own, quotes = split_quotes(
        '<aside class="quote" data-post="3" data-topic="99"><div class="title"> carol:</div>'
        "<blockquote><p>From elsewhere.</p></blockquote></aside><p>Mine.</p>"
    )
    assert own == "Mine." and quotes[0].author == "carol"


def test_discourse_rss_wrapper_is_unwrapped_only_when_asked() -> None:
    wrapped = (
        "<p>@alice wrote:</p><blockquote><p>My own post.</p><blockquote><p>a quote</p></blockquote>"
        '</blockquote><p><a href="https://f/t/x/1/2">Read full topic</a></p>'
    )
    own, quotes = split_quotes(wrapped, unwrap_discourse=True)
    assert own == "My own post."
    assert [q.text for q in quotes] == ["a quote"]
    own_plain, _ = split_quotes(wrapped)
    assert "My own post." not in own_plain


def test_phpbb_cite_and_uncited() -> None:
    own, quotes = split_quotes(
        '<blockquote><div><cite><a href="./memberlist.php?mode=viewprofile&amp;u=88">mainlander</a> wrote: '
        '<a href="./viewtopic.php?p=398#p398">↑</a></cite>Quoted rating.</div></blockquote>Reply.'
        '<blockquote class="uncited"><div>Anonymous rule.</div></blockquote>'
    )
    assert own == "Reply."
    assert (quotes[0].author, quotes[0].source_post, quotes[0].text) == ("mainlander", "phpbb:398", "Quoted rating.")
    assert (quotes[1].author, quotes[1].text) == (None, "Anonymous rule.")


def test_phpbb30_cite_without_links_takes_the_name_by_position() -> None:
    _, quotes = split_quotes("<blockquote><div><cite>Zhang Wei schrieb:</cite>Text.</div></blockquote>")
    assert quotes[0].author == "Zhang Wei" and quotes[0].text == "Text."


def test_smf_quote_author_from_known_names() -> None:
    own, quotes = split_quotes(
        '<blockquote class="bbc_alternate_quote"><cite><a href="https://s/index.php?topic=3.msg9#msg9">'
        "Quote from: wenjun on March 06, 2024</a></cite>Discounts for volunteering.</blockquote>Carrot side.",
        known_authors=["wenjun", "petra"],
    )
    assert own == "Carrot side."
    assert (quotes[0].author, quotes[0].source_post) == ("wenjun", "smf:9")


def test_smf20_header_outside_the_blockquote_is_dropped() -> None:
    own, quotes = split_quotes(
        '<div class="quoteheader"><div class="topslice_quote"><a href="index.php?topic=3.msg9#msg9">'
        'Quote from: wenjun on March 06</a></div></div><blockquote class="bbc_standard_quote">Quoted.</blockquote>'
        '<div class="quotefooter"><div class="botslice_quote"></div></div>Mine.'
    )
    assert own == "Mine."
    assert quotes[0].text == "Quoted." and quotes[0].source_post == "smf:9"


def test_greater_than_lines_are_quotes() -> None:
    own, quotes = split_quotes("<p>&gt; they ban flights<br>&gt; for debtors</p><p>Only after a court ruling.</p>")
    assert own == "Only after a court ruling."
    assert [q.text for q in quotes] == ["they ban flights\nfor debtors"]


def test_translated_attribution_phrases_are_never_needed() -> None:
    own, quotes = split_quotes(
        '<blockquote class="bbCodeBlock bbCodeBlock--quote" data-quote="Mei">'
        '<div class="bbCodeBlock-title">Mei 说：</div><div class="bbCodeBlock-content">引用的文字</div></blockquote>我的回复'
    )
    assert own == "我的回复"
    assert quotes[0].text == "引用的文字" and quotes[0].author == "Mei"


ARTICLE = (
    "Reuters, March 1\n\n"
    "China's top planning agency said its social credit system would focus on companies rather than individuals. "
    "It pushed back against what it called foreign misunderstanding.\n\n"
    "More than 33 million businesses have received a credit rating, the commission said."
)


def test_pasted_whole_article_plus_one_line_leaves_that_line() -> None:
    memory = ThreadMemory()
    memory.remember("t", "kiri-post", "Kiri", T0, ARTICLE)
    line = "Funny how nobody mentions the EU just banned this."
    own, quotes = memory.split_copied("t", "oskar-post", T0 + timedelta(hours=1), f"{ARTICLE}\n\n{line}")
    assert own == line
    assert len(quotes) == 1
    assert (quotes[0].origin, quotes[0].author, quotes[0].source_post) == ("copied", "Kiri", "kiri-post")
    assert quotes[0].text == ARTICLE


def test_copies_only_match_earlier_posts_and_never_the_post_itself() -> None:
    memory = ThreadMemory()
    memory.remember("t", "p1", "A", T0, ARTICLE)
    assert memory.split_copied("t", "p1", T0, ARTICLE) == (ARTICLE, ())  # the same post, re-read
    assert memory.split_copied("t", "p0", T0 - timedelta(days=1), ARTICLE) == (ARTICLE, ())  # older post
    assert memory.split_copied("other-thread", "p2", T0 + timedelta(days=1), ARTICLE) == (ARTICLE, ())


def test_partly_quoted_sentence_with_own_words_in_the_same_line() -> None:
    memory = ThreadMemory()
    memory.remember("t", "p1", "A", T0, ARTICLE)
    text = "More than 33 million businesses have received a credit rating, the commission said. I doubt that number."
    own, quotes = memory.split_copied("t", "p2", T0 + timedelta(hours=1), text)
    assert own == "I doubt that number."
    assert quotes[0].text.startswith("More than 33 million")


def test_memory_is_bounded() -> None:
    memory = ThreadMemory(max_threads=3, max_posts=2)
    for thread in range(5):
        for post in range(4):
            memory.remember(f"t{thread}", f"p{post}", None, T0, f"post {post} of thread {thread}")
    assert len(memory) == 3
    assert [p.post_key for p in memory.posts("t4")] == ["p2", "p3"]
    assert memory.posts("t0") == ()


def test_memory_is_bounded_by_total_shingles() -> None:
    memory = ThreadMemory(max_shingles=100)
    for thread in range(10):
        memory.remember(f"t{thread}", "p", None, T0, " ".join(f"w{thread}x{i}" for i in range(40)))
    assert len(memory) == 2  # 38 shingles each: only the two most recent threads fit
    assert memory.posts("t9") and not memory.posts("t7")


def test_split_post_remembers_own_text_only() -> None:
    memory = ThreadMemory()
    own, _ = split_post(
        '<blockquote class="uncited"><div>someone else said this long sentence about debt lists</div></blockquote>Mine only.',
        memory=memory, thread_key="t", post_key="p1", author="A", published_at=T0,
    )
    assert own == "Mine only."
    assert "someone" not in memory.posts("t")[0].joined


# --- properties ------------------------------------------------------------------------------

OWN_WORDS = ["social", "credit", "score", "china", "system", "court", "debt", "list", "city", "pilot", "people", "rules"]
QUOTE_WORDS = ["blacklist", "rating", "travel", "banned", "firm", "export", "customs", "appeal", "repair", "app", "quota"]
AUTHORS = ["alice", "bob_k", "Harald", "mainlander"]

own_paragraphs = st.lists(st.lists(st.sampled_from(OWN_WORDS), min_size=1, max_size=12).map(" ".join), min_size=0, max_size=5)
quote_texts = st.lists(st.sampled_from(QUOTE_WORDS), min_size=1, max_size=15).map(" ".join)

QUOTE_TEMPLATES = [
    '<blockquote data-quote="{a}" data-source="post: 5" class="bbCodeBlock bbCodeBlock--expandable bbCodeBlock--quote">'
    '<div class="bbCodeBlock-title"><a href="/goto/post?id=5">{a} said:</a></div><div class="bbCodeBlock-content">'
    '<div class="bbCodeBlock-expandContent">{t}</div><div class="bbCodeBlock-expandLink"><a>Click to expand...</a></div>'
    "</div></blockquote>",
    '<div class="bbCodeBlock bbCodeQuote" data-author="{a}"><aside><div class="attribution type">{a} said:</div>'
    '<blockquote class="quoteContainer"><div class="quote">{t}</div></blockquote></aside></div>',
    '<aside class="quote no-group" data-username="{a}" data-post="2" data-topic="9"><div class="title">'
    '<div class="quote-controls"></div> {a}:</div><blockquote><p>{t}</p></blockquote></aside>',
    '<blockquote class="bbc_standard_quote"><cite><a href="index.php?topic=1.msg2#msg2">Quote from: {a} on May 1</a></cite>{t}</blockquote>',
    '<blockquote><div><cite><a href="./memberlist.php?mode=viewprofile&amp;u=2">{a}</a> wrote:</cite>{t}</div></blockquote>',
    '<blockquote class="uncited"><div>{t}</div></blockquote>',
    "<blockquote><p>{t}</p></blockquote>",
    "<p>&gt; {t}</p>",
    '<aside class="onebox"><header class="source"><a href="https://x.example/a">x.example</a></header><p>{t}</p></aside>',
]


@st.composite
def posts_with_quotes(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    own = draw(own_paragraphs)
    blocks: list[str] = [f"<p>{p}</p>" for p in own]
    quoted: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        text = draw(quote_texts)
        template = draw(st.sampled_from(QUOTE_TEMPLATES))
        block = template.format(a=draw(st.sampled_from(AUTHORS)), t=text)
        if draw(st.booleans()) and quoted:  # nest inside the previous quote's text
            block = template.format(a=draw(st.sampled_from(AUTHORS)), t=text + " " + quoted[-1])
        blocks.insert(draw(st.integers(0, len(blocks))), block)
        quoted.append(text)
    return "".join(blocks), own, quoted


@settings(max_examples=200, deadline=None)
@given(posts_with_quotes())
def test_quote_extraction_keeps_own_text_and_leaks_no_quote(case: tuple[str, list[str], list[str]]) -> None:
    markup, own, quoted = case
    own_text, quotes = split_quotes(markup)
    for paragraph in own:
        assert paragraph in own_text
    own_tokens = set(own_text.split())
    assert own_tokens.isdisjoint(QUOTE_WORDS)
    assert own_tokens <= set(OWN_WORDS)
    all_quoted = " ".join(q.text for q in quotes)
    for text in quoted:
        assert text in " ".join(all_quoted.split())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(QUOTE_WORDS), min_size=8, max_size=20).map(" ".join), min_size=1, max_size=4),
    own_paragraphs,
    st.integers(0, 4),
)
def test_copy_detection_takes_the_paste_and_keeps_the_rest(earlier: list[str], own: list[str], at: int) -> None:
    memory = ThreadMemory()
    memory.remember("t", "p1", "Kiri", T0, "\n\n".join(earlier))
    paragraphs = list(own)
    paragraphs[min(at, len(paragraphs)) : min(at, len(paragraphs))] = earlier
    own_text, quotes = memory.split_copied("t", "p2", T0 + timedelta(minutes=5), "\n\n".join(paragraphs))
    assert own_text == "\n\n".join(own)
    assert all(q.origin == "copied" and q.author == "Kiri" for q in quotes)
    assert " ".join(q.text for q in quotes).split() == " ".join(earlier).split()
