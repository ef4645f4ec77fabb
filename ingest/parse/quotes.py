"""Quoted passages apart from the author's own words, by markup structure only.

``split_quotes(html)`` returns ``(own_text, quotes)``. Quotes are found outermost first among
the platforms' quote containers (XenForo 2 ``blockquote.bbCodeBlock--quote``, XenForo 1
``.bbCodeQuote``, Discourse ``aside.quote``, SMF ``blockquote.bbc_*``, phpBB ``blockquote`` with a
``cite`` or ``.uncited``, then any bare ``blockquote``), and finally lines starting with ``>``.
No translated phrase ("said:", "wrote:") is ever matched: authors come from data attributes,
else from a profile link or a name already seen in the feed inside the title/``cite``.

Discourse link previews (``aside.onebox``) are neither the author's words nor a quote of a
person: they are kept as a ``Quote`` with ``origin="markup"``, ``author=None`` and
``source_post`` set to the previewed URL, so later stages can tell them apart and ignore them.

``source_post`` of a markup quote is a platform reference, resolved into an item id by the
parser: ``xenforo:<post id>``, ``discourse:<topic id or empty>:<post number>``,
``phpbb:<post id>``, ``smf:<msg id>``, or the URL of a link preview.

Linear time: quotes are found in one walk of the tree and the tree is never edited; a taken
quote, its title and an SMF header are left out of the own text by ``id()``, not removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from bs4 import Tag

from framewatch.contracts import Quote
from framewatch.ingest.parse.html_text import PARAGRAPH_BREAK, element_text, is_chrome, parse_html
from framewatch.ingest.parse.thread_memory import ThreadMemory

QUOTE_SELECTOR = "blockquote, .bbCodeQuote, .bbCodeBlock--quote, aside.quote, aside.onebox"
# Attribution chrome inside (or, for SMF 2.0, just before) a quote: never part of its text.
TITLE_SELECTOR = (
    ".bbCodeBlock-title, .attribution, aside.quote > div.title, cite, .quoteheader, "
    ".quotefooter, .bbCodeBlock-expandLink, .quote-controls"
)
_PROFILE_LINK = re.compile(
    r"memberlist\.php\?[^#]*mode=viewprofile|action=profile|/members/|/u/[^/]|/users?/", re.I
)
_QUOTE_CLASSES = frozenset({"bbCodeQuote", "bbCodeBlock--quote"})
_ASIDE_QUOTE_CLASSES = frozenset({"quote", "onebox"})
_MAX_ATTRIBUTION_CHARS = 500  # an attribution is a name and a verb; more is not searched for names
_POST_REFS = (
    (re.compile(r"[?&;]p=(\d+)|#p(\d+)$"), "phpbb"),
    (re.compile(r"\.msg(\d+)|[?&;]msg=(\d+)|#msg(\d+)$"), "smf"),
    (re.compile(r"goto/post\?id=(\d+)|/posts/(\d+)|#post-(\d+)$"), "xenforo"),
)


def split_quotes(
    markup: str | None,
    *,
    unwrap_discourse: bool = False,
    known_authors: Iterable[str] = (),
) -> tuple[str, tuple[Quote, ...]]:
    """Split post HTML into the author's own text and the passages they quoted."""
    if not markup:
        return "", ()
    soup = parse_html(markup)
    root: Tag = soup.body or soup
    if unwrap_discourse:
        root = discourse_post(root) or root
    known = sorted({a for a in known_authors if a and a.strip()}, key=len, reverse=True)
    quotes: list[Quote] = []
    hidden: set[int] = set()
    containers = find_quotes(root)
    for element in containers:
        quote = quote_from(element, known, hidden)
        if quote is not None:
            quotes.append(quote)
    replaced = dict.fromkeys(hidden, "")
    replaced.update(dict.fromkeys((id(e) for e in containers), PARAGRAPH_BREAK))
    own, line_quotes = split_marked_lines(element_text(root, replaced))
    return own, (*quotes, *line_quotes)


def is_quote_container(tag: Tag) -> bool:
    """True for an element that ``QUOTE_SELECTOR`` matches."""
    if tag.name == "blockquote":
        return True
    classes = tag.get("class") or ()
    if not _QUOTE_CLASSES.isdisjoint(classes):
        return True
    return tag.name == "aside" and not _ASIDE_QUOTE_CLASSES.isdisjoint(classes)


def find_quotes(root: Tag) -> list[Tag]:
    """The outermost quote containers below *root* outside chrome, in document order (one walk)."""
    found: list[Tag] = []
    stack = list(reversed(root.contents))
    while stack:
        node = stack.pop()
        if not isinstance(node, Tag) or is_chrome(node):
            continue
        if is_quote_container(node):
            found.append(node)
            continue
        stack.extend(reversed(node.contents))
    return found


def discourse_post(root: Tag) -> Tag | None:
    """The outer blockquote of Discourse topic RSS's ``<p>@user wrote:</p><blockquote>POST</blockquote>
    <p><a>…`` (it IS the author's post), or None. Recognised by shape only: exactly a paragraph,
    a blockquote and a paragraph holding a link, at the top level (chrome aside)."""
    if any(not isinstance(c, Tag) and str(c).strip() for c in root.children):
        return None  # loose text at the top level: not the wrapper
    children = [c for c in root.children if isinstance(c, Tag) and not is_chrome(c)]
    if len(children) != 3:
        return None
    head, body, foot = children
    if (head.name, body.name, foot.name) != ("p", "blockquote", "p") or body.get("class"):
        return None
    if foot.find("a", href=True) is None:
        return None
    return body


def unwrap_discourse_wrapper(root: Tag) -> bool:
    """Unwrap the Discourse wrapper (see ``discourse_post``) in place; True when it was there."""
    body = discourse_post(root)
    if body is None:
        return False
    for tag in [c for c in root.children if isinstance(c, Tag) and c is not body and not is_chrome(c)]:
        tag.decompose()
    body.unwrap()
    return True


def outermost(elements: list[Tag]) -> list[Tag]:
    """The elements not nested inside another element of the list, in document order.

    Each ancestor is looked at once (memoised), so the cost is the size of the tree, not
    elements x depth.
    """
    chosen = {id(e) for e in elements}
    covered: dict[int, bool] = {}  # id(node) -> a chosen element is the node or above it

    def is_covered(node: Tag | None) -> bool:
        path: list[int] = []
        result = False
        while node is not None:
            key = id(node)
            if key in covered:
                result = covered[key]
                break
            path.append(key)
            if key in chosen:
                result = True
                break
            node = node.parent
        for key in path:
            covered[key] = result
        return result

    return [e for e in elements if not is_covered(e.parent)]


def quote_from(element: Tag, known_authors: list[str], hidden: set[int] | None = None) -> Quote | None:
    """Build the Quote for one quote container; its title/cite (and an SMF header before it)
    are left out of the text and their ids added to *hidden*, so the caller leaves them out too."""
    hidden = set() if hidden is None else hidden
    classes = set(element.get("class") or ())
    if element.name == "aside" and "onebox" in classes:
        link = element.get("data-onebox-src") or _first_href(element)
        text = element_text(element)
        return Quote(text=text, author=None, source_post=str(link) if link else None) if text else None
    attribution = _attribution_of(element)
    author = _attr(element, "data-quote", "data-author", "data-username")
    if author is None and attribution is not None:
        author = author_from_attribution(attribution, known_authors)
    source_post = _source_ref(element, attribution)
    own_hidden = {id(title) for title in element.select(TITLE_SELECTOR)}
    if attribution is not None:
        own_hidden.add(id(attribution))  # SMF 2.0 keeps its header outside the blockquote
    hidden.update(own_hidden)
    text = element_text(element, dict.fromkeys(own_hidden, ""))
    if not text:
        return None
    return Quote(text=text, author=author, source_post=source_post)


def author_from_attribution(attribution: Tag, known_authors: list[str]) -> str | None:
    """The quoted author named in a title or ``cite``, found without matching any phrase."""
    for link in attribution.find_all("a", href=True):
        name = " ".join(link.get_text(" ").split())
        if name and (_PROFILE_LINK.search(str(link["href"])) or "username" in (link.get("class") or ())):
            return name
    text = " ".join(attribution.get_text(" ").split())[:_MAX_ATTRIBUTION_CHARS]
    for name in known_authors:
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            return name
    # "<name> <verb>:" in any language that puts the name first; "name:" for Discourse titles
    if text.endswith(":"):
        words = text[:-1].split()
        if len(words) == 1:
            return words[0]
        if 2 <= len(words) <= 4:
            return " ".join(words[:-1])
    return None


def split_marked_lines(text: str) -> tuple[str, tuple[Quote, ...]]:
    """Move lines starting with ``>`` (plain-text quoting) out of *text* into quotes."""
    if ">" not in text:
        return text, ()
    own_paragraphs: list[str] = []
    quotes: list[Quote] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            body = "\n".join(line for line in run if line)
            if body:
                quotes.append(Quote(text=body))
            run.clear()

    for paragraph in text.split("\n\n"):
        kept: list[str] = []
        for line in paragraph.split("\n"):
            if line.startswith(">"):
                run.append(line.lstrip("> ").strip())
            else:
                close_run()
                kept.append(line)
        if kept:
            own_paragraphs.append("\n".join(kept))
    close_run()
    return "\n\n".join(own_paragraphs), tuple(quotes)


def split_post(
    markup: str | None,
    *,
    memory: ThreadMemory | None,
    thread_key: str | None,
    post_key: str,
    author: str | None,
    published_at: datetime | None,
    unwrap_discourse: bool = False,
    known_authors: Iterable[str] = (),
) -> tuple[str, tuple[Quote, ...]]:
    """Markup quotes, then copied quotes against the thread's earlier posts; remembers the post."""
    own, quotes = split_quotes(markup, unwrap_discourse=unwrap_discourse, known_authors=known_authors)
    if memory is None or thread_key is None:
        return own, quotes
    own, copied = memory.split_copied(thread_key, post_key, published_at, own)
    memory.remember(thread_key, post_key, author, published_at, own)
    return own, (*quotes, *copied)


def _attribution_of(element: Tag) -> Tag | None:
    title = element.select_one(
        ":scope > .bbCodeBlock-title, :scope > .attribution, :scope > div.title, "
        ":scope > cite, :scope > div > cite"
    )
    if title is not None:
        return title
    previous = element.find_previous_sibling()
    if isinstance(previous, Tag) and "quoteheader" in (previous.get("class") or ()):
        return previous
    return None


def _attr(element: Tag, *names: str) -> str | None:
    for name in names:
        value = element.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _source_ref(element: Tag, attribution: Tag | None) -> str | None:
    source = _attr(element, "data-source")
    if source:
        digits = re.search(r"(\d+)", source)
        return f"xenforo:{digits.group(1)}" if digits else None
    post = _attr(element, "data-post")
    if post and element.name == "aside":
        return f"discourse:{_attr(element, 'data-topic') or ''}:{post}"
    for link in attribution.find_all("a", href=True) if attribution is not None else ():
        href = str(link["href"])
        for pattern, platform in _POST_REFS:
            match = pattern.search(href)
            if match:
                return f"{platform}:{next(g for g in match.groups() if g)}"
    return None


def _first_href(element: Tag) -> str | None:
    link = element.find("a", href=True)
    return str(link["href"]) if link is not None else None


__all__ = [
    "QUOTE_SELECTOR",
    "ThreadMemory",
    "author_from_attribution",
    "discourse_post",
    "find_quotes",
    "is_quote_container",
    "outermost",
    "quote_from",
    "split_marked_lines",
    "split_post",
    "split_quotes",
    "unwrap_discourse_wrapper",
]
