"""Remembered segment decisions: what each (watch, segment text) got, and which item first got it.

The frame stage looks here before embedding: a re-delivered item finds its own decisions (same
record again, never a duplicate of itself) and a copy finds its original's. The memory is a
bounded LRU kept on disk as an append-only JSON-lines journal: each batch appends only its new
decisions (cheap, fsynced before the batch is produced) and the journal is compacted once it
holds twice the entries kept.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Decision:
    """What one segment got for one watch, remembered under (watch, text_hash)."""

    origin: str  # "<item_id>#<segment index>" that first made this decision
    frame: str | None
    score: float
    margin: float
    labels: tuple[str, ...]
    top: tuple[tuple[str, float], ...]
    nearest_examples: tuple[str, ...]
    cluster: str | None


class SegmentMemory:
    """Bounded LRU of segment decisions keyed by (watch, text_hash), journalled to disk."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Decision] = OrderedDict()
        self._unsaved: list[str] = []
        self._journal_lines = 0

    @staticmethod
    def key(watch_id: str, text_hash: str) -> str:
        """Memory key of one (watch, segment text)."""
        return f"{watch_id}\x1f{text_hash}"

    def get(self, watch_id: str, text_hash: str) -> Decision | None:
        """The remembered decision, if any (refreshes its place in the LRU)."""
        key = self.key(watch_id, text_hash)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, watch_id: str, text_hash: str, decision: Decision) -> None:
        """Remember a decision (oldest entries beyond ``max_entries`` are forgotten)."""
        key = self.key(watch_id, text_hash)
        self._entries[key] = decision
        self._unsaved.append(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def save(self, path: Path) -> None:
        """Append new decisions to the journal (fsynced); compact it when it grew too long."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._journal_lines + len(self._unsaved) > 2 * self.max_entries or not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(_line(k, d) for k, d in self._entries.items())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._journal_lines = len(self._entries)
        elif self._unsaved:
            with open(path, "a", encoding="utf-8") as f:
                rows = [_line(k, self._entries[k]) for k in dict.fromkeys(self._unsaved) if k in self._entries]
                f.writelines(rows)
                f.flush()
                os.fsync(f.fileno())
            self._journal_lines += len(rows)
        self._unsaved.clear()

    def load(self, path: Path) -> None:
        """Replay the journal (later lines win; a torn last line from a crash is ignored)."""
        if not path.exists():
            return
        torn = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    key, d = json.loads(line)
                except ValueError:
                    continue
                finally:
                    torn = not line.endswith("\n")
                self._entries[key] = Decision(
                    origin=d["origin"], frame=d["frame"], score=d["score"], margin=d["margin"],
                    labels=tuple(d["labels"]), top=tuple((fr, sc) for fr, sc in d["top"]),
                    nearest_examples=tuple(d["nearest_examples"]), cluster=d["cluster"],
                )
                self._entries.move_to_end(key)
                self._journal_lines += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if torn:  # appending after a torn line would spoil the next one: rewrite on next save
            self._journal_lines = 2 * self.max_entries + 1


def _line(key: str, decision: Decision) -> str:
    return json.dumps([key, asdict(decision)], ensure_ascii=False, separators=(",", ":")) + "\n"
