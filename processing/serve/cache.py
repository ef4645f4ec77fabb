"""Results kept while the files behind them are unchanged, so paging a long list rescans nothing.

An entry is keyed by the query and the signature of the files it read (path, size, mtime): a new
batch, a compaction or a back-fill changes the signature, so a stale answer is never served.
The cache holds at most ``max_rows`` rows in all, dropping the least recently used entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import polars as pl


class ResultCache:
    """Least-recently-used frames, bounded by their total row count."""

    def __init__(self, max_rows: int = 2_000_000) -> None:
        self.max_rows = max_rows
        self._entries: OrderedDict[Hashable, pl.DataFrame] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable | None, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """The cached frame of *key*, or *compute*'s (kept when it fits); None keys are never cached."""
        if key is None:
            return compute()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        frame = compute()
        if frame.height > self.max_rows:
            return frame
        with self._lock:
            if key not in self._entries:
                self._entries[key] = frame
                self._rows += frame.height
            while self._rows > self.max_rows and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._rows -= dropped.height
        return frame
