"""The sink's stage: one flush window of messages in, Parquet files written, dead letters out.

The stage writes everything it is handed before it returns, and ``run_stage`` commits the
batch's offsets only after it returned (and the dead letters were acknowledged): a file is
durable before the offsets of its rows are committed, and a crash in between means the batch is
read and written again, under the same names (docs/read-model.md).

Rows are grouped by table, partition folder and Kafka partition; each group becomes one file
named by its partition and first and last offsets. Records that do not decode are failures with
their reason (the loop dead-letters and counts them); tombstones and empty values are skipped.
"""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from framewatch.errors import DecodeError
from framewatch.kafka_io import Failure, Message, StageOutput
from framewatch.metrics import SinkMetrics
from framewatch.processing.sink.layout import batch_name
from framewatch.processing.sink.rows import DECODERS, Decoder, Row, frame_of
from framewatch.processing.sink.storage import Storage
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = "unknown_topic"
WRITERS = 4  # files built and stored at once


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one call wrote: files, rows, and what it skipped or refused."""

    files: int
    rows: int
    tombstones: int
    failures: int
    seconds: float


def to_parquet(rows: pl.DataFrame) -> bytes:
    """One file's bytes: zstd, with statistics for readers' pruning."""
    buf = io.BytesIO()
    rows.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def files_of(groups: Mapping[tuple[str, str, int], list[Row]]) -> list[tuple[str, pl.DataFrame]]:
    """(path, rows) of each file: one frame per table, built at once (cheaper than one per
    file), sliced into the files' rows, each file's in offset order."""
    by_table: dict[str, list[tuple[str, list[Row]]]] = defaultdict(list)
    for (table, folder, partition), rows in sorted(groups.items()):
        rows.sort(key=_offset)
        by_table[table].append((f"{folder}/{batch_name(partition, rows[0]['_offset'], rows[-1]['_offset'])}", rows))
    files = []
    for table, parts in by_table.items():
        whole = frame_of(table, [row for _, rows in parts for row in rows])
        start = 0
        for path, rows in parts:
            files.append((path, whole.slice(start, len(rows))))
            start += len(rows)
    return files


class SinkStage:
    """Callable stage writing each batch to *storage*; *topics* maps full topic names to logical ones."""

    def __init__(self, storage: Storage, topics: Mapping[str, str], *, clock: Callable[[], datetime] = utcnow,
                 metrics: SinkMetrics | None = None) -> None:
        self.storage = storage
        self.metrics = metrics
        self.decoders: dict[str, tuple[str, Decoder]] = {full: DECODERS[logical] for full, logical in topics.items()}
        self.clock = clock
        self.last: FlushReport | None = None
        self.pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="sink-writer")

    def __call__(self, batch: Sequence[Message]) -> StageOutput:
        """Write the batch's rows, one file per (table, folder, partition)."""
        started = time.perf_counter()
        written_at = self.clock()
        groups: dict[tuple[str, str, int], list[Row]] = defaultdict(list)
        failures: list[Failure] = []
        seen: set[tuple[str, int, int]] = set()
        tombstones = 0
        for msg in batch:
            ctx = msg.ctx
            if (ctx.topic, ctx.partition, ctx.offset) in seen:
                continue  # read twice in one window (the partition came back after a rebalance)
            seen.add((ctx.topic, ctx.partition, ctx.offset))
            if not msg.value:
                tombstones += 1
                continue
            target = self.decoders.get(ctx.topic)
            if target is None:
                failures.append(Failure(ctx, UNKNOWN_TOPIC, f"the sink does not store topic {ctx.topic}", msg.value))
                continue
            table, decode = target
            try:
                folder, row = decode(msg.value)
            except DecodeError as exc:
                failures.append(Failure(ctx, exc.reason, exc.detail, msg.value))
                continue
            row["_partition"], row["_offset"], row["_written_at"] = ctx.partition, ctx.offset, written_at
            groups[(table, folder, ctx.partition)].append(row)
        # files are independent: build and store them side by side (polars, fsync and the
        # network release the GIL); the first error fails the call, before any commit
        sizes = list(self.pool.map(self._write, files_of(groups)))
        rows = sum(len(g) for g in groups.values())
        self.last = FlushReport(len(groups), rows, tombstones, len(failures), time.perf_counter() - started)
        if self.metrics is not None and groups:
            self._observe(groups, sizes)
        if batch:
            log.info("sink: wrote %d files, %d rows in %.2f s (%d tombstones skipped, %d refused)",
                     len(groups), rows, self.last.seconds, tombstones, len(failures))
        return StageOutput(failures=failures)

    def close(self) -> None:
        """Stop the writer threads."""
        self.pool.shutdown(wait=True)

    def _write(self, file: tuple[str, pl.DataFrame]) -> tuple[str, int]:
        path, rows = file
        body = to_parquet(rows)
        self.storage.put(path, body)
        return path.split("/", 1)[0], len(body)

    def _observe(self, groups: Mapping[tuple[str, str, int], list[Row]], sizes: list[tuple[str, int]]) -> None:
        assert self.metrics is not None and self.last is not None
        for (table, _, _), rows in groups.items():
            self.metrics.rows.labels(table).inc(len(rows))
            self.metrics.files.labels(table).inc()
        for table, size in sizes:
            self.metrics.bytes.labels(table).inc(size)
        self.metrics.flush_seconds.observe(self.last.seconds)
        self.metrics.last_flush.set_to_current_time()


def _offset(row: Row) -> int:
    return int(row["_offset"])
