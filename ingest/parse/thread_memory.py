"""Copied quotes without markup: text that nearly duplicates an earlier post of the same thread.

``ThreadMemory`` keeps, per thread, the own text of recent posts: LRU-capped on threads, on
posts per thread, and on the total number of shingles held (about 60 bytes each), so its
memory stays bounded whatever the posts' length. ``split_copied`` cuts a new post's own text into sentences; a sentence of
at least ``min_words`` words whose word 3-shingles are >= ``threshold`` contained in one
earlier post is copied from it. Shorter sentences (headings, "Reuters.") next to a copied run
count as copied when they occur verbatim in the same earlier post. Only posts published
strictly before the new one are compared, and never the post with itself, so re-reading a feed
gives the same split. Linear time in the new post: the verbatim look-up of a short sentence is a
set look-up of its word n-gram in the earlier post (built once per split, per post and n), and
short sentences take their neighbours' source through a work list, not repeated passes.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime

from framewatch.contracts import Quote

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+(?=\S)")
_MAX_WORDS_PER_POST = 20_000


@dataclass(frozen=True, slots=True)
class RememberedPost:
    """The part of an earlier post that copied text is compared with."""

    post_key: str
    author: str | None
    published_at: datetime | None
    shingles: frozenset[int]  # hashes of word 3-grams (stable within one process)
    joined: str  # " word word … " for verbatim look-ups of short sentences


@dataclass(slots=True)
class _Unit:
    text: str
    words: list[str]
    paragraph: int
    line: int
    source: RememberedPost | None = None


class ThreadMemory:
    """Bounded in-memory record of recent posts per thread, for copy-paste quote detection."""

    def __init__(
        self,
        max_threads: int = 1000,
        max_posts: int = 200,
        *,
        threshold: float = 0.8,
        shingle_size: int = 3,
        min_words: int = 6,
        max_shingles: int = 2_000_000,
    ) -> None:
        self.max_threads = max_threads
        self.max_posts = max_posts
        self.max_shingles = max_shingles
        self._held = 0
        self.threshold = threshold
        self.shingle_size = shingle_size
        self.min_words = min_words
        self._threads: OrderedDict[str, OrderedDict[str, RememberedPost]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._threads)

    def posts(self, thread_key: str) -> tuple[RememberedPost, ...]:
        """The remembered posts of one thread, oldest remembered first."""
        return tuple(self._threads.get(thread_key, {}).values())

    def remember(
        self, thread_key: str, post_key: str, author: str | None, published_at: datetime | None, text: str
    ) -> None:
        """Record a post's own text (replacing an earlier record of the same post)."""
        words = words_of(text)[:_MAX_WORDS_PER_POST]
        posts = self._threads.get(thread_key)
        if posts is None:
            posts = self._threads[thread_key] = OrderedDict()
        self._threads.move_to_end(thread_key)
        old = posts.pop(post_key, None)
        self._held -= len(old.shingles) if old is not None else 0
        record = RememberedPost(
            post_key, author, published_at, shingles(words, self.shingle_size), f" {' '.join(words)} "
        )
        posts[post_key] = record
        self._held += len(record.shingles)
        while len(posts) > self.max_posts:
            self._held -= len(posts.popitem(last=False)[1].shingles)
        while len(self._threads) > self.max_threads or (self._held > self.max_shingles and len(self._threads) > 1):
            _, evicted = self._threads.popitem(last=False)
            self._held -= sum(len(p.shingles) for p in evicted.values())

    def split_copied(
        self, thread_key: str, post_key: str, published_at: datetime | None, text: str
    ) -> tuple[str, tuple[Quote, ...]]:
        """Split *text* into what the author wrote and what they copied from earlier posts."""
        earlier = [
            p for p in self._threads.get(thread_key, {}).values()
            if p.post_key != post_key and _before(p.published_at, published_at)
        ]  # fmt: skip
        if not earlier or not text:
            return text, ()
        if thread_key in self._threads:
            self._threads.move_to_end(thread_key)
        units = units_of(text)
        for unit in units:
            if len(unit.words) >= self.min_words:
                unit.source = self._best_source(unit.words, earlier)
        self._extend_to_short_neighbours(units)
        return _assemble(units)

    def _best_source(self, words: list[str], earlier: list[RememberedPost]) -> RememberedPost | None:
        mine = shingles(words, self.shingle_size)
        best: RememberedPost | None = None
        best_score = self.threshold
        for post in earlier:
            score = len(mine & post.shingles) / len(mine)
            if score >= best_score and (best is None or score > best_score or _before(post.published_at, best.published_at)):
                best, best_score = post, score
        return best

    def _extend_to_short_neighbours(self, units: list[_Unit]) -> None:
        """Short units next to a copied unit take its source when they occur verbatim in it
        (an empty unit between two copied ones takes it too); repeated until nothing changes.

        A unit is looked at again only when a neighbour got a source, so each unit is decided
        at most three times whatever the length of the post.
        """
        grams: dict[tuple[int, int], set[tuple[str, ...]]] = {}  # (id(post), n) -> its n-grams

        def verbatim(words: list[str], post: RememberedPost) -> bool:
            key = (id(post), len(words))
            if key not in grams:
                theirs = post.joined.split()
                grams[key] = {tuple(theirs[i : i + len(words)]) for i in range(len(theirs) - len(words) + 1)}
            return tuple(words) in grams[key]

        pending = deque(range(len(units)))
        while pending:
            i = pending.popleft()
            unit = units[i]
            if unit.source is not None or len(unit.words) >= self.min_words:
                continue
            neighbours = [units[j] for j in (i - 1, i + 1) if 0 <= j < len(units)]
            if not unit.words:
                if len(neighbours) == 2 and all(n.source is not None for n in neighbours):
                    unit.source = neighbours[0].source
            else:
                for neighbour in neighbours:
                    if neighbour.source is not None and verbatim(unit.words, neighbour.source):
                        unit.source = neighbour.source
                        break
            if unit.source is not None:
                pending.extend(j for j in (i - 1, i + 1) if 0 <= j < len(units) and units[j].source is None)


def words_of(text: str) -> list[str]:
    """Lower-cased word tokens of *text*."""
    return _WORD.findall(text.lower())


def shingles(words: list[str], size: int) -> frozenset[int]:
    """Hashes of the word n-grams of *words* (the whole sequence when shorter than *size*)."""
    if len(words) <= size:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(hash(tuple(words[i : i + size])) for i in range(len(words) - size + 1))


def units_of(text: str) -> list[_Unit]:
    """Sentences of *text*, each tagged with its paragraph and line."""
    units: list[_Unit] = []
    for p, paragraph in enumerate(text.split("\n\n")):
        for n, line in enumerate(paragraph.split("\n")):
            for sentence in _SENTENCE_END.split(line):
                if sentence.strip():
                    units.append(_Unit(sentence.strip(), words_of(sentence), p, n))
    return units


def _before(earlier: datetime | None, later: datetime | None) -> bool:
    if earlier is None or later is None:
        return earlier is not None or later is None
    return earlier < later


def _join(units: list[_Unit]) -> str:
    out: list[str] = []
    for prev, unit in zip([None, *units], units, strict=False):
        if prev is not None:
            if prev.paragraph != unit.paragraph:
                out.append("\n\n")
            elif prev.line != unit.line:
                out.append("\n")
            else:
                out.append(" ")
        out.append(unit.text)
    return "".join(out)


def _assemble(units: list[_Unit]) -> tuple[str, tuple[Quote, ...]]:
    own = [u for u in units if u.source is None]
    quotes: list[Quote] = []
    run: list[_Unit] = []
    for unit in [*units, None]:
        if unit is not None and unit.source is not None and (not run or run[-1].source is unit.source):
            run.append(unit)
            continue
        if run:
            source = run[0].source
            assert source is not None
            quotes.append(Quote(_join(run), source.author, source.post_key, "copied"))
            run = []
        if unit is not None and unit.source is not None:
            run.append(unit)
    return _join(own), tuple(quotes)


__all__ = ["RememberedPost", "ThreadMemory", "shingles", "units_of", "words_of"]
