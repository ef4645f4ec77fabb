"""The one Kafka loop of framewatch, around pure stage functions, and every Kafka client it uses.

A *stage* is a function from a micro-batch of ``Message`` to a ``StageOutput``: records to
produce and failures to dead-letter. It has no Kafka in it. ``run_stage`` polls a bounded
micro-batch (size and time), calls the stage, produces its output, waits for every produce to be
acknowledged, and only then commits the consumed offsets. A crash anywhere before the commit
means the batch is read again: at-least-once delivery, made idempotent downstream by
deterministic keys and deterministic stages.

A stage that raises is not allowed to stop the stream for one bad record: the loop bisects the
batch to the record that makes it raise, dead-letters that record (reason ``stage_error``, with
the exception) and handles the rest. An error of the environment (the broker, the disk, memory)
is no record's fault: the whole batch is retried a few times with backoff, each retry counted,
and then the loop stops without committing, so nothing is lost. Both need a *replayable* stage,
one that gives the same output for records it has seen (the frame stage, the notifier). A stage
whose output is a delta of its in-memory state (the aggregator) is not: handed a half again it
would produce nothing for what it already applied, so for it any exception stops the loop
uncommitted, and its restart restores the state and reads the batch again.

Every Kafka client of framewatch is made here: the group consumer and producer of the loop, the
admin client that creates topics, and the group-less readers (``read_to_end``, ``tail``) that
restore state and follow other instances, each with ``Settings.kafka_client_config()`` (servers,
protocol, TLS, SASL) through ``kafka_connect.connect``: one whose bootstrap fails raises
``KafkaConnectError`` naming the cause.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from framewatch import contracts
from framewatch.contracts import MessageContext
from framewatch.errors import DecodeError
from framewatch.kafka_connect import connect
from framewatch.metrics import PipelineMetrics
from framewatch.settings import DEAD_LETTERS, Settings
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

STOP_CHECK_MS = 1000  # how often a long poll looks at its stop event

# errors of the world around a stage, not of the record in it: retried, never dead-lettered
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (KafkaError, OSError, MemoryError)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed message: its coordinates and its raw value."""

    ctx: MessageContext
    value: bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce: full topic name, key and encoded value."""

    topic: str
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """A message a stage could not handle, headed for the dead-letter topic."""

    ctx: MessageContext
    reason: str
    detail: str
    raw: bytes


@dataclass(slots=True)
class StageOutput:
    """What a stage returns for one micro-batch."""

    produce: list[Outgoing] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


Stage = Callable[[Sequence[Message]], StageOutput]


def decode_batch(
    record_type: type[R], batch: Iterable[Message]
) -> tuple[list[tuple[MessageContext, R]], list[Failure]]:
    """Split a batch into decoded records and failures (errors are data)."""
    oks: list[tuple[MessageContext, R]] = []
    errs: list[Failure] = []
    for msg in batch:
        try:
            oks.append((msg.ctx, contracts.decode(record_type, msg.value)))
        except DecodeError as exc:
            errs.append(Failure(msg.ctx, exc.reason, exc.detail, msg.value))
    return oks, errs


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and never reorders or duplicates on retry."""
    config: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "compression_type": "gzip",
        "max_request_size": 4 * 1024 * 1024,
        "client_id": "framewatch",
    }
    config.update(overrides)
    return connect(KafkaProducer, settings, **config)


def make_consumer(settings: Settings, group_id: str, topics: Sequence[str], **overrides: Any) -> KafkaConsumer:
    """A consumer in *group_id* that commits only when told to, starting from the earliest offset."""
    config: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.batch_max_records,
        "client_id": f"framewatch-{group_id}",
    }
    config.update(overrides)
    consumer = connect(KafkaConsumer, settings, **config)
    consumer.subscribe(list(topics))
    return consumer


def ensure_topics(
    settings: Settings, names: Iterable[str], partitions: int | None = None, *, compacted: bool = False,
) -> None:
    """Create the given full topic names if they do not exist yet (idempotent); *compacted*
    topics keep the latest record per key."""
    configs = {"cleanup.policy": "compact"} if compacted else {}
    admin = connect(KafkaAdminClient, settings, client_id="framewatch-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, partitions or settings.topic_partitions, settings.topic_replication, topic_configs=configs)
            for name in names
            if name not in existing
        ]
        if wanted:
            # another process may create it between list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
            _wait_for_leaders(admin, [t.name for t in wanted])
    finally:
        admin.close()


def _wait_for_leaders(admin: KafkaAdminClient, names: list[str], timeout_s: float = 15.0) -> None:
    """Wait until every partition of *names* has a leader: a consumer that subscribes before then
    can join its group with nothing assigned and stay idle until its next metadata refresh (minutes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader_id"] >= 0 for p in t["partitions"])
               for t in topics):
            return
        if time.monotonic() > deadline:
            log.warning("topics %s have no leader yet after %.0f s; going on", names, timeout_s)
            return
        time.sleep(0.1)


def _groupless_consumer(settings: Settings, client_id: str) -> KafkaConsumer:
    return connect(KafkaConsumer, settings, group_id=None, enable_auto_commit=False, client_id=client_id)


def _assign_from_start(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if tps:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
    return tps


def read_to_end(settings: Settings, topic: str) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of *topic* up to its end offsets at call time; no group,
    nothing committed (state restores)."""
    consumer = _groupless_consumer(settings, "framewatch-restore")
    try:
        tps = _assign_from_start(consumer, topic)
        if not tps:
            return
        end = consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for rec in records:
                    if rec.offset < end[tp]:
                        yield rec.key, rec.value
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()


class Tail:
    """Follows every partition of a topic from its start, without a group (each instance reads
    all of it); ``poll`` never blocks."""

    def __init__(self, settings: Settings, topic: str, client_id: str) -> None:
        self.consumer = _groupless_consumer(settings, client_id)
        self.topic = topic
        self.assigned = bool(_assign_from_start(self.consumer, topic))

    def poll(self, max_records: int = 50_000) -> list[bytes]:
        """Values published since the last call."""
        return [value or b"" for _, value in self.poll_keyed(max_records)]

    def poll_keyed(self, max_records: int = 50_000) -> list[tuple[bytes | None, bytes | None]]:
        """(key, value) of the records published since the last call; a tombstone's value is None."""
        if not self.assigned:  # the topic's metadata was not there yet (a busy broker): try again
            self.assigned = bool(_assign_from_start(self.consumer, self.topic))
            if not self.assigned:
                return []
        return [
            (rec.key, rec.value)
            for records in self.consumer.poll(timeout_ms=0, max_records=max_records).values()
            for rec in records
        ]

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def poll_batch(consumer: KafkaConsumer, max_records: int, max_wait_ms: int, linger_ms: int | None = None,
               stop: threading.Event | None = None) -> list[Message]:
    """Poll until *max_records* messages or *max_wait_ms* have passed, whichever comes first.

    With *linger_ms* set, a batch that has records closes early once the stream has been quiet
    for *linger_ms*: a light stream is handled record by record as it comes (latency), a backlog
    still in full batches (throughput), without a fixed wait per batch. With *stop*, the batch
    closes within a second of it being set, with what it has (a long window, like the sink's,
    must not hold up a shutdown).
    """
    batch: list[Message] = []
    start = time.monotonic()
    deadline, quiet_since = start + max_wait_ms / 1000, start
    while len(batch) < max_records and not (stop is not None and stop.is_set()):
        now = time.monotonic()
        wait_ms = int((deadline - now) * 1000)
        if wait_ms <= 0:
            break
        if batch and linger_ms is not None:
            quiet_left_ms = linger_ms - int((now - quiet_since) * 1000)
            if quiet_left_ms <= 0:
                break
            wait_ms = min(wait_ms, quiet_left_ms)
        if stop is not None:
            wait_ms = min(wait_ms, STOP_CHECK_MS)
        polled = consumer.poll(timeout_ms=wait_ms, max_records=max_records - len(batch))
        if polled:
            quiet_since = time.monotonic()
        for tp, records in polled.items():
            for rec in records:
                ctx = MessageContext(tp.topic, tp.partition, rec.offset, rec.key, rec.timestamp)
                batch.append(Message(ctx, rec.value if rec.value is not None else b""))
    return batch


def run_stage(
    *,
    consumer: KafkaConsumer,
    producer: KafkaProducer,
    stage: Stage,
    settings: Settings,
    metrics: PipelineMetrics,
    stop: threading.Event,
    max_batches: int | None = None,
    idle_stop_s: float | None = None,
    heartbeat: Callable[[], None] | None = None,
    idle: Callable[[], StageOutput] | None = None,
    replayable: bool = True,
) -> int:
    """Run *stage* over the consumer's topics until *stop* is set; returns messages handled.

    ``max_batches`` and ``idle_stop_s`` bound the loop for tests and back-fills; *heartbeat* is
    called once per turn of the loop (the component's liveness). *idle*, when given, runs on
    every poll that brought nothing: its output is produced and acknowledged like a batch's, with
    no offsets to commit (the aggregator evaluates what other instances' rows changed).
    *replayable* stages get poison isolation and retries (see the module docstring).
    """
    component = metrics.component
    handled = 0
    batches = 0
    idle_since = time.monotonic()
    metrics.up.labels(component).set(1)
    try:
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat()
            batch = poll_batch(consumer, settings.batch_max_records, settings.batch_max_wait_ms, settings.batch_linger_ms,
                               stop)
            if not batch:
                if not consumer.assignment():
                    idle_since = time.monotonic()  # still joining the group: not idle yet
                    continue
                if idle is not None:
                    _produce_acknowledged(producer, idle(), settings, metrics)
                if idle_stop_s is not None and time.monotonic() - idle_since >= idle_stop_s:
                    break
                continue
            idle_since = time.monotonic()
            started = time.perf_counter()
            if replayable:
                output = _with_retries(functools.partial(isolate_poison, stage, batch, metrics), settings, metrics, stop)
            else:
                output = stage(batch)
            _produce_acknowledged(producer, output, settings, metrics)  # raises: no commit then
            consumer.commit()
            for msg in batch:
                metrics.consumed.labels(component, msg.ctx.topic).inc()
            metrics.batch_seconds.labels(component).observe(time.perf_counter() - started)
            metrics.batch_size.labels(component).observe(len(batch))
            update_lag(consumer, metrics)
            handled += len(batch)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
    except KafkaError:
        metrics.errors.labels(component, "kafka_error").inc()
        log.exception("%s: Kafka error; offsets of the batch in hand were not committed", component)
        raise
    finally:
        metrics.up.labels(component).set(0)
    return handled


def isolate_poison(stage: Stage, batch: Sequence[Message], metrics: PipelineMetrics) -> StageOutput:
    """*stage* over *batch*; when it raises for a record's sake, bisect to the records that make
    it raise and turn each into a ``stage_error`` failure, keeping the others' output."""
    try:
        return stage(batch)
    except ENVIRONMENT_ERRORS:
        raise
    except Exception as exc:
        if len(batch) == 1:
            msg = batch[0]
            metrics.errors.labels(metrics.component, "stage_error").inc()
            log.exception("%s: the stage failed on %s[%d]@%d; dead-lettering it", metrics.component,
                          msg.ctx.topic, msg.ctx.partition, msg.ctx.offset)
            return StageOutput(failures=[Failure(msg.ctx, "stage_error", f"{type(exc).__name__}: {exc}"[:1000], msg.value)])
    mid = len(batch) // 2
    left = isolate_poison(stage, batch[:mid], metrics)
    right = isolate_poison(stage, batch[mid:], metrics)
    return StageOutput(produce=left.produce + right.produce, failures=left.failures + right.failures)


def _with_retries(attempt: Callable[[], StageOutput], settings: Settings, metrics: PipelineMetrics,
                  stop: threading.Event) -> StageOutput:
    """*attempt*, retried with backoff while it fails on its environment (at most
    ``settings.stage_retries`` times, each counted); then the error goes up, uncommitted."""
    for retry in range(settings.stage_retries + 1):
        try:
            return attempt()
        except ENVIRONMENT_ERRORS as exc:
            if retry == settings.stage_retries or stop.is_set():
                raise
            metrics.errors.labels(metrics.component, "stage_retry").inc()
            delay = min(30.0, settings.stage_retry_backoff_s * 2**retry)
            log.warning("%s: the stage failed (%s: %s); retry %d of %d in %.1f s", metrics.component,
                        type(exc).__name__, exc, retry + 1, settings.stage_retries, delay)
            stop.wait(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _produce_acknowledged(producer: KafkaProducer, output: StageOutput, settings: Settings, metrics: PipelineMetrics) -> None:
    """Produce a stage's records and dead letters and wait until the broker acknowledged each."""
    component = metrics.component
    if not output.produce and not output.failures:
        return
    futures = [producer.send(o.topic, key=o.key.encode(), value=o.value) for o in output.produce]
    for failure in output.failures:
        record = contracts.dead_letter(component, failure.ctx, failure.reason, failure.detail, failure.raw, utcnow())
        key = failure.ctx.key[:contracts.DEAD_LETTER_KEY_MAX] if failure.ctx.key is not None else None
        futures.append(producer.send(settings.topic(DEAD_LETTERS), key=key, value=contracts.encode(record)))
        metrics.dead_letters.labels(component, failure.reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s (%s)", failure.ctx.topic, failure.ctx.partition,
            failure.ctx.offset, failure.reason, failure.detail[:200],
        )
    producer.flush()
    for fut in futures:
        fut.get(timeout=30)  # raises if a produce was not acknowledged
    for o in output.produce:
        metrics.produced.labels(component, o.topic).inc()


def partition_lags(consumer: KafkaConsumer) -> Iterator[tuple[TopicPartition, int | None]]:
    """Each assigned partition with the records between the consumer's position and the high
    watermark of its last fetch (None while no fetch has told it)."""
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        yield tp, None if high is None else max(0, high - consumer.position(tp))


def backlog(consumer: KafkaConsumer) -> int:
    """Records still to read on every assigned partition; a partition not fetched yet counts as
    one (unknown is not caught up)."""
    return sum(1 if lag is None else lag for _, lag in partition_lags(consumer))


def update_lag(consumer: KafkaConsumer, metrics: PipelineMetrics) -> None:
    """Set the lag gauge for every partition assigned to *consumer*."""
    for tp, lag in partition_lags(consumer):
        if lag is not None:
            metrics.lag.labels(metrics.component, tp.topic, str(tp.partition)).set(lag)
