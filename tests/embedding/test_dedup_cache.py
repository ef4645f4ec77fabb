"""The text-hash LRU: duplicates within and across batches cost no second forward pass."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from framewatch.processing.framing.embed import CachingEmbedder, FakeEmbedder


class Counting(FakeEmbedder):
    """FakeEmbedder that records every text it embeds."""

    def __init__(self) -> None:
        super().__init__(16)
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return super().embed(texts)


def test_duplicates_within_a_batch_are_embedded_once() -> None:
    inner = Counting()
    cache = CachingEmbedder(inner, max_entries=100)
    vectors = cache.embed(["a b", "c d", "a b", "a b"])
    assert sorted(inner.seen) == ["a b", "c d"]
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    assert (cache.hits, cache.misses) == (2, 2)


def test_duplicates_across_batches_hit_the_cache_and_the_oldest_go_first() -> None:
    inner = Counting()
    cache = CachingEmbedder(inner, max_entries=2)
    cache.embed(["one", "two"])
    cache.embed(["one"])  # refreshes "one": "two" is now the oldest
    cache.embed(["three"])  # evicts "two"
    inner.seen.clear()
    cache.embed(["one", "three", "two"])
    assert inner.seen == ["two"]
    assert len(cache._cache) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["x", "y z", "", "long text here", "ünï"]), max_size=20), st.integers(1, 4))
def test_cached_rows_equal_the_inner_embedders(texts: list[str], capacity: int) -> None:
    inner = FakeEmbedder(16)
    cache = CachingEmbedder(Counting(), max_entries=capacity)
    for _ in range(2):
        out = cache.embed(texts)
        assert out.shape == (len(texts), 16)
        if texts:
            assert np.allclose(out, inner.embed(texts))
