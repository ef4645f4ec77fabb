"""What the API writes: labels, subscriptions and codebook changes, each on a compacted topic.

Every write is produced and acknowledged (``flush``) before the API answers, so a 2xx means the
record is on the broker. Subscriptions are read back at start: the subscriptions file is the
starting state, the topic's records (latest per id; a tombstone deletes) are laid over it.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from framewatch.errors import FramewatchError
from framewatch.kafka_io import ensure_topics, make_producer, read_to_end
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
        latest: dict[str, dict[str, Any] | None] = {}
        try:
            ensure_topics(self.settings, [topic], compacted=True)
            for key, value in read_to_end(self.settings, topic):
                if key is None:
                    continue
                try:
                    latest[key.decode("utf-8")] = None if value is None else json.loads(value)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    log.warning("skipped an unreadable record on %s", topic)
        except (KafkaError, FramewatchError, OSError) as exc:
            raise BrokerUnavailable(f"cannot read {topic}: {type(exc).__name__}") from exc
        return latest

    def close(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            self._producer.close(timeout=5)


TOPICS = (LABELS, SUBSCRIPTIONS, CODEBOOK_CHANGES)
