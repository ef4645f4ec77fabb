"""Scaling benchmark: 1, then 2 ``framewatch process`` processors in one consumer group, one thread each.

Each run gets fresh topics (raw items on 4 partitions) and a fresh group on the real broker
(FRAMEWATCH_TEST_KAFKA when set and reachable, else one started with deploy/kafka/kafka.sh and
stopped afterwards, bench/broker.py). The processors start, load the model and join the group
first; only once the group is stable with every processor holding partitions is the same
stream (bench/processing.py's mixed stream) produced, and the clock runs from the first send to
the last framed record. Every processor runs with one thread (OMP_NUM_THREADS=1: torch and
onnxruntime both follow it), so 2 cores fit 2 processors.

    python bench/scaling.py [--items 600] [--backend auto|torch|onnx] [--precision auto]

The last line is JSON with ``items_per_s_1``, ``items_per_s_2`` and ``speedup`` (target >= 1.8).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.broker import running_broker  # noqa: E402
from bench.processing import CODEBOOK, cpu_name, mixed_stream, skipped_ids  # noqa: E402
from framewatch import contracts  # noqa: E402

PARTITIONS = 4
READY_TIMEOUT_S = 300  # model load, ONNX export on first use and the backend probe, on a loaded machine
DRAIN_TIMEOUT_S = 900


def group_ready(bootstrap: str, group: str, members: int) -> bool:
    """True when *group* is stable with *members* members that hold all partitions between them."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-scaling")
    except KafkaError:
        return False
    try:
        info = admin.describe_groups([group]).get(group) or {}
    except KafkaError:  # a coordinator still loading
        return False
    finally:
        admin.close()
    if str(info.get("group_state", "")).lower() != "stable" or len(info.get("members") or []) != members:
        return False
    held = [sum(len(a.get("partitions") or []) for a in (m.get("member_assignment") or {}).get("assigned_partitions") or [])
            for m in info["members"]]
    return all(held) and sum(held) == PARTITIONS


def topic_visible(settings: object, topic: str) -> bool:
    """True once a fresh client sees all partitions of *topic* (a consumer that joins before
    would be assigned nothing until its metadata refreshes, minutes later)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings.kafka_client_config())  # type: ignore[attr-defined]
    try:
        return len(consumer.partitions_for_topic(topic) or ()) == PARTITIONS
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (start-up included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return -1.0


def run(processors: int, bootstrap: str, items: list, args: argparse.Namespace) -> dict[str, object]:
    """Frame *items* with *processors* processes; returns items/s and what each did."""
    from kafka import KafkaConsumer, KafkaProducer

    from framewatch.kafka_io import ensure_topics
    from framewatch.settings import DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings

    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"scale{uuid.uuid4().hex[:8]}.")
    ensure_topics(settings, [settings.topic(RAW_ITEMS)], partitions=PARTITIONS)
    ensure_topics(settings, [settings.topic(t) for t in (FRAMED_ITEMS, DEAD_LETTERS)])
    deadline = time.monotonic() + 60
    while not topic_visible(settings, settings.topic(RAW_ITEMS)) and time.monotonic() < deadline:
        time.sleep(0.5)
    tmp = Path(tempfile.mkdtemp(prefix="fw-scaling-"))
    env = {**os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": bootstrap, "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix,
           "FRAMEWATCH_METRICS_PORT": "0", "FRAMEWATCH_MODEL_BACKEND": args.backend,
           "FRAMEWATCH_MODEL_PRECISION": args.precision, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    procs = []
    for k in range(processors):
        log = (tmp / f"processor-{k}.log").open("w")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "framewatch", "process", "--codebook", str(CODEBOOK)],
            env={**env, "FRAMEWATCH_STATE_DIR": str(tmp / f"state-{k}")}, stdout=log, stderr=subprocess.STDOUT,
        ), log))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not group_ready(bootstrap, settings.group_id("processing"), processors):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                raise RuntimeError(f"processors did not join the group; logs in {tmp}")
            time.sleep(0.5)
        consumer = KafkaConsumer(settings.topic(FRAMED_ITEMS), **settings.kafka_client_config(), group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        producer = KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=5)
        expected = {i.item_id for i in items} - skipped_ids(items)
        started = time.monotonic()
        for item in items:
            producer.send(settings.topic(RAW_ITEMS), key=item.item_id.encode(), value=contracts.encode(item))
        producer.flush(60)
        framed: set[str] = set()
        last = started
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not expected <= framed and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    framed.add(json.loads(record.value)["item_id"])
                    last = time.monotonic()
        consumer.close()
        producer.close()
        cpu_s = [cpu_seconds(proc.pid) for proc, _ in procs]
        load = round(os.getloadavg()[0], 2)
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    backend_lines = [line.strip() for k in range(processors)
                     for line in (tmp / f"processor-{k}.log").read_text(errors="replace").splitlines() if "embedding backend" in line]
    seconds = last - started
    return {"processors": processors, "items": len(items), "framed_items": len(framed & expected),
            "missing": len(expected - framed), "seconds": round(seconds, 2),
            "items_per_s": round(len(items) / seconds, 1) if seconds > 0 else None,
            "processor_cpu_s": cpu_s, "load_avg_1m": load, "backend_log": backend_lines[:processors],
            "logs": str(tmp)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16", "int8"], default="auto")
    args = parser.parse_args()
    items = mixed_stream(args.items, seed=23)
    with running_broker() as bootstrap:
        one = run(1, bootstrap, items, args)
        print(f"1 processor: {json.dumps(one)}", flush=True)
        two = run(2, bootstrap, items, args)
        print(f"2 processors: {json.dumps(two)}", flush=True)
    ips1, ips2 = one["items_per_s"], two["items_per_s"]
    speedup = round(float(ips2) / float(ips1), 3) if ips1 and ips2 else None  # type: ignore[arg-type]
    print(json.dumps({"items_per_s_1": ips1, "items_per_s_2": ips2, "speedup": speedup, "partitions": PARTITIONS,
                      "items": args.items, "backend": args.backend, "precision": args.precision,
                      "missing": [one["missing"], two["missing"]], "cpu": cpu_name(), "cores": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
