"""HTML -> clean text: paragraphs separated by blank lines, lines kept, boilerplate dropped.

Never raises: broken markup is parsed leniently, and anything that still fails falls back to
stripping tags with a regular expression. Linear time: the tree is read in one iterative walk,
never edited (bs4's insert/replace/decompose each cost the length of the parent's children or
the element's descendants, which made long or deeply nested posts quadratic).
"""

from __future__ import annotations

import html
import re
import unicodedata
import warnings
from collections.abc import Mapping

from bs4 import (
    BeautifulSoup,
    CData,
    MarkupResemblesLocatorWarning,
    NavigableString,
    PageElement,
    Tag,
    XMLParsedAsHTMLWarning,
)

# Private-use characters mark block and line breaks while the tree is flattened; they are
# removed from the input first, so they cannot clash with real text.
_PARA = "\ue000"
_LINE = "\ue001"
PARAGRAPH_BREAK = _PARA  # what a removed block (a quote taken out of a post) leaves behind

DROPPED_TAGS = (
    "script", "style", "iframe", "noscript", "template", "object", "embed", "svg", "math",
    "head", "title", "meta", "link", "button", "select", "input", "textarea", "canvas",
)  # fmt: skip
BLOCK_TAGS = (
    "p", "div", "section", "article", "aside", "header", "footer", "main", "nav", "blockquote",
    "pre", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "figure", "figcaption", "details", "summary", "address", "center", "body", "html",
)  # fmt: skip
# Elements whose only job is platform chrome (XenForo's expand link, Discourse quote controls).
BOILERPLATE_SELECTORS = (
    ".bbCodeBlock-expandLink", ".js-expandLink", ".quoteExpand", ".quote-controls",
    ".message-signature", ".bbCodeBlock-shrinkLink",
)  # fmt: skip

# Whole lines that are platform boilerplate, compared after lower-casing and trimming dots.
BOILERPLATE_LINES = frozenset(
    {"click to expand", "click to shrink", "read more", "read full topic", "continue reading",
     "read the full article", "(read more)", "[read more]", "[…]", "[...]"}
)  # fmt: skip
_BOILERPLATE_PATTERNS = (
    re.compile(r"^statistics: posted by\b", re.IGNORECASE),  # phpBB feed footer
    re.compile(r"^the post .{0,200} appeared first on .{1,200}$", re.IGNORECASE),  # WordPress
)
# "script" preceded by [\s<]* [/ [\s<]*], read on the reversed text: every "<" in that run is one
# that a repeated removal of "<" before "\s*/?\s*script" would remove, found in one pass.
_SCRIPT_REVERSED = re.compile(r"tpircs(?:[\s<]*/)?[\s<]*", re.IGNORECASE)
_SCRIPT_WORD = re.compile(r"script", re.IGNORECASE)
_DROPPED = frozenset(DROPPED_TAGS)
_BLOCKS = frozenset(BLOCK_TAGS)
_CHROME_CLASSES = frozenset(s.lstrip(".") for s in BOILERPLATE_SELECTORS)
_MAIN_STRING_TYPES = frozenset({NavigableString, CData})  # what bs4's get_text() reads: no comments
_TAG = re.compile(r"<[^>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000-\ue001]")


def html_to_text(markup: str | None) -> str:
    """Return the readable text of an HTML fragment or page (paragraphs split by blank lines)."""
    if not markup:
        return ""
    markup = _CONTROL.sub(" ", str(markup))
    try:
        soup = parse_html(markup)
        flat = flatten(soup)
    except Exception:  # the lenient parser can still trip on pathological input
        flat = html.unescape(_TAG.sub(" ", markup))
    return tidy_text(flat)


def plain_to_text(text: str | None) -> str:
    """Normalise plain text the same way (for JSON Feed ``content_text`` and the like)."""
    if not text:
        return ""
    text = _CONTROL.sub(" ", str(text))
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return tidy_text(_PARA.join(p.replace("\n", _LINE) for p in paragraphs))


def parse_html(markup: str | bytes) -> BeautifulSoup:
    """Parse HTML leniently (lxml), falling back to Python's own parser; bs4's hints silenced."""
    with warnings.catch_warnings():
        # Feed content often "resembles a URL" or XML; both are expected here, not mistakes.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        try:
            return BeautifulSoup(markup, "lxml")
        except Exception:
            return BeautifulSoup(markup, "html.parser")


def is_chrome(tag: Tag) -> bool:
    """True for an element that is never text: scripts, styles, forms, platform chrome."""
    if tag.name in _DROPPED:
        return True
    classes = tag.get("class")
    if not classes:
        return False
    return not _CHROME_CLASSES.isdisjoint(classes.split() if isinstance(classes, str) else classes)


def drop_chrome(root: Tag) -> None:
    """Remove non-text elements and platform chrome from *root*, in place (``flatten`` skips them
    without this; kept for callers that edit the tree)."""
    for tag in root.find_all(DROPPED_TAGS):
        tag.decompose()
    for selector in BOILERPLATE_SELECTORS:
        for tag in root.select(selector):
            tag.decompose()


def flatten(root: Tag, replaced: Mapping[int, str] | None = None) -> str:
    """Flatten a tree into text with paragraph and line markers, in one walk (no recursion).

    Chrome is skipped; an element whose ``id()`` is in *replaced* stands for the given string
    (``""`` hides it). The tree is not changed.
    """
    types = getattr(root, "interesting_string_types", None) or _MAIN_STRING_TYPES
    out: list[str] = []
    stack: list[str | tuple[PageElement, bool]] = [(root, False)]
    while stack:
        entry = stack.pop()
        if isinstance(entry, str):
            out.append(entry)
            continue
        node, in_pre = entry
        if isinstance(node, NavigableString):
            if type(node) in types:
                out.append(node.replace("\n", _LINE) if in_pre else str(node))
            continue
        if not isinstance(node, Tag):
            continue
        if node is not root:
            if replaced and id(node) in replaced:
                out.append(replaced[id(node)])
                continue
            if is_chrome(node):
                continue
            if node.name == "br":
                out.append(_LINE)
                continue
            in_pre = in_pre or node.name == "pre"
        if node.name in _BLOCKS:
            out.append(_PARA)
            stack.append(_PARA)
        stack.extend((child, in_pre) for child in reversed(node.contents))
    return "".join(out)


def element_text(tag: Tag, replaced: Mapping[int, str] | None = None) -> str:
    """Clean text of one element; *replaced* as in ``flatten`` (the element is not changed)."""
    try:
        return tidy_text(flatten(tag, replaced))
    except Exception:
        return tidy_text(html.unescape(_TAG.sub(" ", str(tag))))


def tidy_text(flat: str) -> str:
    """Turn marked-up flat text into paragraphs of lines, whitespace collapsed, boilerplate gone."""
    paragraphs: list[str] = []
    for chunk in flat.split(_PARA):
        lines: list[str] = []
        for raw_line in chunk.split(_LINE):
            line = " ".join(unicodedata.normalize("NFC", raw_line).split())
            if not line:
                # two line breaks in a row end a paragraph, as forum posts use <br><br>
                if lines:
                    paragraphs.append("\n".join(lines))
                    lines = []
                continue
            if not is_boilerplate(line):
                lines.append(line)
        if lines:
            paragraphs.append("\n".join(lines))
    return defuse_script("\n\n".join(paragraphs))


def is_boilerplate(line: str) -> bool:
    """True for a line that is feed or forum chrome rather than anyone's words."""
    key = line.strip().lower().rstrip(".…:→»› ").strip()
    if key in BOILERPLATE_LINES:
        return True
    return any(pattern.search(line) for pattern in _BOILERPLATE_PATTERNS)


def defuse_script(text: str) -> str:
    """Remove the ``<`` of any ``<script`` left in text (e.g. from ``&lt;script&gt;``).

    Also ``< / script`` and ``<<script`` (removing one ``<`` must not leave another before
    ``script``): every ``<`` in the run of whitespace, ``<`` and at most one ``/`` before a
    ``script`` goes, in one linear pass over the reversed text.
    """
    if "<" not in text or not _SCRIPT_WORD.search(text):
        return text
    return _SCRIPT_REVERSED.sub(lambda m: m.group().replace("<", ""), text[::-1])[::-1]


__all__ = [
    "PARAGRAPH_BREAK",
    "defuse_script",
    "drop_chrome",
    "element_text",
    "flatten",
    "html_to_text",
    "is_boilerplate",
    "is_chrome",
    "parse_html",
    "plain_to_text",
    "tidy_text",
]
