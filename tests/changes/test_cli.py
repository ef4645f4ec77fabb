"""``framewatch shifts`` over a lake the sink's own stage wrote: a planted step replayed as one
shift alert with its change point; another watch, or a window before the step, stays quiet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from framewatch import contracts
from framewatch.contracts import ANY, AggregateRow, MessageContext
from framewatch.kafka_io import Message
from framewatch.processing.changes.cli import shifts
from framewatch.processing.sink.stage import SinkStage
from framewatch.processing.sink.storage import LocalStorage
from tests.changes.streams import FRAME, T0_S, five_minute_counts, step_lift

HOURS = 10 * 24
STEP_START = (9 * 24 + 10) * 12 + 1  # day 9, 10:05 UTC
TOPIC = "p.aggregates"


def aggregate_rows(counts: np.ndarray, totals: np.ndarray, watch: str) -> list[AggregateRow]:
    """The aggregator's partial rows (one partition) of these 5 min counts, hours and 5 min buckets."""
    rows = []
    for gran, size in (("5m", 1), ("1h", 12)):
        for frame, values in ((FRAME, counts), (ANY, totals)):
            summed = values.reshape(-1, size).sum(axis=1)
            for i, n in enumerate(summed.tolist()):
                if n:
                    at = datetime.fromtimestamp(T0_S + i * 300 * size, UTC)
                    rows.append(AggregateRow(watch, frame, gran, at, ANY, 0, int(n), int(n)))
    return rows


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    rng = np.random.default_rng(4)
    counts, totals = five_minute_counts(rng, HOURS, 100, 0.3, step_lift(HOURS, STEP_START, 12 * 12, 0.5))
    rows = aggregate_rows(counts, totals, "w1")
    flat_c, flat_t = five_minute_counts(rng, HOURS, 100, 0.3)
    rows += aggregate_rows(flat_c, flat_t, "w2")
    stage = SinkStage(LocalStorage(root), {TOPIC: "aggregates"})
    try:
        for start in range(0, len(rows), 5000):
            batch = [Message(MessageContext(TOPIC, 0, start + i, b"k"), contracts.encode(r))
                     for i, r in enumerate(rows[start:start + 5000])]
            assert stage(batch).failures == []
    finally:
        stage.close()
    return root


def run(lake: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> list[str]:
    monkeypatch.setenv("FRAMEWATCH_SINK_URL", str(lake))
    result = CliRunner().invoke(shifts, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


def test_a_planted_step_replays_as_one_shift(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = run(lake, monkeypatch, "--from", "2026-01-10T00:00:00", "--to", "2026-01-11T00:00:00")
    alerts = [line for line in lines[:-1] if line.startswith("shift")]
    assert len(alerts) == 1, lines
    assert "w1 / trust" in alerts[0]
    since = datetime.strptime(alerts[0].split("since ")[1][:16], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(since.timestamp() - (T0_S + STEP_START * 300)) <= 3600
    assert lines[-1].startswith(f"{len(lines) - 1} alerts (medium sensitivity")
    assert not any("w2" in line for line in lines[:-1])


def test_a_watch_filter_and_a_quiet_window(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(lake, monkeypatch, "--from", "2026-01-10T00:00:00", "--to", "2026-01-11T00:00:00", "--watch", "w2")[:-1] == []
    before = run(lake, monkeypatch, "--from", "2026-01-09T00:00:00", "--to", "2026-01-10T09:00:00", "--sensitivity", "low")
    assert before[:-1] == [] and "low sensitivity" in before[-1]


def test_to_before_from_is_a_clear_error(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEWATCH_SINK_URL", str(lake))
    result = CliRunner().invoke(shifts, ["--from", "2026-01-10", "--to", "2026-01-09"])
    assert result.exit_code != 0 and "--to must be after --from" in result.output
