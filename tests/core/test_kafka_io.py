"""The one consumer loop, on the real broker: produce, then commit; errors go to dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import DeadLetter, RawItem
from framewatch.kafka_io import (
    Message,
    Outgoing,
    StageOutput,
    decode_batch,
    make_consumer,
    make_producer,
    poll_batch,
    run_stage,
)
from framewatch.metrics import PipelineMetrics
from framewatch.settings import Settings
from tests.helpers.raw_records import raw_item
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


def upper_stage(out_topic: str) -> Callable[[Sequence[Message]], StageOutput]:
    def stage(batch: Sequence[Message]) -> StageOutput:
        items, failures = decode_batch(RawItem, batch)
        produce = [
            Outgoing(out_topic, item.item_id, item.text.upper().encode()) for _, item in items
        ]
        return StageOutput(produce=produce, failures=failures)

    return stage


def seed(settings: Settings, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for key, value in values:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def run_once(settings: Settings, group: str, src: str, stage: Callable[[Sequence[Message]], StageOutput],
             producer: KafkaProducer | None = None, replayable: bool = True) -> tuple[int, CollectorRegistry]:
    registry = CollectorRegistry()
    consumer = make_consumer(settings, group, [src])
    own_producer = producer is None
    producer = producer or make_producer(settings)
    try:
        handled = run_stage(
            consumer=consumer, producer=producer, stage=stage, settings=settings,
            metrics=PipelineMetrics(registry, "test"), stop=threading.Event(), idle_stop_s=3,
            replayable=replayable,
        )
    finally:
        consumer.close()
        if own_producer:
            producer.close()
    return handled, registry


def test_stage_output_produced_bad_bytes_dead_lettered_offsets_committed(settings_factory, topic_factory, topic_reader) -> None:
    settings = settings_factory()
    src = topic_factory(settings, "raw-items")
    out = topic_factory(settings, "out")
    dead = topic_factory(settings, "dead-letters")
    good = [raw_item(item_id=f"i{n}", text=f"text {n}") for n in range(5)]
    seed(settings, src, [(i.item_id, contracts.encode(i)) for i in good] + [("bad", b"{oops")])

    handled, registry = run_once(settings, "g1", src, upper_stage(out))
    assert handled == 6
    produced = sorted(v for _, v in topic_reader(out))
    assert produced == sorted(f"TEXT {n}".encode() for n in range(5))
    letters = [contracts.decode(DeadLetter, v) for _, v in topic_reader(dead)]
    assert [(d.reason, d.raw, d.component) for d in letters] == [("not_json", b"{oops", "test")]
    assert registry.get_sample_value("framewatch_dead_letters_total", {"component": "test", "reason": "not_json"}) == 1

    # Offsets were committed: the same group reads nothing more.
    again, _ = run_once(settings, "g1", src, upper_stage(out))
    assert again == 0


def test_a_record_too_large_for_a_dead_letter_keeps_its_head_size_and_digest(settings_factory, topic_factory, topic_reader) -> None:
    """A source topic may allow records the dead-letter topic (1 MiB, the broker's default) does
    not: the dead letter keeps the head, the size and the sha256, and the loop goes on (it used to
    stop on MessageSizeTooLargeError at every restart)."""
    import hashlib

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    settings = settings_factory()
    src = settings.topic("raw-items")
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    admin.create_topics([NewTopic(src, 1, 1, topic_configs={"max.message.bytes": str(6 << 20)})])
    admin.close()
    out = topic_factory(settings, "out")
    dead = topic_factory(settings, "dead-letters")
    huge = b'{"item_id":"x","text":"' + b"a" * (contracts.MAX_RECORD_BYTES + 10) + b'"}'
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, max_request_size=6 << 20)
    producer.send(src, key=b"k" * 100_000, value=huge)
    producer.send(src, key=b"ok", value=contracts.encode(raw_item(item_id="ok", text="fine")))
    producer.flush()
    producer.close()

    handled, _ = run_once(settings, "g-huge", src, upper_stage(out))
    assert handled == 2
    assert [v for _, v in topic_reader(out)] == [b"FINE"]
    [(key, value)] = topic_reader(dead)
    letter = contracts.decode(DeadLetter, value)
    assert letter.reason == "too_large" and letter.truncated
    assert letter.raw == huge[:contracts.DEAD_LETTER_RAW_MAX] and letter.raw_size == len(huge)
    assert letter.raw_sha256 == hashlib.sha256(huge).hexdigest()
    assert key == b"k" * contracts.DEAD_LETTER_KEY_MAX and len(value) < 1 << 20
    again, _ = run_once(settings, "g-huge", src, upper_stage(out))
    assert again == 0  # committed


def test_no_commit_when_a_produce_is_not_acknowledged(settings_factory, topic_factory, topic_reader) -> None:
    settings = settings_factory()
    src = topic_factory(settings, "raw-items")
    out = topic_factory(settings, "out")
    seed(settings, src, [("k", contracts.encode(raw_item(item_id="k")))])

    def too_big(batch: Sequence[Message]) -> StageOutput:
        # Larger than the broker's default message.max.bytes (1 MiB): the broker refuses it.
        return StageOutput(produce=[Outgoing(out, "k", b"x" * 3_000_000)])

    producer = make_producer(settings, compression_type=None)
    with pytest.raises(MessageSizeTooLargeError):  # the broker's refusal reaches the loop
        run_once(settings, "g2", src, too_big, producer)
    producer.close()
    # Nothing was committed, so a healthy run of the same group handles the record again.
    handled, _ = run_once(settings, "g2", src, upper_stage(out))
    assert handled == 1
    assert [v for _, v in topic_reader(out)] == [b"OWN WORDS"]


class RecordingConsumer:
    """The real consumer, with each poll's time budget and record count written down."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.calls: list[tuple[int, int]] = []  # (timeout_ms, records)

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        got = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        self.calls.append((timeout_ms, sum(len(records) for records in got.values())))
        return got


def test_a_long_window_closes_with_what_it_has_when_told_to_stop(settings_factory, topic_factory) -> None:
    """The sink's 30 s window must not hold up a shutdown: stop closes the batch in hand."""
    settings = settings_factory()
    src = topic_factory(settings, "raw-items", 1)
    consumer = make_consumer(settings, "g-stop", [src])
    stop = threading.Event()
    try:
        poll_batch(consumer, 10, 3000)  # join the group
        seed(settings, src, [("a", b"1")])
        recording = RecordingConsumer(consumer)
        result: list[list[Message]] = []
        worker = threading.Thread(target=lambda: result.append(
            poll_batch(recording, 256, 600_000, linger_ms=600_000, stop=stop)))  # type: ignore[arg-type]
        worker.start()
        wait_until("the record in the batch", lambda: any(n for _, n in recording.calls), 30)
        stop.set()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the batch did not close on stop"
        assert [m.value for m in result[0]] == [b"1"]
        assert all(timeout <= 1000 for timeout, _ in recording.calls)  # each poll looked at stop within 1 s
    finally:
        stop.set()
        consumer.close()


def test_poll_batch_closes_early_on_a_light_stream_and_fills_on_a_backlog(settings_factory, topic_factory) -> None:
    """Counted, not timed: which polls poll_batch makes, with what budget, and what they bring."""
    settings = settings_factory()
    src = topic_factory(settings, "raw-items", 1)
    consumer = make_consumer(settings, "g-batch", [src])
    recording = RecordingConsumer(consumer)
    try:
        poll_batch(consumer, 10, 3000)  # join the group (nothing there yet)
        # light stream: one record in hand, nothing more coming -> after it, one poll of at most
        # the linger (50 ms) that brings nothing closes the batch, long before its 20 s
        seed(settings, src, [("a", b"1")])
        batch = poll_batch(recording, 256, 20_000, linger_ms=50)  # type: ignore[arg-type]
        assert [m.value for m in batch] == [b"1"]
        first_with_records = next(i for i, (_, n) in enumerate(recording.calls) if n)
        assert recording.calls[first_with_records + 1:] == [(50, 0)]
        # backlog: the batch fills to its size however short the linger
        seed(settings, src, [(f"k{i}", str(i).encode()) for i in range(60)])
        sizes = [len(poll_batch(consumer, 25, 20_000, linger_ms=50)) for _ in range(3)]
        assert sizes == [25, 25, 10]
        # without a linger a batch in hand keeps waiting with the rest of its time, as before
        seed(settings, src, [("b", b"2")])
        recording.calls.clear()
        assert len(poll_batch(recording, 256, 1500)) == 1  # type: ignore[arg-type]
        first_with_records = next(i for i, (_, n) in enumerate(recording.calls) if n)
        after = recording.calls[first_with_records + 1:]
        assert after and all(timeout > 50 or n == 0 for timeout, n in after[:-1])
        assert after[0][0] > 50  # it waited for more with its remaining time, not a linger
    finally:
        consumer.close()


def test_idle_output_is_produced_and_acknowledged_with_no_input(settings_factory, topic_factory, topic_reader) -> None:
    """The idle hook (the aggregator's re-evaluation when only other instances' rows moved):
    its records reach the topic though no batch came, and nothing is committed for it."""
    settings = settings_factory()
    src = topic_factory(settings, "raw-items")
    out = topic_factory(settings, "out")
    calls: list[int] = []

    def idle() -> StageOutput:
        calls.append(1)
        return StageOutput(produce=[Outgoing(out, "tick", b"evaluated")] if len(calls) == 1 else [])

    consumer = make_consumer(settings, "g-idle", [src])
    producer = make_producer(settings)
    try:
        handled = run_stage(consumer=consumer, producer=producer, stage=upper_stage(out), settings=settings,
                            metrics=PipelineMetrics(CollectorRegistry(), "test"), stop=threading.Event(),
                            idle_stop_s=2, idle=idle)
    finally:
        consumer.close()
        producer.close()
    assert handled == 0 and len(calls) >= 2
    assert topic_reader(out) == [(b"tick", b"evaluated")]


def poison_stage(out_topic: str, calls: list[int] | None = None) -> Callable[[Sequence[Message]], StageOutput]:
    """Upper-cases values; any batch holding a value with b"poison" makes it raise."""

    def stage(batch: Sequence[Message]) -> StageOutput:
        if calls is not None:
            calls.append(len(batch))
        if any(b"poison" in m.value for m in batch):
            raise TypeError("a record this stage cannot take")
        return StageOutput(produce=[Outgoing(out_topic, m.ctx.key.decode(), m.value.upper()) for m in batch])

    return stage


def test_a_record_that_makes_the_stage_raise_is_bisected_out_and_dead_lettered(
    settings_factory, topic_factory, topic_reader,
) -> None:
    settings = settings_factory(batch_max_records=16)
    src = topic_factory(settings, "raw-items", 1)
    out = topic_factory(settings, "out")
    dead = topic_factory(settings, "dead-letters")
    values = [(f"k{i}", b"poison %d" % i if i in (3, 11) else b"fine %d" % i) for i in range(16)]
    seed(settings, src, values)
    calls: list[int] = []
    handled, registry = run_once(settings, "g-poison", src, poison_stage(out, calls))
    assert handled == 16
    assert sorted(v for _, v in topic_reader(out)) == sorted(v.upper() for _, v in values if b"fine" in v)
    letters = [contracts.decode(DeadLetter, v) for _, v in topic_reader(dead)]
    assert sorted((d.reason, d.raw) for d in letters) == [("stage_error", b"poison 11"), ("stage_error", b"poison 3")]
    assert all("TypeError: a record this stage cannot take" in d.detail for d in letters)
    g = registry.get_sample_value
    assert g("framewatch_errors_total", {"component": "test", "reason": "stage_error"}) == 2
    assert g("framewatch_dead_letters_total", {"component": "test", "reason": "stage_error"}) == 2
    assert len(calls) <= 1 + 2 * 2 * 4  # a bisection, not a record-by-record retry of the batch
    again, _ = run_once(settings, "g-poison", src, poison_stage(out))
    assert again == 0  # committed: the poison does not come back


def test_environment_errors_are_retried_counted_and_then_stop_the_loop_uncommitted(
    settings_factory, topic_factory, topic_reader,
) -> None:
    settings = settings_factory(stage_retries=2, stage_retry_backoff_s=0)
    src = topic_factory(settings, "raw-items", 1)
    out = topic_factory(settings, "out")
    seed(settings, src, [("k", b"v")])
    failures = [OSError("disk full"), OSError("disk full")]

    def flaky(batch: Sequence[Message]) -> StageOutput:
        if failures:
            raise failures.pop()
        return StageOutput(produce=[Outgoing(out, "k", b"V")])

    handled, registry = run_once(settings, "g-env", src, flaky)
    assert handled == 1 and topic_reader(out) == [(b"k", b"V")]
    assert registry.get_sample_value("framewatch_errors_total", {"component": "test", "reason": "stage_retry"}) == 2

    seed(settings, src, [("k2", b"v2")])

    def broken(batch: Sequence[Message]) -> StageOutput:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_once(settings, "g-env", src, broken)
    # nothing committed and nothing dead-lettered: a healthy run handles the record
    handled, _ = run_once(settings, "g-env", src, flaky)
    assert handled == 1


def test_a_stage_that_is_not_replayable_fails_the_loop_uncommitted(settings_factory, topic_factory, topic_reader) -> None:
    """The aggregator's kind of stage: no bisecting and no retry in process (a half handed again
    would produce nothing for what its state already holds); the restart reads the batch again."""
    settings = settings_factory()
    src = topic_factory(settings, "raw-items", 1)
    out = topic_factory(settings, "out")
    seed(settings, src, [("a", b"fine"), ("b", b"poison")])
    calls: list[int] = []
    with pytest.raises(TypeError):
        run_once(settings, "g-delta", src, poison_stage(out, calls), replayable=False)
    assert calls == [2] and topic_reader(out) == []
    handled, _ = run_once(settings, "g-delta", src, upper_stage_raw(out))
    assert handled == 2  # nothing was committed


def upper_stage_raw(out_topic: str) -> Callable[[Sequence[Message]], StageOutput]:
    return lambda batch: StageOutput(produce=[Outgoing(out_topic, m.ctx.key.decode(), m.value.upper()) for m in batch])
