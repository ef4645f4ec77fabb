"""Duplicate detection: exact, near, window expiry, memory bound, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.processing.framing.dedup import (
    Deduplicator,
    MinHasher,
    normalise_for_dedup,
    shingles,
)
from framewatch.processing.framing.embed import text_hash

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STORY = (
    "Beijing expands its social credit system to cover private firms, officials said on Monday, "
    "adding that companies with low scores will face more inspections and higher fees while "
    "high scorers get faster approvals and lower taxes across the province."
)


def check(d: Deduplicator, text: str, at: datetime = T0) -> str | None:
    return d.check(text_hash(text), text, at)


def test_exact_duplicate_after_normalisation() -> None:
    d = Deduplicator()
    assert check(d, STORY) is None
    assert check(d, "  " + STORY.upper().replace(",", " ,") + "!!") == text_hash(STORY)
    assert check(d, STORY) == text_hash(STORY)


def test_near_duplicate_syndicated_copy() -> None:
    d = Deduplicator()
    assert check(d, STORY) is None
    copy = STORY.replace("on Monday", "on Monday (Reuters)") + " Reporting by Jane Doe."
    assert check(d, copy) == text_hash(STORY)


def test_different_story_is_not_a_duplicate() -> None:
    d = Deduplicator()
    check(d, STORY)
    other = (
        "Critics in Europe compare the scoring plan to an episode of Black Mirror, warning that "
        "constant surveillance will chill speech and punish dissent without any transparency."
    )
    assert check(d, other) is None
    assert len(d) == 2


def test_short_texts_only_exact() -> None:
    d = Deduplicator()
    assert check(d, "Great post!") is None
    assert check(d, "Great post!!") == text_hash("Great post!")
    assert check(d, "Great posts") is None  # too short for the near check


def test_window_expiry() -> None:
    d = Deduplicator(window=timedelta(days=2))
    check(d, STORY, T0)
    assert check(d, STORY, T0 + timedelta(days=1)) == text_hash(STORY)
    # a later item moves the window on; the original is forgotten
    check(d, "Something else entirely, long enough to be remembered by the near check.", T0 + timedelta(days=3))
    assert check(d, STORY, T0 + timedelta(days=3)) is None
    assert check(d, STORY + " again", T0 + timedelta(days=3)) == text_hash(STORY)


def test_memory_bound() -> None:
    d = Deduplicator(max_entries=3)
    texts = [f"Story number {i} about a quite different subject {i * 7919} with more words" for i in range(10)]
    for i, t in enumerate(texts):
        assert check(d, t, T0 + timedelta(minutes=i)) is None
    assert len(d) == 3
    assert check(d, texts[0], T0 + timedelta(minutes=20)) is None  # evicted, so new again
    assert check(d, texts[9], T0 + timedelta(minutes=20)) == text_hash(texts[9])


def test_minhash_estimates_jaccard() -> None:
    a = shingles(normalise_for_dedup(STORY))
    b = shingles(normalise_for_dedup(STORY + " extra words at the end of it"))
    h = MinHasher(256)
    est = float((h.signature(a) == h.signature(b)).mean())
    true = len(set(a) & set(b)) / len(set(a) | set(b))
    assert abs(est - true) < 0.12


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([STORY, STORY + " More.", "Unrelated text about weather in the mountains today.", "x y"]), max_size=12))
def test_deterministic_across_restarts(texts: list[str]) -> None:
    def run() -> list[str | None]:
        d = Deduplicator()
        return [check(d, t, T0 + timedelta(hours=i)) for i, t in enumerate(texts)]

    first = run()
    assert first == run()
    seen: set[str] = set()
    for t, result in zip(texts, first, strict=True):
        if result is None:
            seen.add(text_hash(t))
        else:
            assert result in seen  # always points at a remembered original
