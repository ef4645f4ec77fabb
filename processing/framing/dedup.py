"""Duplicate detection: syndicated copies and reposts neither count twice nor cost an embedding.

Two checks, both over a bounded time window and a bounded number of remembered texts:

- exact: the hash of the normalised text (case, punctuation and spacing folded);
- near: MinHash signatures of word 3-gram shingles (character 5-grams for very short texts),
  with LSH banding to find candidates and the signature agreement as the Jaccard estimate.

Hashing uses fixed seeds and crc32/blake2b, never Python's salted ``hash``, so the same input
order gives the same answers after a restart.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

_NON_WORD = re.compile(r"[^\w]+")
_MASK32 = np.uint64(0xFFFFFFFF)


def normalise_for_dedup(text: str) -> str:
    """Fold case, Unicode forms, punctuation and whitespace."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(normalised: str, *, word_n: int = 3, char_n: int = 5) -> np.ndarray:
    """uint64 hashes of word n-grams, or of character n-grams when there are few words."""
    words = normalised.split()
    if len(words) >= word_n + 2:
        grams = [" ".join(words[i : i + word_n]) for i in range(len(words) - word_n + 1)]
    else:
        grams = [normalised[i : i + char_n] for i in range(max(1, len(normalised) - char_n + 1))]
    return np.unique(np.array([zlib.crc32(g.encode("utf-8")) for g in grams], dtype=np.uint64))


class MinHasher:
    """MinHash with multiply-shift hash functions drawn from a fixed seed."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_hashes: np.ndarray) -> np.ndarray:
        """Signature (num_perm uint32) of a set of shingle hashes."""
        if shingle_hashes.size == 0:
            return np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        # uint64 arithmetic wraps mod 2**64, which is what multiply-shift hashing wants
        with np.errstate(over="ignore"):
            h = (shingle_hashes[:, None] * self.a[None, :] + self.b[None, :]) >> np.uint64(32)
        return (h & _MASK32).min(axis=0).astype(np.uint32)


@dataclass(frozen=True, slots=True)
class _Entry:
    text_hash: str
    exact_key: str
    bands: tuple[bytes, ...]
    signature: np.ndarray
    at: datetime


class Deduplicator:
    """Remembers recent texts; ``check`` returns the text_hash of the original a text duplicates.

    Only originals are remembered, so every copy points at the first text seen. Entries older
    than *window* (relative to the newest ``at`` seen) or beyond *max_entries* are forgotten.
    """

    def __init__(
        self,
        *,
        window: timedelta = timedelta(days=7),
        max_entries: int = 200_000,
        threshold: float = 0.8,
        num_perm: int = 128,
        bands: int = 32,
        min_near_chars: int = 40,
    ) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.window = window
        self.max_entries = max_entries
        self.threshold = threshold
        self.bands = bands
        self.rows = num_perm // bands
        self.min_near_chars = min_near_chars
        self._hasher = MinHasher(num_perm)
        self._entries: dict[str, _Entry] = {}
        self._exact: dict[str, str] = {}
        self._buckets: dict[bytes, list[str]] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = 0
        self._now: datetime | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, text_hash: str, text: str, at: datetime) -> str | None:
        """Return the text_hash of the remembered original *text* duplicates, else remember it
        and return None."""
        self._advance(at)
        normalised = normalise_for_dedup(text)
        exact_key = hashlib.sha256(normalised.encode("utf-8")).hexdigest()
        original = self._exact.get(exact_key)
        if original is not None:
            return original
        if text_hash in self._entries:
            return text_hash
        signature = self._hasher.signature(shingles(normalised))
        band_keys = tuple(
            i.to_bytes(2, "little") + signature[i * self.rows : (i + 1) * self.rows].tobytes()
            for i in range(self.bands)
        )
        if len(normalised) >= self.min_near_chars:
            best = self._best_candidate(signature, band_keys)
            if best is not None:
                return best
        self._remember(_Entry(text_hash, exact_key, band_keys, signature, at))
        return None

    def _best_candidate(self, signature: np.ndarray, band_keys: tuple[bytes, ...]) -> str | None:
        candidates: list[str] = []
        seen: set[str] = set()
        for key in band_keys:
            for h in self._buckets.get(key, ()):
                if h not in seen:
                    seen.add(h)
                    candidates.append(h)
        best, best_sim = None, self.threshold
        for h in candidates:  # in insertion order: ties go to the earliest original
            sim = float(np.mean(self._entries[h].signature == signature))
            if sim >= best_sim and (best is None or sim > best_sim):
                best, best_sim = h, sim
        return best

    def _remember(self, entry: _Entry) -> None:
        self._entries[entry.text_hash] = entry
        self._exact[entry.exact_key] = entry.text_hash
        for key in entry.bands:
            self._buckets.setdefault(key, []).append(entry.text_hash)
        heapq.heappush(self._heap, (entry.at, self._seq, entry.text_hash))
        self._seq += 1
        while len(self._entries) > self.max_entries:
            self._forget_oldest()

    def _advance(self, at: datetime) -> None:
        if self._now is None or at > self._now:
            self._now = at
        cutoff = self._now - self.window
        while self._heap and self._heap[0][0] < cutoff:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, _, h = heapq.heappop(self._heap)
        entry = self._entries.pop(h, None)
        if entry is None:
            return
        if self._exact.get(entry.exact_key) == h:
            del self._exact[entry.exact_key]
        for key in entry.bands:
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.remove(h)
                if not bucket:
                    del self._buckets[key]
