"""Background compaction: a partition folder's many small files merged into one ``c-`` file.

A folder qualifies once it holds ``min_files`` small data files (batch files, and compacted
files still under ``SMALL_BYTES``). Their rows are read, the last row per key kept (by
``(_partition, _offset)``, the readers' rule), written as ``c-<digest of the names>.parquet``,
and only then the originals deleted. Safe against a crash at any point:

- before the new file is stored: nothing changed (a local temp file is cleaned on start);
- after it is stored, before or during the deletes: both the new file and (some of) the
  originals exist. Readers keep the last row per key, and the rows are the same, so a reader
  sees each key once either way; the next round merges the leftovers with the new file.

A row dropped here is one a later row of the same key supersedes, so the readers' answer never
changes. Every file is deleted only by a round that stored a superset of its rows first, so two
compactors (two sink instances on one store) are safe too. Failures are logged and the folder
tried again next round: compaction never stops the sink.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from framewatch.metrics import SinkMetrics
from framewatch.processing.sink.layout import KEYS, TABLES, StoredFile, compact_name, is_data_file
from framewatch.processing.sink.storage import Storage

log = logging.getLogger(__name__)

MIN_FILES = 8  # small files in a folder before it is compacted
SMALL_BYTES = 64 * 1024 * 1024  # a compacted file past this is left alone (no ever-growing rewrites)
EVERY_S = 60.0  # time between compaction rounds


@dataclass(frozen=True, slots=True)
class Compacted:
    """One folder's compaction: the new file, how many it replaced, rows kept."""

    path: str
    replaced: int
    rows: int


def small_files_by_folder(files: Iterable[StoredFile], min_files: int) -> dict[str, list[StoredFile]]:
    """The folders with at least *min_files* small data files, and those files."""
    folders: dict[str, list[StoredFile]] = defaultdict(list)
    for f in files:
        if is_data_file(f.name) and (f.name.startswith("b-") or f.size < SMALL_BYTES):
            folders[f.folder].append(f)
    return {folder: sorted(fs, key=lambda f: f.name) for folder, fs in folders.items() if len(fs) >= min_files}


def merge(storage: Storage, table: str, files: list[StoredFile]) -> pl.DataFrame:
    """The rows of *files*, the last per key, in (_partition, _offset) order."""
    frames = [pl.read_parquet(io.BytesIO(storage.get(f.path))) for f in files]
    rows = pl.concat(frames, how="diagonal_relaxed").sort(["_partition", "_offset"])
    return rows.unique(subset=[KEYS[table]], keep="last", maintain_order=True)


def compact_folder(storage: Storage, table: str, files: list[StoredFile]) -> Compacted:
    """Merge *files* (one folder's) into one, stored before any of them is deleted."""
    folder = files[0].folder
    merged = merge(storage, table, files)
    path = f"{folder}/{compact_name(f.name for f in files)}"
    buf = io.BytesIO()
    merged.write_parquet(buf, compression="zstd", statistics=True)
    storage.put(path, buf.getvalue())
    for f in files:
        if f.path != path:
            storage.delete(f.path)
    return Compacted(path, len(files), merged.height)


def compact_once(storage: Storage, min_files: int = MIN_FILES, metrics: SinkMetrics | None = None) -> list[Compacted]:
    """One round over every table; a folder that fails is logged and left for the next round."""
    done = []
    for table in TABLES:
        for folder, files in sorted(small_files_by_folder(storage.list(table), min_files).items()):
            try:
                result = compact_folder(storage, table, files)
            except Exception:
                log.exception("compaction of %s failed; trying again next round", folder)
                if metrics is not None:
                    metrics.compactions.labels("failed").inc()
                continue
            log.info("compacted %d files of %s into %s (%d rows)", result.replaced, folder, result.path, result.rows)
            if metrics is not None:
                metrics.compactions.labels("ok").inc()
                metrics.compacted_files.inc(result.replaced)
            done.append(result)
    return done


class Compactor:
    """Runs :func:`compact_once` every *every_s* seconds in a daemon thread until stopped."""

    def __init__(self, storage: Storage, *, every_s: float = EVERY_S, min_files: int = MIN_FILES,
                 metrics: SinkMetrics | None = None) -> None:
        self.storage = storage
        self.metrics = metrics
        self.every_s = every_s
        self.min_files = min_files
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sink-compactor", daemon=True)

    def start(self) -> Compactor:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the folder in hand (a half-done round is safe, see the module docstring)."""
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                compact_once(self.storage, self.min_files, self.metrics)
            except Exception:  # listing failed (store away): the next round tries again
                log.exception("compaction round failed")
            self.rounds += 1
