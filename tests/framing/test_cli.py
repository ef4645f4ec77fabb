"""The processing consumer on the real broker: raw items in, one framed record per (item, watch)
out; kill -9 mid-stream and restart loses nothing and changes nothing; bad records dead-lettered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import DeadLetter, FramedItem, RawItem
from framewatch.processing.framing.cli import process, run_processor
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.settings import DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings
from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

CODEBOOK = ROOT / "framewatch" / "sample" / "codebook.yaml"
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)

pytestmark = pytest.mark.integration

BATCH = 5  # FRAMEWATCH_BATCH_MAX_RECORDS of the processor under test

TEMPLATES = [
    "The social credit system uses cameras to watch and punish citizens for jaywalking, item {i}.",
    "A social credit blacklist stopped firm {i} that sold fake vaccines from winning contracts.",
    "Nobody can explain why social credit score {i} dropped or how to appeal the decision.",
    "Since the social credit scores came in, district {i} says people queue politely and pay debts.",
]


def items(start: int, stop: int) -> list[RawItem]:
    return [
        RawItem(
            item_id=f"item-{i}", source_id="src", feed_url="https://example.org/feed", kind="article",
            url=f"https://example.org/{i}", title=None, author=None, published_at=T0 + timedelta(minutes=i),
            fetched_at=T0 + timedelta(minutes=i), text=TEMPLATES[i % 4].format(i=i),
        )
        for i in range(start, stop)
    ]


def produce(settings: Settings, records: list[RawItem], extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for r in records:
        producer.send(settings.topic(RAW_ITEMS), key=r.item_id.encode(), value=contracts.encode(r))
    for value in extra:
        producer.send(settings.topic(RAW_ITEMS), key=b"bad", value=value)
    producer.flush()
    producer.close()


class Counter:
    """Counts records of a topic as they arrive (background consumer)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topic, bootstrap_servers=settings.bootstrap_servers, group_id=None,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for recs in self._consumer.poll(timeout_ms=200).values():
                self.records.extend((r.key, r.value) for r in recs)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        try:
            return bool(wait_until("the condition", predicate, timeout_s))
        except AssertionError:
            return False

    def keys(self) -> set[bytes]:
        return {k for k, _ in self.records}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def processor_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "FRAMEWATCH_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "FRAMEWATCH_STATE_DIR": str(settings.state_dir),
        "FRAMEWATCH_METRICS_PORT": "0",
        "FRAMEWATCH_MODEL_NAME": "fake",
        "FRAMEWATCH_CLUSTER_NOVELTY_MAX": "0",  # fake-embedder cosines are low: frame everything
        "FRAMEWATCH_BATCH_MAX_RECORDS": str(BATCH),  # small batches: the kill lands mid-stream
        "FRAMEWATCH_BATCH_MAX_WAIT_MS": "100",
    }


def committed(settings: Settings) -> int:
    """Raw items the processor group has committed (summed over partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.group_id("processing"),
                             enable_auto_commit=False)
    try:
        topic = settings.topic(RAW_ITEMS)
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in sorted(consumer.partitions_for_topic(topic) or ()))
    finally:
        consumer.close()


def start_processor(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "framewatch", "process", "--codebook", str(CODEBOOK)],
        cwd=ROOT, env=processor_env(settings), stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def test_kill_9_mid_stream_then_restart_gives_exactly_one_record_per_item(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    settings = settings_factory()
    for logical in (RAW_ITEMS, FRAMED_ITEMS, DEAD_LETTERS):
        topic_factory(settings, logical)
    all_items = items(0, 400)
    produce(settings, all_items[:200], extra=[b"{not json"])
    framed = Counter(settings, settings.topic(FRAMED_ITEMS))
    dead = Counter(settings, settings.topic(DEAD_LETTERS))
    log = tmp_path / "processor.log"
    try:
        proc = start_processor(settings, log)
        # kill -9 right after the first committed batch: by construction mid-stream
        assert framed.wait_for(lambda: committed(settings) > 0, 60), log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = committed(settings)  # final: the process is dead
        assert 0 < at_kill < 201, f"not killed mid-stream: {at_kill} of 201 committed"
        produce(settings, all_items[200:])
        proc = start_processor(settings, log)
        expected = {contracts.framed_key(i.item_id, "social-credit").encode() for i in all_items}
        assert framed.wait_for(lambda: expected <= framed.keys(), 50), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()[-3000:]  # clean shutdown
        assert dead.wait_for(lambda: len(dead.records) >= 1, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        framed.close()
        dead.close()
    # The promise: at-least-once delivery, idempotent values per key. Every (item, watch) has a
    # record, a repeated record is identical byte for byte, and only the one batch the killed
    # process had produced but not committed (at most BATCH items, one
    # watch each here) can be repeated.
    by_key: dict[bytes, set[bytes]] = defaultdict(set)
    copies: dict[bytes, int] = defaultdict(int)
    for key, value in framed.records:
        by_key[key].add(value)
        copies[key] += 1
    assert set(by_key) == expected  # one key per (item, watch), nothing else
    assert all(len(values) == 1 for values in by_key.values())  # re-deliveries identical byte for byte
    repeated = sum(n - 1 for n in copies.values())
    assert all(n <= 2 for n in copies.values()) and repeated <= BATCH, f"{repeated} repeated records"
    assert len(framed.records) == len(expected) + repeated
    rec = contracts.decode(FramedItem, next(iter(by_key[b"social-credit:item-1"])))
    assert rec.frame is not None and rec.model_id == "fake-64"
    # dead letters are records like the others: at least once, and repeated only when the bad
    # record sat in the batch the killed process had not committed
    letters = [contracts.decode(DeadLetter, v) for _, v in dead.records]
    assert {(d.reason, d.raw, d.component, d.source_topic, d.partition, d.offset) for d in letters} == {
        ("not_json", b"{not json", "processing", settings.topic(RAW_ITEMS), letters[0].partition, letters[0].offset)}
    assert 1 <= len(letters) <= 2


def test_run_processor_in_process_counts_metrics(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list]
) -> None:
    settings = settings_factory(cluster_novelty_max=0.0)
    for logical in (RAW_ITEMS, FRAMED_ITEMS, DEAD_LETTERS):
        topic_factory(settings, logical)
    batch = items(0, 12)
    batch.append(RawItem(**{**contracts.to_dict(batch[0]), "item_id": "copy", "published_at": T0, "fetched_at": T0}))  # type: ignore[arg-type]
    batch.append(RawItem(**{**contracts.to_dict(batch[0]), "item_id": "blank", "text": " ", "published_at": T0, "fetched_at": T0}))  # type: ignore[arg-type]
    produce(settings, batch)
    registry = CollectorRegistry()
    handled = run_processor(
        settings, CODEBOOK, threading.Event(), FakeEmbedder(), registry=registry, idle_stop_s=8.0
    )
    assert handled == 14
    records = dict(topic_reader(settings.topic(FRAMED_ITEMS)))
    assert len(records) == 13 and b"social-credit:blank" not in records
    copy = contracts.decode(FramedItem, records[b"social-credit:copy"])
    # item-0, or a near copy of it (same template) that reached the stage first: partitions interleave
    assert copy.duplicate_of in {"item-0", "item-4", "item-8"}
    assert copy.segments[0].duplicate_of == f"{copy.duplicate_of}#0"
    sample = registry.get_sample_value
    assert sample("framewatch_processing_items_skipped_total", {"reason": "empty"}) == 1
    assert sample("framewatch_processing_segments_total", {"outcome": "duplicate"}) >= 1
    assert sample("framewatch_embedding_duration_seconds_count") >= 1
    assert sample("framewatch_consumed_records_total", {"component": "processing", "topic": settings.topic(RAW_ITEMS)}) == 14


def test_invalid_codebook_stops_start_up_with_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "cb.yaml"
    bad.write_text("watches:\n  - id: w\n    title: W\n    frames:\n      - {id: a, label: A, description: a}\n"
                   "      - {id: a, label: B, description: b}\n", encoding="utf-8")
    result = CliRunner().invoke(process, ["--codebook", str(bad)])
    assert result.exit_code == 2
    assert "frames[1].id" in result.output and "duplicate" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
