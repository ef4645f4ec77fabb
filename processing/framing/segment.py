"""Segmentation: split an item into the passages that get framed.

An article becomes paragraph-sized segments: short paragraphs are merged, long ones split at
sentence boundaries so each fits the model window. An item with only a headline (and perhaps a
summary) becomes one segment that includes the title. A forum post is its author's own text:
``item.text`` only, never ``item.quotes``. The thread's title belongs to the post that opened
the thread (``opens_thread``), which is segmented like an article; a reply carries the thread's
title too, but it is the opener's words (often the headline of the article the thread is
about), so a reply is segmented from ``item.text`` alone. Text past a hard cap is dropped and the last segment
is flagged ``truncated``. Token counts are estimated from words (about 1.3 word-piece tokens per
word), which is enough to stay inside the window without loading a tokenizer here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from framewatch.contracts import RawItem
from framewatch.processing.framing.embed import text_hash

TRUNCATED = "truncated"
TITLE = "title"
DEFAULT_MAX_CHARS = 100_000
TOKENS_PER_WORD = 1.3

_PARAGRAPH = re.compile(r"\n\s*\n+")
# Sentence end: . ! ? (optionally followed by a closing quote or bracket) then space and an
# upper-case letter, digit or opening quote. Keeps "e.g. this" and "3.5" together.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Segment:
    """One passage of an item: position, text, hash of the text, and flags (``truncated``...)."""

    index: int
    text: str
    text_hash: str
    flags: tuple[str, ...] = ()


def estimate_tokens(text: str) -> int:
    """Rough word-piece count of *text*."""
    return int(len(text.split()) * TOKENS_PER_WORD) + 1


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph at sentence boundaries."""
    return [s for s in (_clean(p) for p in _SENTENCE_END.split(paragraph)) if s]


def _split_words(sentence: str, max_tokens: int) -> list[str]:
    """Last resort for a sentence longer than the window: cut it at word boundaries."""
    words = sentence.split()
    per = max(1, int(max_tokens / TOKENS_PER_WORD) - 1)
    return [" ".join(words[i : i + per]) for i in range(0, len(words), per)]


def _fit(paragraph: str, max_tokens: int) -> list[str]:
    """Split one paragraph into pieces that each fit *max_tokens*."""
    if estimate_tokens(paragraph) <= max_tokens:
        return [paragraph]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(paragraph):
        parts = [sentence] if estimate_tokens(sentence) <= max_tokens else _split_words(sentence, max_tokens)
        for part in parts:
            if current and estimate_tokens(" ".join([*current, part])) > max_tokens:
                pieces.append(" ".join(current))
                current = []
            current.append(part)
    if current:
        pieces.append(" ".join(current))
    return pieces


def _merge_short(pieces: list[str], max_tokens: int, min_chars: int) -> list[str]:
    """Merge pieces shorter than *min_chars* into a neighbour while the result fits."""
    out: list[str] = []
    for piece in pieces:
        if out and (len(out[-1]) < min_chars or len(piece) < min_chars):
            joined = f"{out[-1]} {piece}"
            if estimate_tokens(joined) <= max_tokens:
                out[-1] = joined
                continue
        out.append(piece)
    return out


def segment_text(
    text: str, *, max_tokens: int = 200, min_chars: int = 200, max_chars: int = DEFAULT_MAX_CHARS
) -> list[Segment]:
    """Split plain *text* into segments (paragraphs merged/split to fit *max_tokens*)."""
    flags: tuple[str, ...] = ()
    if len(text) > max_chars:
        text = text[:max_chars]
        flags = (TRUNCATED,)
    paragraphs = [p for p in (_clean(p) for p in _PARAGRAPH.split(text)) if p]
    pieces: list[str] = []
    for paragraph in paragraphs:
        pieces.extend(_fit(paragraph, max_tokens))
    pieces = _merge_short(pieces, max_tokens, min_chars)
    return [
        Segment(i, piece, text_hash(piece), flags if i == len(pieces) - 1 else ())
        for i, piece in enumerate(pieces)
    ]


def opens_thread(item: RawItem) -> bool:
    """A forum post known to open its thread: in a thread, and replying to no post.

    The parser gives every other forum post a ``parent_id`` (the post replied to, the thread's
    first post, or the topic), so a post of unknown standing is treated as a reply.
    """
    return item.kind == "forum_post" and item.thread_id is not None and item.parent_id is None


def segment_item(
    item: RawItem, *, max_tokens: int = 200, min_chars: int = 200, max_chars: int = DEFAULT_MAX_CHARS
) -> list[Segment]:
    """Segments of one item; [] when it has no text of its own (caller counts it as ``empty``)."""
    body = item.text or ""
    title = _clean(item.title or "")
    if item.kind == "forum_post" and not opens_thread(item):
        # Only the author's own words; quotes live in item.quotes and are never added here.
        return segment_text(body, max_tokens=max_tokens, min_chars=min_chars, max_chars=max_chars)
    body_clean = _clean(body)
    if not body_clean:
        if not title:
            return []
        return segment_text(title, max_tokens=max_tokens, min_chars=min_chars, max_chars=max_chars)
    if estimate_tokens(body_clean) + estimate_tokens(title) <= max_tokens and len(_PARAGRAPH.split(body.strip())) == 1:
        # headline + summary: one segment that includes the title
        combined = f"{title}. {body_clean}" if title and not body_clean.startswith(title) else body_clean
        return segment_text(combined, max_tokens=max_tokens, min_chars=min_chars, max_chars=max_chars)
    return segment_text(body, max_tokens=max_tokens, min_chars=min_chars, max_chars=max_chars)
