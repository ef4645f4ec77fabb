"""Reading a topic to its end with each record's coordinates: no group, nothing committed.

The dead-letter tools need what ``kafka_io.read_to_end`` drops (partition and offset are a dead
letter's id), a single record by id, and a read that gives up when the broker stops answering
instead of waiting forever.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from framewatch import contracts
from framewatch.contracts import DeadLetter
from framewatch.dead_letters.selection import MissingTopicError, UnknownIdError, format_id
from framewatch.errors import DecodeError
from framewatch.settings import Settings

Progress = Callable[[int, int], None]  # (records read, records to read)


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a topic with where it lies."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the dead-letters topic: its id and digest, and the dead letter, or why the
    record is none (``problem``)."""

    partition: int
    offset: int
    digest: str  # of the record's bytes: a recreated topic reuses ids, never digests
    letter: DeadLetter | None
    problem: str | None = None

    @property
    def id(self) -> str:
        """``PARTITION:OFFSET`` in the dead-letters topic."""
        return format_id(self.partition, self.offset)


def digest_of(value: bytes) -> str:
    """Short fingerprint of a record's bytes."""
    return hashlib.sha256(value).hexdigest()[:24]


def to_entry(record: Record) -> Entry:
    """The dead letter in *record*, or an entry naming why it is not one."""
    try:
        letter: DeadLetter | None = contracts.decode(DeadLetter, record.value)
        problem = None
    except DecodeError as exc:
        letter, problem = None, f"not a dead letter ({exc.reason}: {exc.detail})"
    return Entry(record.partition, record.offset, digest_of(record.value), letter, problem)


class TopicReader:
    """A group-less consumer that reads whole topics, or one record, and commits nothing."""

    def __init__(self, settings: Settings, client_id: str = "framewatch-dead-letters", stall_s: float = 30.0) -> None:
        self.consumer = KafkaConsumer(
            **settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
            client_id=client_id, allow_auto_create_topics=False,  # reading must not create a topic
        )
        self.stall_s = stall_s

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()

    def topics(self) -> set[str]:
        """Every topic the broker shows this client (asked afresh, not from a cache)."""
        return set(self.consumer.topics())

    def exists(self, topic: str) -> bool:
        """Whether the broker knows *topic*."""
        return topic in self.topics()

    def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of *topic*; MissingTopicError when there is no such topic."""
        if not self.exists(topic):
            raise MissingTopicError(f"topic {topic!r} does not exist")
        return [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition."""
        tps = self.partitions(topic)
        return {tp.partition: off for tp, off in self.consumer.end_offsets(tps).items()}

    def records(self, topic: str, start: dict[int, int] | None = None, progress: Progress | None = None) -> Iterator[Record]:
        """Every record of *topic* from *start* (default: the beginning) to the end offsets at the
        call; KafkaTimeoutError when nothing arrives for ``stall_s`` while records are due."""
        tps = self.partitions(topic)
        first = self.consumer.beginning_offsets(tps)
        end = self.consumer.end_offsets(tps)
        begin = {tp: max(first[tp], (start or {}).get(tp.partition, 0)) for tp in tps}
        pending = {tp for tp in tps if begin[tp] < end[tp]}
        total, done = sum(end[tp] - begin[tp] for tp in pending), 0
        if not pending:
            return
        self.consumer.assign(sorted(pending, key=lambda tp: tp.partition))
        for tp in pending:
            self.consumer.seek(tp, begin[tp])
        last_progress = time.monotonic()
        while pending:
            polled = self.consumer.poll(timeout_ms=500)
            for tp, batch in polled.items():
                for rec in batch:
                    if rec.offset < end[tp]:
                        done += 1
                        yield _record(tp.partition, rec)
            if polled:
                last_progress = time.monotonic()
                if progress is not None:
                    progress(done, total)
            elif time.monotonic() - last_progress > self.stall_s:
                raise KafkaTimeoutError(f"reading {topic}: nothing arrived for {self.stall_s:.0f} s")
            pending = {tp for tp in pending if self.consumer.position(tp) < end[tp]}

    def record_at(self, topic: str, partition: int, offset: int) -> Record:
        """The record at *partition*, *offset*; UnknownIdError when there is none."""
        tps = {tp.partition: tp for tp in self.partitions(topic)}
        tp = tps.get(partition)
        what = f"no record {format_id(partition, offset)} in {topic}"
        if tp is None:
            raise UnknownIdError(f"{what}: it has partitions 0-{len(tps) - 1}")
        first = self.consumer.beginning_offsets([tp])[tp]
        end = self.consumer.end_offsets([tp])[tp]
        if not first <= offset < end:
            held = f"offsets {first}-{end - 1}" if end > first else "no records"
            raise UnknownIdError(f"{what}: partition {partition} holds {held}")
        self.consumer.assign([tp])
        self.consumer.seek(tp, offset)
        deadline = time.monotonic() + self.stall_s
        while time.monotonic() < deadline:
            for rec in self.consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
                if rec.offset != offset:  # compacted away, or a transaction marker
                    raise UnknownIdError(f"{what}: the partition skips from {offset} to {rec.offset}")
                return _record(partition, rec)
        raise KafkaTimeoutError(f"reading {topic}: {format_id(partition, offset)} did not arrive in {self.stall_s:.0f} s")


def _record(partition: int, rec: Any) -> Record:
    headers = tuple((str(k), bytes(v or b"")) for k, v in (rec.headers or ()))
    return Record(partition, rec.offset, rec.key, rec.value if rec.value is not None else b"", headers)
