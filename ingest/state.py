"""Ingest state in SQLite, one file per shard: feed validators and schedule, produced item ids,
and XenForo thread cursors.

The produced-id set is what makes a restart safe: an entry is marked produced only after the
broker acknowledged it, so a crash can at worst produce it once more (at-least-once, and
downstream keys are deterministic), never lose it. Ids older than the retention are pruned; feeds
rarely re-serve entries that old. WAL mode lets a reader (``sqlite3``, a dashboard) look in while
the worker writes; every cycle's changes go in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PRODUCED_RETENTION = timedelta(days=30)
_IN_CHUNK = 500  # host-parameter limit of SQLite is far above this; keeps statements small

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    source_id     TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    next_poll_at  REAL NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_success  REAL,
    last_outcome  TEXT
);
CREATE TABLE IF NOT EXISTS produced (
    item_id     TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL,
    produced_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS produced_at_idx ON produced (produced_at);
CREATE TABLE IF NOT EXISTS threads (
    source_id    TEXT NOT NULL,
    thread_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    last_page    INTEGER NOT NULL DEFAULT 0,
    last_post_id TEXT,
    last_post_at REAL,
    has_more     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source_id, thread_id)
);
"""


@dataclass(frozen=True, slots=True)
class FeedState:
    """What is remembered about one feed between polls."""

    source_id: str
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    failures: int = 0
    last_success: datetime | None = None
    last_outcome: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadCursor:
    """How far one followed XenForo thread has been read (page 0: not read yet)."""

    source_id: str
    thread_id: str
    url: str
    last_page: int = 0
    last_post_id: str | None = None
    last_post_at: datetime | None = None
    has_more: bool = False


def shard_path(state_dir: Path, shard_index: int, shard_count: int) -> Path:
    """The state file of one shard (shards never share a file)."""
    return Path(state_dir) / f"ingest-shard-{shard_index}-of-{shard_count}.sqlite3"


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


class IngestState:
    """The SQLite state of one ingest shard; use from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # explicit BEGIN/COMMIT; opened in one thread, may be used by the worker thread after it
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_shard(cls, state_dir: Path, shard_index: int, shard_count: int) -> IngestState:
        """Open (creating if needed) the state file of one shard."""
        return cls(shard_path(state_dir, shard_index, shard_count))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- feeds ----------------------------------------------------------------------------------

    def feeds(self) -> dict[str, FeedState]:
        """Every feed's state, by source id."""
        rows = self._db.execute(
            "SELECT source_id, etag, last_modified, next_poll_at, failures, last_success, last_outcome FROM feeds"
        )
        return {
            r[0]: FeedState(r[0], r[1], r[2], _dt(r[3]), r[4], _dt(r[5]), r[6]) for r in rows
        }

    def feed(self, source_id: str) -> FeedState:
        """One feed's state (a blank one for a feed never polled)."""
        row = self._db.execute(
            "SELECT source_id, etag, last_modified, next_poll_at, failures, last_success, last_outcome"
            " FROM feeds WHERE source_id = ?", (source_id,),
        ).fetchone()
        if row is None:
            return FeedState(source_id)
        return FeedState(row[0], row[1], row[2], _dt(row[3]), row[4], _dt(row[5]), row[6])

    def save_feed(self, state: FeedState) -> None:
        """Insert or replace one feed's state."""
        self._db.execute(
            "INSERT OR REPLACE INTO feeds VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                state.source_id, state.etag, state.last_modified, _ts(state.next_poll_at) or 0.0,
                state.failures, _ts(state.last_success), state.last_outcome,
            ),
        )

    # --- produced ids ---------------------------------------------------------------------------

    def already_produced(self, item_ids: Iterable[str]) -> set[str]:
        """The subset of *item_ids* produced (and acknowledged) before."""
        ids = list(dict.fromkeys(item_ids))
        found: set[str] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT item_id FROM produced WHERE item_id IN ({marks})", chunk)  # noqa: S608
            found.update(r[0] for r in rows)
        return found

    def mark_produced(self, source_id: str, item_ids: Iterable[str], at: datetime) -> None:
        """Remember *item_ids* as acknowledged by the broker."""
        stamp = at.timestamp()
        self._db.executemany(
            "INSERT OR REPLACE INTO produced VALUES (?, ?, ?)",
            ((item_id, source_id, stamp) for item_id in item_ids),
        )

    def produced_count(self, source_id: str | None = None) -> int:
        """How many produced ids are remembered (for one source, or all)."""
        if source_id is None:
            return int(self._db.execute("SELECT COUNT(*) FROM produced").fetchone()[0])
        row = self._db.execute("SELECT COUNT(*) FROM produced WHERE source_id = ?", (source_id,))
        return int(row.fetchone()[0])

    def prune_produced(self, now: datetime, retention: timedelta = PRODUCED_RETENTION) -> int:
        """Forget produced ids older than *retention*; returns how many were dropped."""
        cur = self._db.execute("DELETE FROM produced WHERE produced_at < ?", ((now - retention).timestamp(),))
        return cur.rowcount

    # --- thread cursors -------------------------------------------------------------------------

    def thread(self, source_id: str, thread_id: str) -> ThreadCursor | None:
        """The cursor of one followed thread, or None when it was never read."""
        row = self._db.execute(
            "SELECT source_id, thread_id, url, last_page, last_post_id, last_post_at, has_more"
            " FROM threads WHERE source_id = ? AND thread_id = ?",
            (source_id, thread_id),
        ).fetchone()
        return _cursor(row) if row else None

    def threads_with_more(self, source_id: str) -> list[ThreadCursor]:
        """Threads of a feed whose reading stopped at the per-cycle page budget."""
        rows = self._db.execute(
            "SELECT source_id, thread_id, url, last_page, last_post_id, last_post_at, has_more"
            " FROM threads WHERE source_id = ? AND has_more = 1 ORDER BY thread_id",
            (source_id,),
        )
        return [_cursor(r) for r in rows]

    def save_thread(self, cursor: ThreadCursor) -> None:
        """Insert or replace one thread cursor."""
        self._db.execute(
            "INSERT OR REPLACE INTO threads VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                cursor.source_id, cursor.thread_id, cursor.url, cursor.last_page,
                cursor.last_post_id, _ts(cursor.last_post_at), int(cursor.has_more),
            ),
        )


def _cursor(row: tuple[object, ...]) -> ThreadCursor:
    source_id, thread_id, url, last_page, last_post_id, last_post_at, has_more = row
    return ThreadCursor(
        str(source_id), str(thread_id), str(url), int(last_page),  # type: ignore[call-overload]
        last_post_id if last_post_id is None else str(last_post_id),
        _dt(last_post_at),  # type: ignore[arg-type]
        bool(has_more),
    )
