"""SQLite ingest state: feeds, produced ids (bounded by age), thread cursors, transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from framewatch.ingest.state import FeedState, IngestState, ThreadCursor, shard_path

NOW = datetime(2025, 11, 19, 8, 0, tzinfo=UTC)


@pytest.fixture
def state(tmp_path: Path):
    st = IngestState.for_shard(tmp_path / "state", 0, 2)
    yield st
    st.close()


def test_one_file_per_shard_in_wal_mode(tmp_path: Path, state: IngestState) -> None:
    assert state.path == shard_path(tmp_path / "state", 0, 2)
    assert shard_path(tmp_path, 0, 2) != shard_path(tmp_path, 1, 2)
    assert state.path.exists()
    mode = sqlite3.connect(state.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_feed_state_round_trip_and_survives_reopen(state: IngestState) -> None:
    assert state.feed("a") == FeedState("a")
    saved = FeedState("a", '"e1"', "Wed, 19 Nov 2025 08:00:00 GMT", NOW + timedelta(minutes=15), 2, NOW, "timeout")
    with state.transaction():
        state.save_feed(saved)
    assert state.feed("a") == saved
    reopened = IngestState(state.path)
    assert reopened.feeds() == {"a": saved}
    reopened.close()


def test_produced_ids(state: IngestState) -> None:
    with state.transaction():
        state.mark_produced("a", ["i1", "i2"], NOW)
    assert state.already_produced(["i1", "i3", "i2", "i1"]) == {"i1", "i2"}
    assert state.already_produced([]) == set()
    assert state.produced_count() == 2 and state.produced_count("a") == 2 and state.produced_count("b") == 0


def test_many_ids_are_looked_up_in_chunks(state: IngestState) -> None:
    ids = [f"id{i}" for i in range(2_500)]
    with state.transaction():
        state.mark_produced("a", ids[::2], NOW)
    assert state.already_produced(ids) == set(ids[::2])


def test_produced_ids_are_bounded_by_age(state: IngestState) -> None:
    with state.transaction():
        state.mark_produced("a", ["old"], NOW - timedelta(days=31))
        state.mark_produced("a", ["new"], NOW - timedelta(days=29))
    assert state.prune_produced(NOW) == 1
    assert state.already_produced(["old", "new"]) == {"new"}


def test_transaction_rolls_back_on_error(state: IngestState) -> None:
    with pytest.raises(RuntimeError), state.transaction():
        state.mark_produced("a", ["x"], NOW)
        state.save_feed(FeedState("a", failures=1))
        raise RuntimeError("crash before commit")
    assert state.already_produced(["x"]) == set()
    assert state.feeds() == {}


def test_thread_cursors(state: IngestState) -> None:
    assert state.thread("forum", "42") is None
    cur = ThreadCursor("forum", "42", "https://f.example/threads/t.42/", 3, "p9", NOW, True)
    other = ThreadCursor("forum", "43", "https://f.example/threads/u.43/", 1, "p1", None, False)
    with state.transaction():
        state.save_thread(cur)
        state.save_thread(other)
    assert state.thread("forum", "42") == cur
    assert state.threads_with_more("forum") == [cur]
    assert state.threads_with_more("elsewhere") == []
