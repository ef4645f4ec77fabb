"""Chaos soak: the local stack on a real broker under faults, checked against a planted truth.

A local feed server publishes a synthetic RSS stream (``--rate`` items/s over several feeds,
with planted framing spikes, see ``feeds``) that the five components (ingest, process,
aggregate, notify, sink; each its own process as ``framewatch up`` runs them, restarted by a
supervisor when they die) carry through the soak's own Kafka broker to two webhook subscribers.
During the run (``faults``): a random component gets kill -9 every ``--kill-every``
seconds, the broker is restarted ``--broker-restarts`` times (SIGKILL, then clean stops), the
Parquet sink's tmpfs is filled for ~25 s once, and a poison record is injected every minute
(kinds in rotation). Then the stream stops, the pipeline drains (with a deadline) and the
verdict (``verdict``, which defines every figure) compares what came out with what went
in. Prints progress, a summary, and the JSON figures as the last line; exits 1 when a target is
missed (lost = doubled = 0, exact aggregates, every poison dead-lettered, every planted spike
delivered once per subscriber).

    python -m bench.chaos --minutes 10 --seed 1 --rate 20 --kill-every 20-40 --broker-restarts 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # benches may use the test helpers (feed server, ports)

from bench.chaos.faults import (  # noqa: E402
    COMPONENTS,
    POISON_KINDS,
    Broker,
    DiskFiller,
    Supervisor,
    component_children,
    inject_poison,
)
from bench.chaos.feeds import Spike, SyntheticStream, sources_yaml  # noqa: E402
from bench.chaos.stack import PREFIX, child_env, create_topics, wait_ready  # noqa: E402
from bench.chaos.verdict import Observed, Receiver, TopicTail, verdict  # noqa: E402
from tests.helpers.feed_server import FeedServer  # noqa: E402
from tests.helpers.ports import held_ports  # noqa: E402

WATCH = "social-credit"
# frames both the real model and the fake embedder assign reliably from their vocabularies
SPIKE_FRAMES = ("consumer_trust", "fairness", "dystopia")
SECRET = "chaos-webhook-secret"
SUBSCRIBERS = ("desk-a", "desk-b")
TARGET_KEYS = ("items_published", "items_framed", "lost", "doubled", "aggregates_exact", "dead_letters_expected",
               "dead_letters_found", "webhooks_expected", "webhooks_received", "duplicate_webhooks", "kills",
               "broker_restarts", "disk_full_events")
DISK_FULL_S = 25.0
READY_TIMEOUT_S = 300.0


class Interrupted(Exception):
    """SIGTERM or SIGINT: stop, and clean up on the way out."""


def _interrupt(*_: object) -> None:
    raise Interrupted


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the faulty run (the drain comes after)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=20.0, help="items published per second")
    p.add_argument("--kill-every", default="20-40", help="seconds between kill -9s, as MIN-MAX")
    p.add_argument("--broker-restarts", type=int, default=2)
    p.add_argument("--spikes", type=int, default=2, help="planted spikes (one frame each)")
    p.add_argument("--spike-size", type=int, default=120, help="items of one planted spike")
    p.add_argument("--feeds", type=int, default=6)
    p.add_argument("--poison-kinds", default=",".join(POISON_KINDS), help="kinds injected in rotation")
    p.add_argument("--no-disk-fill", action="store_true")
    p.add_argument("--model", default=None, help="FRAMEWATCH_MODEL_NAME of the processor (default: the product's)")
    p.add_argument("--drain-s", type=float, default=None, help="deadline of the drain (default max(240, run/2))")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    low, _, high = args.kill_every.partition("-")
    args.kill_range = (float(low), float(high or low))
    args.poison = [k for k in args.poison_kinds.split(",") if k]
    unknown = set(args.poison) - set(POISON_KINDS)
    if unknown:
        p.error(f"unknown poison kinds {sorted(unknown)}; known: {', '.join(POISON_KINDS)}")
    if not 1 <= args.spikes <= len(SPIKE_FRAMES):
        p.error(f"--spikes must be 1..{len(SPIKE_FRAMES)}")
    return args


def say(t0: float, text: str) -> None:
    print(f"chaos [{time.monotonic() - t0:6.0f}s] {text}", flush=True)


class Soak:
    """One run: its parts, its schedule and what it counted."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.t0 = time.monotonic()
        self.events: list[str] = []
        self.poisons: list[dict[str, Any]] = []
        self.kills = 0
        self.broker_busy = threading.Event()
        self.seen = Observed()
        self.tails: dict[str, TopicTail] = {}
        self.run_s = args.minutes * 60

    def log(self, text: str) -> None:
        say(self.t0, text)

    # --- the schedule --------------------------------------------------------------------------
    def faults(self, sup: Supervisor, broker: Broker, disk: DiskFiller | None, producer: Any) -> None:
        """Run the faults until the run's end."""
        a = self.args
        next_kill = self.t0 + self.rng.uniform(*a.kill_range)
        restarts = [self.t0 + self.run_s * (0.38 + 0.4 * i / max(1, a.broker_restarts - 1))
                    for i in range(a.broker_restarts)] if a.broker_restarts else []
        # early, away from the broker restarts, so that the aggregator is writing when it fills
        fill_at = self.t0 + self.run_s * 0.15 if disk is not None else None
        free_at = None
        next_poison = self.t0 + 30.0
        next_report = self.t0 + 15.0
        end = self.t0 + self.run_s
        while (now := time.monotonic()) < end:
            sup.tick(self.events)
            self._flush_events()
            if now >= next_kill:
                victim = self.rng.choice(COMPONENTS)
                if sup.kill(victim):
                    self.kills += 1
                    self.log(f"kill -9 {victim} (kill {self.kills})")
                next_kill = now + self.rng.uniform(*a.kill_range)
            if restarts and now >= restarts[0] and not self.broker_busy.is_set():
                restarts.pop(0)
                hard = broker.restarts % 2 == 0
                self.broker_busy.set()
                threading.Thread(target=self._restart_broker, args=(broker, hard), daemon=True).start()
            if fill_at is not None and now >= fill_at and disk is not None:
                fill_at, free_at = None, now + DISK_FULL_S
                self.log(f"disk full: filled the Parquet tmpfs with {disk.fill() >> 20} MiB")
            if free_at is not None and now >= free_at and disk is not None:
                free_at = None
                disk.free()
                self.log("disk freed")
            if a.poison and now >= next_poison and not self.broker_busy.is_set():
                self._poison(producer)
                next_poison = now + 60.0
            if now >= next_report:
                self.report()
                next_report = now + 15.0
            time.sleep(0.5)
        if free_at is not None and disk is not None:
            disk.free()

    def _restart_broker(self, broker: Broker, hard: bool) -> None:
        try:
            self.log(f"broker: {'SIGKILL' if hard else 'kafka.sh stop'}, restart {broker.restarts + 1}")
            took = broker.restart(hard, down_s=5.0)
            self.log(f"broker back after {took:.0f} s")
        except Exception as exc:
            self.events.append(f"broker restart failed: {exc}")
        finally:
            self.broker_busy.clear()

    def _poison(self, producer: Any) -> None:
        kind = self.args.poison[len(self.poisons) % len(self.args.poison)]
        try:
            p = inject_poison(producer, PREFIX, kind, len(self.poisons))
        except Exception as exc:  # the broker refused it: no poison to expect then
            self.log(f"poison {kind} not injected: {type(exc).__name__}: {exc}")
            return
        self.poisons.append(dataclasses.asdict(p))
        self.log(f"poison {kind} -> {p.topic}[{p.partition}]@{p.offset} ({p.size} bytes)")

    def _flush_events(self) -> None:
        while self.events:
            self.log(self.events.pop(0))

    # --- reading back --------------------------------------------------------------------------
    def follow(self, bootstrap: str, done: threading.Event) -> None:
        """Read the output topics every few seconds until *done* (a thread of its own)."""
        while not done.wait(5.0):
            self.read_back(bootstrap)

    def read_back(self, bootstrap: str) -> None:
        """Follow the output topics (not while the broker restarts)."""
        if self.broker_busy.is_set():
            return
        takers = {"framed-items": self.seen.take_framed, "aggregates": self.seen.take_aggregates,
                  "alerts": self.seen.take_alerts, "dead-letters": self.seen.take_dead_letters}
        for logical, take in takers.items():
            tail = self.tails.get(logical)
            if tail is None:
                tail = self.tails[logical] = TopicTail(bootstrap, PREFIX + logical)
            try:
                take(tail.poll())
            except Exception as exc:  # the broker went away under the read: next time
                self.events.append(f"reading {logical}: {type(exc).__name__}: {exc}")

    def report(self) -> None:
        load = os.getloadavg()[0]
        self.log(f"published {self.stream.count()} framed {len(self.seen.framed)} "
                 f"aggregate-keys {len(self.seen.aggregates)} alerts {len(self.seen.alerts)} "
                 f"dead-letters {len(self.seen.dead_letters)} webhooks {len(self.receiver.requests)} "
                 f"kills {self.kills} load {load:.1f}")

    stream: SyntheticStream
    receiver: Receiver


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    soak = Soak(args, workdir)
    soak.log(f"workdir {workdir}; {args.minutes:g} min at {args.rate:g} items/s, seed {args.seed}, "
             f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    holding = held_ports(2, consecutive=True)
    kafka_port, _ = holding.__enter__()
    metrics_holding = held_ports(len(COMPONENTS))
    metric_ports = metrics_holding.__enter__()
    broker = Broker(kafka_port, workdir / "kafka", logs / "kafka.sh.log")
    disk = DiskFiller(workdir / "parquet", size_mb=256)
    feeds = FeedServer().start()
    receiver = Receiver(SECRET.encode())
    sup: Supervisor | None = None
    stream: SyntheticStream | None = None
    producer = None
    figures: dict[str, Any] = {}
    try:
        why = disk.mount() if not args.no_disk_fill else "--no-disk-fill"
        if why:
            soak.log(f"disk-full fault skipped: {why}")
        broker.start()
        soak.log(f"broker up on {broker.bootstrap} (home {broker.home})")
        create_topics(broker.bootstrap)
        spikes = [Spike(k, SPIKE_FRAMES[k], soak.run_s * (0.25 + 0.3 * k), args.spike_size) for k in range(args.spikes)]
        stream = SyntheticStream(feeds, workdir / "published.jsonl", rate=args.rate, feeds=args.feeds,
                                 seed=args.seed, spikes=spikes)
        soak.stream, soak.receiver = stream, receiver
        (workdir / "sources.yaml").write_text(sources_yaml(feeds, stream.feeds))
        (workdir / "subscriptions.yaml").write_text("subscriptions:\n" + "".join(
            f"  - {{subscriber: {s}, watch: {WATCH}, frames: [{', '.join(SPIKE_FRAMES[: args.spikes])}],"
            f" rules: [share_spike], channel: {{type: webhook, url: '{receiver.url}', secret_env: CHAOS_HOOK_SECRET}}}}\n"
            for s in SUBSCRIBERS))
        codebook = ROOT / "framewatch" / "sample" / "codebook.yaml"
        cmd_args = {"ingest": ["--sources", str(workdir / "sources.yaml")], "process": ["--codebook", str(codebook)],
                    "aggregate": [], "notify": ["--subscriptions", str(workdir / "subscriptions.yaml")], "sink": []}
        env = child_env(broker.bootstrap, disk.mount_point, args.model, SECRET)
        ports = dict(zip(COMPONENTS, metric_ports, strict=True))
        sup = Supervisor(component_children(env, cmd_args, ports, workdir / "state", logs))
        sup.start_all()
        late = wait_ready(ports, READY_TIMEOUT_S)
        soak.log(f"components ready{f' except {late}' if late else ''}; load {os.getloadavg()[0]:.1f}")
        from framewatch.kafka_io import make_producer
        from framewatch.settings import Settings

        producer = make_producer(Settings(kafka_bootstrap=broker.bootstrap), max_request_size=8 << 20)
        stream.start()
        soak.t0 = time.monotonic()  # the schedule counts from the stream's start
        soak.log(f"stream started: {args.feeds} feeds, spikes {[(s.frame, round(s.at_s)) for s in spikes]}")
        reading = threading.Event()
        reader = threading.Thread(target=soak.follow, args=(broker.bootstrap, reading), daemon=True)
        reader.start()
        try:
            soak.faults(sup, broker, disk if disk.mounted else None, producer)
        finally:
            reading.set()
            reader.join(timeout=60)
        stream.stop()
        soak.log(f"stream stopped after {stream.count()} items; draining")
        figures = drain(soak, sup, broker, receiver, args)
    except Interrupted:
        soak.log("interrupted: cleaning up")
        return 130
    finally:
        for tail in soak.tails.values():
            tail.close()
        if producer is not None:
            producer.close(timeout=5)
        if stream is not None and not stream.stopped:
            stream.stop()
        if sup is not None:
            sup.stop_all()
        broker.stop(hard=False)
        disk.unmount()
        feeds.stop()
        receiver.close()
        metrics_holding.__exit__(None, None, None)
        holding.__exit__(None, None, None)
    return summarise(soak, figures, sup, broker, disk)


def targets_met(v: dict[str, Any]) -> bool:
    return (v["lost"] == 0 and v["doubled"] == 0 and v["aggregates_exact"]
            and v["dead_letters_found"] == v["dead_letters_expected"]
            and v["webhooks_received"] == v["webhooks_expected"] and v["items_published"] > 0)


def drain(soak: Soak, sup: Supervisor, broker: Broker, receiver: Receiver, args: argparse.Namespace) -> dict[str, Any]:
    """Let the pipeline finish (no more faults) until every target holds or the deadline passes."""
    published = [json.loads(line) for line in (soak.workdir / "published.jsonl").read_text().splitlines()]
    planted = [(WATCH, SPIKE_FRAMES[k]) for k in range(args.spikes)]
    deadline = time.monotonic() + (args.drain_s if args.drain_s is not None else max(240.0, soak.run_s / 2))
    v: dict[str, Any] = {}
    while True:
        sup.tick(soak.events)
        soak._flush_events()
        soak.read_back(broker.bootstrap)
        v = verdict(published, soak.seen, soak.poisons, planted, len(SUBSCRIBERS), receiver)
        if targets_met(v) or time.monotonic() >= deadline:
            break
        cells = "exact" if v["aggregates_exact"] else f"{v['_mismatched_count']} cells off"
        soak.log(f"draining: framed {v['items_framed']}/{v['items_published']}, aggregates {cells}, dead letters "
                 f"{v['dead_letters_found']}/{v['dead_letters_expected']}, webhooks "
                 f"{v['webhooks_received']}/{v['webhooks_expected']}")
        time.sleep(5)
    time.sleep(3)  # a repeat delivery in flight still counts
    soak.read_back(broker.bootstrap)
    return verdict(published, soak.seen, soak.poisons, planted, len(SUBSCRIBERS), receiver)


def summarise(soak: Soak, v: dict[str, Any], sup: Supervisor | None, broker: Broker, disk: DiskFiller) -> int:
    if not v:
        print(json.dumps({"error": "the soak did not reach its verdict"}))
        return 1
    v["kills"] = soak.kills
    v["broker_restarts"] = broker.restarts
    v["disk_full_events"] = disk.events
    crashes = {n: s.crashes for n, s in (sup.children.items() if sup else ()) if s.crashes}
    details = {k.lstrip("_"): val for k, val in v.items() if k.startswith("_")}
    details["crashes_by_component"] = crashes
    aggregate_log = soak.workdir / "logs" / "aggregate.log"
    felt = aggregate_log.read_text(errors="replace").count("No space left on device") if aggregate_log.exists() else 0
    details["enospc_log_lines"] = felt
    details["poisons"] = soak.poisons
    (soak.workdir / "verdict.json").write_text(json.dumps({**v, **details}, indent=1, default=str))
    print("--- chaos soak summary ---")
    print(f"published {v['items_published']}, framed {v['items_framed']} "
          f"(never framed {details['never_framed_count']}: first {details['never_framed']})")
    print(f"lost {v['lost']}, doubled {v['doubled']} (conflicting keys {details['conflicting_keys']}; "
          f"redelivered records with equal values {details['redelivered']})")
    print(f"aggregates exact: {v['aggregates_exact']} ({details['mismatched_count']} cells differ, "
          f"short {details['aggregate_shortfall']}, excess {details['aggregate_excess']}; first "
          f"{details['mismatched_cells'][:3]})")
    print(f"dead letters {v['dead_letters_found']}/{v['dead_letters_expected']}; missing "
          f"{details['missing_dead_letters']}; others {dict(details['other_dead_letters'])}")
    print(f"webhooks {v['webhooks_received']}/{v['webhooks_expected']}, duplicates {v['duplicate_webhooks']}, "
          f"bad signatures {details['unsigned_webhooks']}; planted alerts {details['planted_alerts']}; "
          f"other alerts {details['other_alerts'][:5]}")
    print(f"faults: kills {v['kills']}, broker restarts {v['broker_restarts']}, disk full {v['disk_full_events']} "
          f"(aggregator log lines with ENOSPC: {felt}); "
          f"exits not caused by the soak {crashes or 'none'}")
    print(f"logs and verdict.json in {soak.workdir}")
    print(json.dumps({k: v[k] for k in TARGET_KEYS}))
    return 0 if targets_met(v) else 1


if __name__ == "__main__":
    sys.exit(main())
