"""Throughput of the sink: framed items a second written to Parquet in a local folder.

Two figures, on the same realistic framed items (3 segments with their explanations, 8 watches,
a live stream over a week of publication days):

- ``stage``: the real ``SinkStage`` (decode, group by folder and partition, build the frame,
  zstd Parquet, fsync + rename) over flush windows of ``--window`` records, no Kafka;
- ``kafka`` (with ``--kafka HOST:PORT``): the whole ``framewatch sink`` path, the records produced
  first, then the project's loop (``run_stage``) with the sink's window settings: records a
  second from the end of the first window to the end of the last (polling, writing, committing;
  the group join is not counted).

Prints the CPU, the figures, then one JSON object on the last line with ``sink_items_per_s``
(the Kafka figure when measured, else the stage's). Target: 2,000 framed items/s. On a shared
machine the wall-clock figures follow the load; ``*_items_per_cpu_s`` (items per second of this
process's CPU time, all its threads) does much less.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.aggregate import records  # noqa: E402
from bench.broker import cpu_name  # noqa: E402
from framewatch.contracts import MessageContext  # noqa: E402
from framewatch.kafka_io import (  # noqa: E402
    Message,
    StageOutput,
    ensure_topics,
    make_consumer,
    make_producer,
    run_stage,
)
from framewatch.metrics import PipelineMetrics  # noqa: E402
from framewatch.processing.sink.cli import window_settings  # noqa: E402
from framewatch.processing.sink.stage import SinkStage  # noqa: E402
from framewatch.processing.sink.storage import LocalStorage  # noqa: E402
from framewatch.settings import FRAMED_ITEMS, Settings  # noqa: E402

TARGET = 2_000


def bench_stage(raw: list[bytes], window: int, root: Path) -> tuple[float, float]:
    """Items a second (wall clock) and per CPU second through the stage alone."""
    stage = SinkStage(LocalStorage(root), {"t.framed-items": FRAMED_ITEMS})
    msgs = [Message(MessageContext("t.framed-items", i % 6, i // 6), v) for i, v in enumerate(raw)]
    started, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(msgs), window):
        stage(msgs[k:k + window])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stage.close()
    return len(raw) / elapsed, len(raw) / cpu


def bench_kafka(raw: list[bytes], window: int, root: Path, bootstrap: str) -> tuple[float, float]:
    """Items a second (wall clock) and per CPU second through the sink's loop on a real broker
    (produce not timed)."""
    from prometheus_client import CollectorRegistry

    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", sink_url=str(root),
                        sink_flush_rows=window, sink_flush_s=5.0, topic_partitions=6, state_dir=root / "state")
    topic = settings.topic(FRAMED_ITEMS)
    ensure_topics(settings, [topic])
    producer = make_producer(settings)  # as the pipeline produces: gzip batches
    for i, value in enumerate(raw):
        producer.send(topic, key=f"k{i}".encode(), value=value)
    producer.flush()
    producer.close()
    stage = SinkStage(LocalStorage(root), {topic: FRAMED_ITEMS})
    ends: list[tuple[float, float, int]] = []  # (end of a window's write, CPU time, records so far)

    def timed(batch: Sequence[Message]) -> StageOutput:
        out = stage(batch)
        ends.append((time.perf_counter(), time.process_time(), (ends[-1][2] if ends else 0) + len(batch)))
        return out

    consumer = make_consumer(settings, settings.group_id("sink"), [topic])
    producer = make_producer(settings)
    try:
        run_stage(consumer=consumer, producer=producer, stage=timed, settings=window_settings(settings),
                  metrics=PipelineMetrics(CollectorRegistry(), "sink"), stop=threading.Event(), idle_stop_s=0.1)
    finally:
        consumer.close()
        producer.close()
        stage.close()
    assert ends and ends[-1][2] == len(raw), f"{ends[-1][2] if ends else 0} of {len(raw)} written"
    # steady state, from the end of the first window (the group join is behind it) to the end
    # of the last: each later window's polling, writing and commit
    (t1, c1, n1), (t2, c2, n2) = ends[0], ends[-1]
    return (n2 - n1) / (t2 - t1), (n2 - n1) / (c2 - c1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--window", type=int, default=10_000, help="records per flush window (sink_flush_rows)")
    parser.add_argument("--kafka", default=None, help="bootstrap of a broker for the end-to-end figure")
    args = parser.parse_args()
    raw = records(args.records, 8, per_min=2_000)
    with tempfile.TemporaryDirectory() as tmp:
        stage_rate, stage_cpu = bench_stage(raw, args.window, Path(tmp) / "stage")
        kafka_rate, kafka_cpu = bench_kafka(raw, args.window, Path(tmp) / "kafka", args.kafka) if args.kafka else (None, None)
    rate = kafka_rate if kafka_rate is not None else stage_rate
    result = {
        "bench": "sink", "cpu": cpu_name(), "cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 1),
        "records": args.records, "window": args.window,
        "stage_items_per_s": round(stage_rate), "stage_items_per_cpu_s": round(stage_cpu),
        "kafka_items_per_s": round(kafka_rate) if kafka_rate else None,
        "kafka_items_per_cpu_s": round(kafka_cpu) if kafka_cpu else None,
        "target_items_per_s": TARGET, "meets_target": rate >= TARGET, "sink_items_per_s": round(rate),
    }
    for k, v in result.items():
        print(f"{k:>20}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
