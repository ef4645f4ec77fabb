"""HTML -> clean text: paragraphs separated by blank lines, lines kept, boilerplate dropped.

Never raises: broken markup is parsed leniently, and anything that still fails falls back to
stripping tags with a regular expression.
"""

from __future__ import annotations

import html
import re
import unicodedata
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag, XMLParsedAsHTMLWarning

# Private-use characters mark block and line breaks while the tree is flattened; they are
# removed from the input first, so they cannot clash with real text.
_PARA = "\ue000"
_LINE = "\ue001"

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
_SCRIPT_TAG = re.compile(r"<(?=\s*/?\s*script)", re.IGNORECASE)
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


def drop_chrome(root: Tag) -> None:
    """Remove non-text elements and platform chrome from *root*, in place."""
    for tag in root.find_all(DROPPED_TAGS):
        tag.decompose()
    for selector in BOILERPLATE_SELECTORS:
        for tag in root.select(selector):
            tag.decompose()


def flatten(root: Tag) -> str:
    """Flatten a tree into text with paragraph and line markers (mutates *root*)."""
    drop_chrome(root)
    for br in root.find_all("br"):
        br.replace_with(_LINE)
    for pre in root.find_all("pre"):
        for string in pre.find_all(string=True):
            string.replace_with(string.replace("\n", _LINE))
    for tag in root.find_all(BLOCK_TAGS):
        tag.insert_before(_PARA)
        tag.append(_PARA)
    if isinstance(root, Tag) and root.name in BLOCK_TAGS:
        return _PARA + root.get_text() + _PARA
    return root.get_text()


def element_text(tag: Tag) -> str:
    """Clean text of one element (mutates the element: use on detached or disposable tags)."""
    try:
        return tidy_text(flatten(tag))
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
    """Remove the ``<`` of any ``<script`` left in text (e.g. from ``&lt;script&gt;``)."""
    while _SCRIPT_TAG.search(text):
        text = _SCRIPT_TAG.sub("", text)
    return text


__all__ = [
    "drop_chrome",
    "element_text",
    "flatten",
    "html_to_text",
    "is_boilerplate",
    "parse_html",
    "plain_to_text",
    "tidy_text",
]
