"""What the API writes: labels, subscriptions and codebook changes, each on a compacted topic.

Every write is produced and acknowledged (``flush``) before the API answers, so a 2xx means the
record is on the broker. Subscriptions are read back at start: the subscriptions file is the
starting state, the topic's records (latest per id; a tombstone deletes) are laid over it.
Reads go through a :class:`CompactedView` per topic: one open consumer brought up to the topic's
end on each read, so a request costs the records written since the last one, not the whole
topic, and still sees every write acknowledged before it (by any replica).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from framewatch.errors import FramewatchError
from framewatch.kafka_io import Tail, ensure_topics, make_producer
from framewatch.settings import CODEBOOK_CHANGES, LABELS, SUBSCRIPTIONS, Settings

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 15.0


class BrokerUnavailable(FramewatchError):
    """A write could not reach Kafka (the API answers 503)."""


def label_key(item_key: str, segment_index: int) -> str:
    """Key of a segment's label on the labels topic."""
    return f"{item_key}#{segment_index}"


class TopicWriter:
    """One idempotent producer for the API's compacted topics, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._ensured: set[str] = set()
        self._views: dict[str, CompactedView] = {}

    def topic(self, name: str) -> str:
        """Full name of a logical topic."""
        return self.settings.topic(name)

    def _ready(self, topic: str) -> KafkaProducer:
        with self._lock:
            if topic not in self._ensured:
                ensure_topics(self.settings, [topic], compacted=True)
                self._ensured.add(topic)
            if self._producer is None:
                self._producer = make_producer(self.settings, client_id="framewatch-serve")
            return self._producer

    def put(self, name: str, key: str, value: dict[str, Any] | None) -> None:
        """Produce *value* (None: a tombstone) under *key* and wait for the broker's ack."""
        topic = self.topic(name)
        try:
            producer = self._ready(topic)
            body = None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
            producer.send(topic, key=key.encode("utf-8"), value=body).get(timeout=SEND_TIMEOUT_S)
        except (KafkaError, FramewatchError, OSError) as exc:
            log.warning("write to %s failed: %s", topic, type(exc).__name__)
            raise BrokerUnavailable(f"Kafka did not take the write to {topic}: {type(exc).__name__}") from exc

    def read(self, name: str) -> dict[str, dict[str, Any] | None]:
        """Latest value per key of a topic (None: deleted), read to its current end."""
        topic = self.topic(name)
        with self._lock:
            view = self._views.get(topic)
            if view is None:
                view = self._views[topic] = CompactedView(self.settings, topic)
        return view.read()

    def close(self) -> None:
        """Flush and close the producer and the views."""
        if self._producer is not None:
            self._producer.close(timeout=5)
        for view in self._views.values():
            view.close()


class CompactedView:
    """The latest value per key of one compacted topic (None: a tombstone), kept by one open
    group-less consumer that each read brings up to the end offsets the topic has at that moment."""

    def __init__(self, settings: Settings, topic: str, timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.settings, self.topic, self.timeout_s = settings, topic, timeout_s
        self.latest: dict[str, dict[str, Any] | None] = {}
        self._tail: Tail | None = None
        self._lock = threading.Lock()  # a consumer is not thread-safe; requests run in threads

    def read(self) -> dict[str, dict[str, Any] | None]:
        """A copy of the latest values, with every record written before the call."""
        with self._lock:
            try:
                self._catch_up()
            except (KafkaError, FramewatchError, OSError) as exc:
                self.close_unlocked()  # start again from the beginning next time
                raise BrokerUnavailable(f"cannot read {self.topic}: {type(exc).__name__}") from exc
            return dict(self.latest)

    def _catch_up(self) -> None:
        if self._tail is None:
            ensure_topics(self.settings, [self.topic], compacted=True)
            self._tail, self.latest = Tail(self.settings, self.topic, "framewatch-serve-view"), {}
        tail = self._tail
        if not tail.assigned:
            tail.poll_keyed(0)  # assigns once the topic's metadata is there
            if not tail.assigned:
                raise FramewatchError(f"{self.topic} has no partitions yet")
        tps = list(tail.consumer.assignment())
        end = tail.consumer.end_offsets(tps)
        deadline = time.monotonic() + self.timeout_s
        while any(tail.consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise FramewatchError(f"{self.topic} not read to its end in {self.timeout_s:.0f} s")
            for records in tail.consumer.poll(timeout_ms=200).values():
                for rec in records:
                    self._apply(rec.key, rec.value)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            self.latest[key.decode("utf-8")] = None if value is None else json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("skipped an unreadable record on %s", self.topic)

    def close_unlocked(self) -> None:
        """Close the consumer (the next read starts from the beginning)."""
        if self._tail is not None:
            tail, self._tail = self._tail, None
            try:
                tail.close()
            except Exception:  # closing a broken consumer must not hide why it broke
                log.debug("closing the view of %s failed", self.topic, exc_info=True)

    def close(self) -> None:
        """Close the consumer."""
        with self._lock:
            self.close_unlocked()


TOPICS = (LABELS, SUBSCRIPTIONS, CODEBOOK_CHANGES)
