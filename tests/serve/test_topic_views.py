"""The API's view of a compacted topic on the real broker: each read sees every write acknowledged
before it (by this replica or another), tombstones delete, and a read costs only the records
written since the last one."""

from __future__ import annotations

from pathlib import Path

import pytest

from framewatch.processing.serve.topics import CompactedView, TopicWriter
from framewatch.settings import LABELS
from tests.serve.conftest import kafka_or_skip, serve_settings


def test_reads_are_incremental_and_see_every_acknowledged_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_or_skip()
    settings = serve_settings(tmp_path, tmp_path / "lake")
    one, other = TopicWriter(settings), TopicWriter(settings)  # two API replicas
    applied: list[bytes | None] = []
    real = CompactedView._apply
    monkeypatch.setattr(CompactedView, "_apply", lambda self, k, v: (applied.append(k), real(self, k, v))[1])
    try:
        assert other.read(LABELS) == {}  # a topic nobody wrote yet reads empty
        for i in range(3):
            one.put(LABELS, f"item{i}#0", {"frame": "trade", "n": i})
        assert {k: v["n"] for k, v in other.read(LABELS).items() if v} == {"item0#0": 0, "item1#0": 1, "item2#0": 2}
        assert len(applied) == 3
        one.put(LABELS, "item1#0", None)  # cleared
        one.put(LABELS, "item0#0", {"frame": "military", "n": 9})
        seen = other.read(LABELS)
        assert seen["item1#0"] is None and seen["item0#0"] == {"frame": "military", "n": 9}
        assert len(applied) == 5  # the second read took the two new records only
        seen["item2#0"] = None  # a caller's copy: the view is unchanged
        assert other.read(LABELS)["item2#0"] == {"frame": "trade", "n": 2} and len(applied) == 5
    finally:
        one.close()
        other.close()
