"""The aggregator's state protocol: restore on rebalance, follow the other instances, remember
alerts already raised (in the spirit of quix-streams' ``state/recovery.py``).

The aggregator's only state is the map key -> contribution, kept in the compacted
``aggregate-state`` topic (see :mod:`~framewatch.processing.trends.counts`). Here:

* :class:`StateRestorer` (a rebalance listener) reloads the state of newly assigned framed-items
  partitions from that topic (with retention: the sealed days and the contributions they do not
  cover, see :mod:`~framewatch.processing.trends.retention`), and hands revoked ones over as
  foreign partials;
* :class:`PartialsTail` reads every instance's partial rows back (no group), so each instance's
  merged view, metrics and spike detection cover every partition;
* :func:`owner_partition` picks the one instance that evaluates a watch's spikes;
* :func:`restore_cooldowns` reads the alerts topic so a restart does not raise an alert again
  (each sensitivity's shift and drift detector from that level's own alerts).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Mapping

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from framewatch import contracts
from framewatch.contracts import AggregateRow, Alert
from framewatch.errors import DecodeError
from framewatch.kafka_io import Tail, ensure_topics, read_to_end
from framewatch.metrics import TrendMetrics
from framewatch.processing.changes.detector import DRIFT, SHIFT, ChangeDetector
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.retention import Horizons, Retention
from framewatch.processing.trends.spikes import SpikeDetector
from framewatch.settings import AGGREGATE_STATE, AGGREGATES, ALERTS, Settings

log = logging.getLogger(__name__)


def ensure_state_topic(settings: Settings) -> str:
    """Create the compacted state topic if needed; returns its full name."""
    name = settings.topic(AGGREGATE_STATE)
    ensure_topics(settings, [name], compacted=True)
    return name


class StateRestorer(ConsumerRebalanceListener):
    """Keeps the in-memory state equal to the state topic for the assigned partitions."""

    def __init__(
        self, settings: Settings, state: AggregateState, framed_topic: str, lock: threading.Lock | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.lock = lock or threading.Lock()
        self.retention = retention
        self.settings = settings
        self.state = state
        self.framed_topic = framed_topic
        self.ready = threading.Event()
        self.owned: set[int] = set()
        self._moved: set[str] = set()  # watches to evaluate again: their partitions changed hands

    def take_moved(self) -> set[str]:
        """Watches whose state or owner a rebalance changed since the last call (evaluate them:
        no batch of theirs may come again to trigger it). Call it holding ``self.lock``."""
        moved, self._moved = self._moved, set()
        return moved

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Hand partitions over: the new owner reloads them from the state topic; their counts
        stay here as foreign partials until the new owner publishes newer rows."""
        gone = {tp.partition for tp in revoked if tp.topic == self.framed_topic}
        with self.lock:
            self.owned -= gone
            self.state.demote_partitions(gone)
            if self.retention is not None:
                self.retention.forget(gone)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Load the contributions of newly assigned partitions from the state topic."""
        wanted = {tp.partition for tp in assigned if tp.topic == self.framed_topic} - self.state.partitions()
        if wanted:
            # without horizons nothing expires (the same reading, nothing sealed to find)
            retention = self.retention or Retention(Horizons({}, 0))
            loaded = retention.collect(read_to_end(self.settings, self.settings.topic(AGGREGATE_STATE)), wanted)
            with self.lock:
                self.state.drop_partitions(wanted)  # nothing half-known survives
                if self.retention is not None:
                    self.retention.forget(wanted)
                    n = self.retention.install(self.state, loaded)
                else:
                    n = self.state.load(loaded.contributions.values())
            log.info("restored %d contributions and %d sealed days of partitions %s (%d undecodable skipped)",
                     n, len(loaded.sealed), sorted(wanted), loaded.undecodable)
        with self.lock:
            self.owned |= {tp.partition for tp in assigned if tp.topic == self.framed_topic}
            self._moved |= set(self.state.frames)
        self.ready.set()


class PartialsTail:
    """Reads the partial rows every instance publishes (no group), for the merged view."""

    def __init__(self, settings: Settings) -> None:
        self._tail = Tail(settings, settings.topic(AGGREGATES), "framewatch-aggregate-tail")

    def poll(self) -> list[AggregateRow]:
        """Rows published since the last call (non-blocking); undecodable ones are skipped
        (the aggregator wrote them; a foreign writer's bytes are not ours to count)."""
        rows = []
        for value in self._tail.poll():
            try:
                rows.append(contracts.decode(AggregateRow, value))
            except DecodeError:
                continue
        return rows

    def close(self) -> None:
        """Close the consumer."""
        self._tail.close()


def owner_partition(watch_id: str, partitions: int) -> int:
    """The framed-items partition whose owner evaluates spikes of *watch_id* (one instance per watch)."""
    return zlib.crc32(watch_id.encode("utf-8")) % max(1, partitions)


def restore_cooldowns(settings: Settings, detector: SpikeDetector, metrics: TrendMetrics | None = None,
                      changes: Mapping[str, ChangeDetector] | None = None) -> int:
    """Remember the alerts already raised, so a restart does not raise them again; *changes*
    holds a detector per sensitivity, and each remembers its own level's shifts and drifts (a v2
    alert, without a level, was raised at the deployment's).

    Their alert counters (the deployment's level only, as the stage counts) start at 0 in this
    process, so ``increase()`` over a window that spans the restart still sees the series."""
    n = 0
    for _, value in read_to_end(settings, settings.topic(ALERTS)):
        try:
            alert = contracts.decode(Alert, value or b"")
        except DecodeError:
            continue
        level = alert.sensitivity or settings.alert_sensitivity
        if alert.kind in (SHIFT, DRIFT):
            if changes is not None and level in changes:
                changes[level].remember(alert.watch_id, alert.frame, int(alert.window_end.timestamp()),
                                        alert.share_after if alert.share_after is not None else alert.observed_share,
                                        int(alert.window_start.timestamp()))
        else:
            detector.remember(alert.watch_id, alert.frame, int(alert.window_start.timestamp()))
        if metrics is not None and level == settings.alert_sensitivity:
            metrics.alerts.labels(alert.watch_id, alert.frame, alert.rule, alert.kind)
        n += 1
    return n
