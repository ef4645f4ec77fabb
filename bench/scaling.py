"""Scaling benchmark: 1, then 2 ``framewatch process`` processors in one consumer group, one thread each.

Each run gets fresh topics (raw items on 4 partitions) and a fresh group on the real broker
(FRAMEWATCH_TEST_KAFKA when set and reachable, else one started with deploy/kafka/kafka.sh and
stopped afterwards, bench/broker.py). The processors start, load the model and join the group
first; only once the group is stable with every processor holding partitions is the same
stream (bench/processing.py's mixed stream) produced, and the clock runs from the first send to
the last framed record. Every processor runs with one thread (OMP_NUM_THREADS=1: torch and
onnxruntime both follow it), so 2 cores fit 2 processors; ``busy_threads`` counts, per
processor, the threads that used >= 10% of its CPU in the measured phase (1 = one compute thread).

On a small machine the broker (a JVM) and this script's producer and reader share the cores with
the processors, so 2 processors cannot reach 2x one. Each phase's CPU seconds are measured from
/proc: the processors', the broker's (the processes listening on its port), this script's, and
the rest of the machine's (``background``: other work). ``speedup_bound`` is what 2 processors
could reach with the CPU left to them: at most twice one processor's rate, and at most
(cores - background) / (processor + broker + producer CPU seconds per item, from the 1-processor
phase); ``efficiency`` = ``speedup`` / ``speedup_bound``. A compute-only probe then runs the
processors' embedder on one thread alone and as two copies at once, with no Kafka:
``hardware_speedup`` is what a second core adds to pure compute on this machine (shared caches
and memory bandwidth, the hypervisor's placement), and ``combined_bound`` = ``speedup_bound`` x
``hardware_speedup`` / 2 is both limits together (``--no-probe`` skips it).

    python bench/scaling.py [--items 600] [--backend auto|torch|onnx] [--precision auto] [--no-bf16] [--pin]

``--no-bf16`` starts the processors with oneDNN capped below bfloat16 (bench/processing.py);
``--pin`` pins processor k to core k. The last line is JSON with ``items_per_s_1``,
``items_per_s_2`` and ``speedup`` (target >= 1.8), ``speedup_bound``, ``efficiency``,
``hardware_speedup``, ``combined_bound`` and the CPU accounting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.broker import NO_BF16_ISA, listener_pids, running_broker  # noqa: E402
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


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds a process (or one of its threads) has used so far, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds all cores have spent on anything but idle and I/O wait (steal included: time
    the hypervisor gave elsewhere is not ours either), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def snapshot(processors: list[int], broker: list[int]) -> dict[str, object]:
    """CPU seconds so far: per processor thread, the broker, this script, the whole machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    threads = {pid: {int(t.name): cpu_seconds(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()}
               for pid in processors if Path(f"/proc/{pid}/task").exists()}
    return {"threads": threads, "broker": sum(cpu_seconds(pid) for pid in broker),
            "self": usage.ru_utime + usage.ru_stime, "machine": machine_busy_s()}


def cpu_used(before: dict, after: dict, seconds: float, items: int) -> dict[str, object]:  # type: ignore[type-arg]
    """What each party used between two snapshots: seconds, cores, and per item."""
    per_proc = {pid: {tid: cpu - before["threads"].get(pid, {}).get(tid, 0.0) for tid, cpu in threads.items()}
                for pid, threads in after["threads"].items()}
    processors = sum(sum(t.values()) for t in per_proc.values())
    broker, own = after["broker"] - before["broker"], after["self"] - before["self"]
    background = max(0.0, after["machine"] - before["machine"] - processors - broker - own)
    used = {"processors": processors, "broker": broker, "producer": own, "background": background}
    return {"cpu_s": {k: round(v, 2) for k, v in used.items()},
            "cores": {k: round(v / seconds, 2) for k, v in used.items()} if seconds > 0 else {},
            "cpu_ms_per_item": {k: round(1000 * v / items, 2) for k, v in used.items()} if items else {},
            "busy_threads": [sum(1 for v in t.values() if v >= 0.1 * max(sum(t.values()), 1e-9)) for t in per_proc.values()]}


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
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           **({"ONEDNN_MAX_CPU_ISA": NO_BF16_ISA} if args.no_bf16 else {})}
    procs = []
    for k in range(processors):
        log = (tmp / f"processor-{k}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "framewatch", "process", "--codebook", str(CODEBOOK)],
            env={**env, "FRAMEWATCH_STATE_DIR": str(tmp / f"state-{k}")}, stdout=log, stderr=subprocess.STDOUT,
        )
        if args.pin:  # at once, before the interpreter starts threads (they inherit it)
            os.sched_setaffinity(proc.pid, {k % (os.cpu_count() or 1)})
        procs.append((proc, log))
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
        broker = listener_pids(bootstrap)
        before = snapshot([p.pid for p, _ in procs], broker)
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
        after = snapshot([p.pid for p, _ in procs], broker)
        consumer.close()
        producer.close()
        cpu_s = [round(cpu_seconds(proc.pid), 2) for proc, _ in procs]
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
            "broker_pids": broker, **cpu_used(before, after, seconds, len(items)), "logs": str(tmp)}


def speedup_bound(one: dict, two: dict) -> float | None:  # type: ignore[type-arg]
    """The most 2 processors could reach over one with the CPU left to them (module docstring)."""
    per_item = one.get("cpu_ms_per_item") or {}
    cost_s = sum(float(per_item.get(k, 0)) for k in ("processors", "broker", "producer")) / 1000
    x1 = one.get("items_per_s")
    if not x1 or cost_s <= 0:
        return None
    left = (os.cpu_count() or 1) - float((two.get("cores") or {}).get("background", 0))
    return round(min(2.0, left / cost_s / float(x1)), 3)


PROBE_S = 20.0


def probe_child(backend: str, precision: str, seconds: float, start_at: float) -> None:
    """One probe process: the processors' embedder on one thread, embedding the bench stream's
    passages for *seconds* from *start_at*; prints passages/s."""
    from framewatch.processing.framing.embed import backend_embedder

    embedder = backend_embedder(precision=precision, backend=backend, threads=1)
    texts = [f"{it.title or ''} {it.text}"[:1200] for it in mixed_stream(400, seed=23)]
    embedder.embed(texts[:32])  # warm
    time.sleep(max(0.0, start_at - time.time()))
    done, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        batch = texts[done % len(texts):][:32]
        embedder.embed(batch)
        done += 32
    print(json.dumps({"passages_per_s": done / (time.monotonic() - t0)}), flush=True)


def hardware_speedup(args: argparse.Namespace) -> dict[str, object]:
    """The same embedder on one thread in 1, then 2 processes at once, no Kafka: how much a
    second core adds to pure compute on this machine (shared caches, memory bandwidth, a
    hypervisor's placement). 2 processors cannot scale past it whatever the pipeline does."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           **({"ONEDNN_MAX_CPU_ISA": NO_BF16_ISA} if args.no_bf16 else {})}
    rates = {}
    for copies in (1, 2):
        start_at = time.time() + 40  # every copy loaded and warm before the clock runs
        cmd = [sys.executable, __file__, "--probe-child", args.backend, args.precision, str(PROBE_S), str(start_at)]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1])["passages_per_s"] for p in procs]
        rates[copies] = [round(x, 1) for x in outs]
    one, two = rates[1][0], sum(rates[2])
    return {"passages_per_s_alone": one, "passages_per_s_two_at_once": rates[2], "hardware_speedup": round(two / one, 3)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-child":
        probe_child(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16", "int8"], default="auto")
    parser.add_argument("--no-bf16", action="store_true", help=f"processors with ONEDNN_MAX_CPU_ISA={NO_BF16_ISA}: a CPU without bfloat16")
    parser.add_argument("--pin", action="store_true", help="pin processor k to core k")
    parser.add_argument("--no-probe", action="store_true", help="skip the compute-only probe (1 vs 2 embedders at once)")
    args = parser.parse_args()
    print(f"cpu: {cpu_name()}, {os.cpu_count()} cores; bfloat16 {'HIDDEN (ONEDNN_MAX_CPU_ISA=' + NO_BF16_ISA + ')' if args.no_bf16 else 'as the CPU has it'}; "
          f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    items = mixed_stream(args.items, seed=23)
    with running_broker() as bootstrap:
        one = run(1, bootstrap, items, args)
        print(f"1 processor: {json.dumps(one)}", flush=True)
        two = run(2, bootstrap, items, args)
        print(f"2 processors: {json.dumps(two)}", flush=True)
    ips1, ips2 = one["items_per_s"], two["items_per_s"]
    speedup = round(float(ips2) / float(ips1), 3) if ips1 and ips2 else None  # type: ignore[arg-type]
    bound = speedup_bound(one, two)
    efficiency = round(speedup / bound, 3) if speedup and bound else None
    probe = {} if args.no_probe else hardware_speedup(args)
    if probe and bound:
        # both limits at once: the cores left by the broker and producer, each slower when both compute
        probe["combined_bound"] = round(bound * float(probe["hardware_speedup"]) / 2, 3)  # type: ignore[arg-type]
        print(f"compute alone: 1 embedder {probe['passages_per_s_alone']} passages/s, 2 at once {probe['passages_per_s_two_at_once']}: "
              f"a second core adds {probe['hardware_speedup']}x to pure compute here; with the broker's share, "
              f"2 processors can reach at most {probe['combined_bound']}x", flush=True)
    print(f"speedup {speedup} of a bound {bound} (efficiency {efficiency}); cores used, 1 processor: {one['cores']}; "
          f"2 processors: {two['cores']}; busy threads per processor {one['busy_threads']} / {two['busy_threads']}", flush=True)
    busy = max(float(one["cores"].get("background", 0)), float(two["cores"].get("background", 0)))  # type: ignore[attr-defined]
    if busy > 0.2:
        print(f"WARNING: other work used up to {busy:.2f} cores during the phases: not a clean figure", flush=True)
    print(json.dumps({"items_per_s_1": ips1, "items_per_s_2": ips2, "speedup": speedup, "speedup_bound": bound,
                      "efficiency": efficiency, **probe, "cpu_ms_per_item": [one["cpu_ms_per_item"], two["cpu_ms_per_item"]],
                      "cores_used": [one["cores"], two["cores"]], "busy_threads": [one["busy_threads"], two["busy_threads"]],
                      "bf16_hidden": args.no_bf16, "pinned": args.pin, "backend_log": two["backend_log"], "partitions": PARTITIONS,
                      "items": args.items, "backend": args.backend, "precision": args.precision,
                      "missing": [one["missing"], two["missing"]], "cpu": cpu_name(), "cores": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
