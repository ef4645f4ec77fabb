"""Where the sink puts a row: tables, Hive partition folders and file names (docs/read-model.md).

Paths here are relative to the lake's root and always use ``/``, for a folder and an object
store alike. A batch file's name is a function of its Kafka coordinates only, so writing the same
batch again replaces the same file; a compacted file's name is a function of the names it
replaces, so compacting the same files again replaces the same file too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

ITEMS = "items"
FRAMED_ITEMS = "framed_items"
AGGREGATES = "aggregates"
ALERTS = "alerts"
TABLES = (ITEMS, FRAMED_ITEMS, AGGREGATES, ALERTS)
KEYS = {ITEMS: "item_id", FRAMED_ITEMS: "key", AGGREGATES: "key", ALERTS: "key"}
ALL_WATCHES = "_all"  # the watch partition of raw items, which belong to no watch yet

BATCH_PREFIX = "b-"
COMPACT_PREFIX = "c-"
SUFFIX = ".parquet"
_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_BATCH_NAME = re.compile(r"^b-(\d+)-(\d+)-(\d+)\.parquet$")


def encode_watch(watch_id: str) -> str:
    """The watch id as a folder value: anything outside ``[A-Za-z0-9_.-]`` percent-encoded (UTF-8)."""
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in watch_id)


def folder(table: str, day: datetime, watch_id: str | None) -> str:
    """The partition folder of a row of *table* dated *day* (UTC) for *watch_id* (None: items)."""
    watch = ALL_WATCHES if watch_id is None else encode_watch(watch_id)
    return f"{table}/date={day.strftime('%Y-%m-%d')}/watch={watch}"


def batch_name(partition: int, first: int, last: int) -> str:
    """Name of the file of one batch's rows from one topic partition, offsets *first*..*last*."""
    return f"{BATCH_PREFIX}{partition:05d}-{first:020d}-{last:020d}{SUFFIX}"


def parse_batch_name(name: str) -> tuple[int, int, int] | None:
    """(partition, first, last) of a batch file's name, or None for another name."""
    match = _BATCH_NAME.match(name)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def compact_name(replaced: Iterable[str]) -> str:
    """Name of the file that replaces the files named *replaced* (order does not matter)."""
    digest = hashlib.sha256("\n".join(sorted(replaced)).encode("utf-8")).hexdigest()[:16]
    return f"{COMPACT_PREFIX}{digest}{SUFFIX}"


def is_data_file(name: str) -> bool:
    """Whether *name* is a file the sink wrote (batch or compacted), not a temp or a stranger."""
    return name.endswith(SUFFIX) and name.startswith((BATCH_PREFIX, COMPACT_PREFIX))


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file in the lake: its path relative to the root, and its size."""

    path: str
    size: int

    @property
    def folder(self) -> str:
        """The partition folder holding it."""
        return self.path.rpartition("/")[0]

    @property
    def name(self) -> str:
        """Its file name."""
        return self.path.rpartition("/")[2]
