"""Replaying dead letters to their source topics, each at most once per deployment.

What was replayed is remembered in the compacted ``dead-letter-replays`` topic, keyed by the
dead letter's id, each marker carrying the digest of the dead letter's bytes (a recreated
dead-letters topic reuses ids, never digests). A run:

1. reads the markers to their end: a dead letter whose latest marker is ``replayed`` is done; one
   ``claimed`` less than ``claim_ttl`` ago is being replayed by another run and is left to it;
2. writes a ``claimed`` marker for each dead letter it means to replay (acknowledged), then reads
   the markers written since step 1: a dead letter is this run's only when this run's claim is
   the first one there. Two concurrent runs see the same order (one partition per key), so
   exactly one of them goes on;
3. produces the original bytes with the original key to the source topic (acks=all, idempotent
   producer), the record stamped with the dead letter's ``failed_at`` and a header naming it;
4. once acknowledged, writes a ``replayed`` marker naming where the record went.

The window left: a crash between 3's acknowledgement and 4 leaves a claim and no ``replayed``
marker; after ``claim_ttl`` the next run replays that dead letter again. That duplicate is
harmless: it has the same key, bytes and timestamp as the first replay, and every consumer is
idempotent per key (raw items: the frame stage reuses its remembered decisions and derives
``processed_at`` from the message timestamp, so the framed record is the same, keyed
``<watch>:<item_id>``; framed items: the aggregator keeps one contribution per framed key;
alerts: the notifier delivers an alert key once per subscriber).
"""

from __future__ import annotations

import base64
import typing
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from kafka import KafkaProducer

from framewatch import contracts
from framewatch.contracts import DeadLetter
from framewatch.dead_letters import DEAD_LETTER_REPLAYS, REPLAY_HEADER, REPLAY_RUN_HEADER
from framewatch.dead_letters.reader import Entry, TopicReader
from framewatch.dead_letters.selection import NEVER_REPLAYABLE
from framewatch.errors import DecodeError
from framewatch.settings import DEAD_LETTERS, Settings
from framewatch.timeutil import format_utc

Status = Literal["replay", "replayed", "claimed", "held", "refused"]
CLAIM_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ReplayMarker:
    """A run's claim on a dead letter, or the record of its replay (topic ``dead-letter-replays``,
    keyed by the dead letter's id)."""

    SCHEMA_VERSION: typing.ClassVar[int] = 1

    dead_letter: str
    digest: str
    state: Literal["claimed", "replayed"]
    run_id: str
    at: datetime
    target_topic: str | None = None
    target_partition: int | None = None
    target_offset: int | None = None
    schema_version: int = 1

    def where(self) -> str:
        """Where the replay went and when."""
        return f"{self.target_topic}[{self.target_partition}]@{self.target_offset} at {format_utc(self.at)}"


@dataclass(frozen=True, slots=True)
class Planned:
    """What a replay does with one dead letter, and why."""

    entry: Entry
    status: Status
    note: str = ""

    @property
    def letter(self) -> DeadLetter:
        """The dead letter (planned entries always hold one)."""
        assert self.entry.letter is not None
        return self.entry.letter


@dataclass
class Outcome:
    """What an executed replay did: replayed ids, ids another run took, failures by id."""

    replayed: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def markers_topic(settings: Settings) -> str:
    """Full name of the replay-marker topic."""
    return settings.topic(DEAD_LETTER_REPLAYS)


def read_markers(reader: TopicReader, topic: str, start: dict[int, int] | None = None) -> list[ReplayMarker]:
    """Markers of *topic* from *start* on, in offset order per key; unreadable ones skipped."""
    out = []
    for rec in reader.records(topic, start):
        try:
            out.append(contracts.decode(ReplayMarker, rec.value))
        except DecodeError:
            continue  # not ours to judge; a marker we cannot read marks nothing
    return out


def latest_markers(markers: Iterable[ReplayMarker]) -> dict[str, ReplayMarker]:
    """The latest marker per dead-letter id (what compaction keeps)."""
    return {m.dead_letter: m for m in markers}


def refusal(letter: DeadLetter, settings: Settings, topics: set[str]) -> str | None:
    """Why *letter* must not be produced back to its source topic, or None."""
    source = letter.source_topic
    if not source.startswith(settings.topic_prefix) or source.startswith("__"):
        return f"source topic {source!r} is outside this deployment's prefix {settings.topic_prefix!r}"
    if source in (settings.topic(DEAD_LETTERS), markers_topic(settings)):
        return f"source topic {source!r} is the dead-letter tooling's own"
    if source not in topics:
        return f"source topic {source!r} does not exist"
    return None


def classify(
    entry: Entry, *, settings: Settings, topics: set[str], markers: dict[str, ReplayMarker],
    chosen: bool, now: datetime, claim_ttl: timedelta,
) -> Planned:
    """The status of one dead letter in a replay; *chosen* means named by id or by ``--reason``."""
    letter = entry.letter
    assert letter is not None
    marker = markers.get(entry.id)
    if marker is not None and marker.digest == entry.digest:
        if marker.state == "replayed":
            return Planned(entry, "replayed", f"already replayed to {marker.where()} (run {marker.run_id})")
        if marker.at > now - claim_ttl:
            return Planned(entry, "claimed", f"claimed by run {marker.run_id} at {format_utc(marker.at)}; "
                                             f"another run may take it over after {format_utc(marker.at + claim_ttl)}")
    refused = refusal(letter, settings, topics)
    if letter.truncated:
        refused = f"only the first {len(letter.raw)} of its {letter.raw_size} bytes were kept"
    if refused:
        return Planned(entry, "refused", refused)
    if letter.reason in NEVER_REPLAYABLE and not chosen:
        return Planned(entry, "held", f"{letter.reason}: the same bytes would fail again "
                                      f"(select it with --reason {letter.reason} or by id to replay anyway)")
    return Planned(entry, "replay")


def plan(
    entries: Sequence[Entry], *, settings: Settings, reader: TopicReader, chosen_reasons: frozenset[str],
    chosen_ids: frozenset[str], now: datetime, claim_ttl: timedelta = CLAIM_TTL, limit: int | None = None,
) -> tuple[list[Planned], dict[int, int]]:
    """Each dead letter's status, oldest first (at most *limit* to replay), and the marker
    topic's end offsets when the markers were read (step 1)."""
    topic = markers_topic(settings)
    if reader.exists(topic):
        end = reader.end_offsets(topic)
        markers = latest_markers(read_markers(reader, topic))
    else:
        end, markers = {}, {}
    topics = reader.topics()
    planned = []
    to_replay = 0
    for entry in sorted((e for e in entries if e.letter is not None), key=_failure_order):
        letter = entry.letter
        assert letter is not None
        chosen = entry.id in chosen_ids or letter.reason in chosen_reasons
        item = classify(entry, settings=settings, topics=topics, markers=markers, chosen=chosen, now=now, claim_ttl=claim_ttl)
        if item.status == "replay":
            if limit is not None and to_replay >= limit:
                continue
            to_replay += 1
        planned.append(item)
    return planned, end


def execute(
    planned: Sequence[Planned], *, settings: Settings, reader: TopicReader, producer: KafkaProducer,
    markers_end: dict[int, int], now: datetime, run_id: str | None = None,
) -> Outcome:
    """Claim, replay and mark every ``replay`` entry of *planned* (steps 2-4)."""
    run_id = run_id or uuid.uuid4().hex[:12]
    outcome = Outcome()
    mine = [p for p in planned if p.status == "replay"]
    if not mine:
        return outcome
    topic = markers_topic(settings)
    _send_markers(producer, topic, [ReplayMarker(p.entry.id, p.entry.digest, "claimed", run_id, now) for p in mine])
    owners: dict[str, ReplayMarker] = {}
    for marker in read_markers(reader, topic, markers_end):
        if marker.state == "replayed" or marker.dead_letter not in owners:
            owners[marker.dead_letter] = marker  # the first claim since step 1, or a finished replay
    ours = []
    for p in mine:
        owner = owners.get(p.entry.id)
        if owner is not None and owner.digest == p.entry.digest and owner.state == "claimed" and owner.run_id == run_id:
            ours.append(p)
        else:
            outcome.taken.append(p.entry.id)
    source_name = settings.topic(DEAD_LETTERS)
    futures = []
    for p in ours:
        letter = p.letter
        headers = [(REPLAY_HEADER, f"{source_name}:{p.entry.id}".encode()), (REPLAY_RUN_HEADER, run_id.encode())]
        key = base64.b64decode(letter.key_b64) if letter.key_b64 is not None else None
        futures.append((p, producer.send(letter.source_topic, key=key, value=letter.raw, headers=headers,
                                         timestamp_ms=int(letter.failed_at.timestamp() * 1000))))
    producer.flush()
    done = []
    for p, future in futures:
        try:
            meta = future.get(timeout=30)
        except Exception as exc:  # each failure is reported; its claim expires after claim_ttl
            outcome.failed[p.entry.id] = f"{type(exc).__name__}: {exc}"
            continue
        done.append(ReplayMarker(p.entry.id, p.entry.digest, "replayed", run_id, now, meta.topic, meta.partition, meta.offset))
    _send_markers(producer, topic, done)
    outcome.replayed.extend(m.dead_letter for m in done)
    return outcome


def _send_markers(producer: KafkaProducer, topic: str, markers: Sequence[ReplayMarker]) -> None:
    futures = [producer.send(topic, key=m.dead_letter.encode(), value=contracts.encode(m)) for m in markers]
    producer.flush()
    for future in futures:
        future.get(timeout=30)  # an unacknowledged marker is an error of the world: stop


def _failure_order(entry: Entry) -> tuple[datetime, int, int]:
    assert entry.letter is not None
    return entry.letter.failed_at, entry.partition, entry.offset
