"""Issue 10's acceptance: one worker cycle over a hostile corpus beside good feeds, on a real
broker. Every hostile feed ends in a counted outcome (or its items carry the expected flags),
the worker's peak memory stays within 300 MB of its start, every good feed is produced in the
same cycle, and nothing reaches a refused address (a sentinel on 127.0.0.2 counts connections).

The cycle runs in a process of its own (``main`` below) so that its memory is the worker's alone;
the corpus (tests/helpers/hostile_feeds.py) is served from this process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from framewatch.ingest import outcomes as oc
from framewatch.settings import Settings
from tests.helpers.hostile_feeds import CASES, GOOD, SECRET, Corpus
from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

MEMORY_GROWTH_MB = 300
RETRY_AFTER_CAP = timedelta(days=8)  # a week of Retry-After at most, plus the interval and jitter
FETCHES, FLAGGED, PRODUCED = ("framewatch_ingest_fetches_total", "framewatch_ingest_items_flagged_total",
                              "framewatch_ingest_items_produced_total")


@pytest.fixture
def corpus(tmp_path: Path):
    served = Corpus(tmp_path / "corpus")
    yield served
    served.close()


def test_the_corpus_is_large_and_says_what_each_case_must_end_in() -> None:
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)
    assert all(c.outcomes and set(c.outcomes) <= {*oc.OUTCOMES} for c in CASES)
    assert all(set(c.flags) <= set(oc.FLAG_REASONS) for c in CASES)


def test_the_corpus_server_really_misbehaves(corpus: Corpus) -> None:
    """The cases have teeth: raw bytes on the wire are what their names say."""
    port = corpus.server.port

    def raw(path: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(1 << 16):
                data += chunk
            return data

    assert b"Content-Encoding: gzip, gzip" in raw("/stacked-gzip/feed")
    assert len(raw("/huge-headers/feed").split(b"\r\n\r\n", 1)[0]) > 1_000_000
    lying = raw("/content-length-lies/feed")
    head, body = lying.split(b"\r\n\r\n", 1)
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > len(body)
    with pytest.raises(ConnectionResetError):
        raw("/reset-mid-body/feed")
    assert b"Location: /endless-redirects/8" in raw("/endless-redirects/7")
    with socket.create_connection((corpus.sentinel.host, corpus.sentinel.port), timeout=10):
        pass
    # the sentinel counts in its own thread: the count comes when it accepted, not when we connected
    wait_until("the sentinel counted the probe", lambda: corpus.sentinel.connections == 1, timeout_s=10)


def test_one_cycle_over_the_hostile_corpus(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], corpus: Corpus, tmp_path: Path,
) -> None:
    settings = settings_factory(fetch_timeout_s=4)
    topic = topic_factory(settings, "raw-items")
    sources = corpus.sources()
    config = {
        "settings": {"kafka_bootstrap": settings.kafka_bootstrap, "topic_prefix": settings.topic_prefix,
                     "state_dir": str(settings.state_dir), "fetch_timeout_s": 4, "metrics_port": 0},
        "sources": sources,
        "warmup": corpus.warmup_sources(),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if corpus.cert is not None:
        env["SSL_CERT_FILE"] = str(corpus.cert[0])  # the https case's self-signed certificate
    started = datetime.now(UTC)
    done = subprocess.run(
        [sys.executable, "-c", "from tests.ingest.test_hostile_corpus import main; main()",
         str(tmp_path / "config.json"), str(tmp_path / "out.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    records = topic_reader(topic)
    problems = _problems(corpus, sources, out, records, started, done.stderr)
    report = f"{out['summary']['line']}\nmemory: {out['memory']}\n" + "\n".join(problems)
    assert not problems, report


def _problems(corpus: Corpus, sources: list[dict[str, object]], out: dict, records: list[tuple[bytes | None, bytes]],
              started: datetime, log: str) -> list[str]:
    """Every way the cycle fell short of the acceptance, one line each."""
    problems: list[str] = []
    if not out["policy_field"]:
        problems.append("Source has no allow_private: the fetch policy has not landed")
    fetches = out["metrics"].get(FETCHES, {})
    states = out["states"]
    by_source: defaultdict[str, list[dict]] = defaultdict(list)
    for _key, value in records:
        if SECRET.encode() in value:
            problems.append(f"a record holds the secret file's text: {value[:200]!r}")
        record = json.loads(value)
        by_source[record["source_id"]].append(record)
    # every feed in one cycle, each counted once
    summary = out["summary"]
    if summary["feeds"] != len(sources) or sum(summary["outcomes"].values()) != len(sources):
        problems.append(f"cycle polled {summary['feeds']} feeds ({summary['outcomes']}), not {len(sources)}")
    for case in corpus.cases():
        got = (states.get(case.name) or {}).get("last_outcome")
        counted = fetches.get(case.name, {})
        if got not in case.outcomes or counted.get(got, 0) < 1:
            why = next((ln.strip() for ln in log.splitlines() if f" {case.name}:" in ln or f" {case.name} " in ln), "")
            problems.append(f"{case.name}: outcome {got} (counted {dict(counted)}), expected {'|'.join(case.outcomes)}; {why[:240]}")
            continue
        for flag in case.flags:
            flagged = out["metrics"].get(FLAGGED, {}).get(case.name, {}).get(flag, 0)
            on_topic = sum(1 for r in by_source[case.name] if flag in (r.get("flags") or ()))
            if flagged < 1 or on_topic < 1:
                problems.append(f"{case.name}: flag {flag} counted {flagged}, on {on_topic} records of {len(by_source[case.name])}")
        links = dict(counted)
        links[got] -= 1  # the feed's own poll; the rest are the links it made the worker follow
        seen = {k for k, v in links.items() if v > 0}
        if case.link_outcomes and not seen <= set(case.link_outcomes):
            problems.append(f"{case.name}: followed links ended in {links}, allowed {case.link_outcomes}")
        if not set(case.link_required) <= seen:
            problems.append(f"{case.name}: followed links ended in {links}, needed {case.link_required}")
        when = states[case.name].get("next_poll_at")
        if when and datetime.fromisoformat(when) - started > RETRY_AFTER_CAP:
            problems.append(f"{case.name}: next poll at {when}, past the Retry-After cap")
    for name, (_handler, entries) in GOOD.items():
        got = (states.get(name) or {}).get("last_outcome")
        if got != oc.OK or len(by_source[name]) != entries:
            problems.append(f"good feed {name}: {got}, {len(by_source[name])} of {entries} items on the topic")
    for sid, count in out["metrics"].get(PRODUCED, {}).items():
        if sum(count.values()) != len(by_source[sid]):
            problems.append(f"{sid}: {sum(count.values())} items counted produced, {len(by_source[sid])} on the topic")
    memory = out["memory"]
    if memory["growth_mb"] > MEMORY_GROWTH_MB:
        problems.append(f"peak memory grew {memory['growth_mb']:.0f} MB (> {MEMORY_GROWTH_MB}): {memory}")
    if corpus.sentinel.connections:
        problems.append(f"the sentinel on {corpus.sentinel.host} got {corpus.sentinel.connections} connections: {dict(corpus.sentinel.hits)}")
    if corpus.server.hits.get("/downgrade-target/feed"):
        problems.append("the https->http redirect was followed")
    return problems



def _status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            out |= {kid} | _descendants(kid)
    return out


class MemoryWatch:
    """Peak memory of this process and its children across a block, measured from its start.

    Each process's peak is the kernel's high-water mark (VmHWM), reset to its current size at
    the start through ``clear_refs`` (so pages a forked child shares with its parent count in
    the start and the peak alike); growth is peak minus size at the start. A child born inside
    the block counts whole; children are read every 20 ms and at the end, in case one exits.
    The sum of the peaks bounds the peak of the sum from above.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.start = {pid: _status_kb(pid, "VmRSS") for pid in (self.pid, *_descendants(self.pid))}
        self.reset = {pid: _reset_peak(pid) for pid in self.start}
        self.before = {pid: _status_kb(pid, "VmHWM") for pid in self.start}  # where a reset failed
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for pid in _descendants(self.pid):
            self.peak[pid] = max(self.peak.get(pid, 0), _status_kb(pid, "VmHWM"))

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._read()

    def finish(self) -> dict[str, object]:
        """Stop sampling (children still alive) and report in MB."""
        self._stop.set()
        self._thread.join()
        self._read()
        self.peak[self.pid] = _status_kb(self.pid, "VmHWM")
        growth = {pid: max(0, peak - (self.start.get(pid, 0) if self.reset.get(pid, True) else self.before[pid]))
                  for pid, peak in self.peak.items()}
        children = sum(v for pid, v in growth.items() if pid != self.pid)
        return {"start_mb": round(self.start[self.pid] / 1024, 1), "main_peak_mb": round(self.peak[self.pid] / 1024, 1),
                "main_growth_mb": round(growth[self.pid] / 1024, 1), "children": len(self.peak) - 1,
                "children_born": len(set(self.peak) - set(self.start)), "children_growth_mb": round(children / 1024, 1),
                "peaks_reset": all(self.reset.values()), "growth_mb": round(sum(growth.values()) / 1024, 1)}


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_cycle(config: dict[str, object]) -> dict[str, object]:
    """One worker cycle over config's sources, producing to the real broker; what happened."""
    import asyncio
    import dataclasses
    import logging

    from prometheus_client import CollectorRegistry

    from framewatch.ingest.sources import Source
    from framewatch.ingest.state import IngestState
    from framewatch.ingest.worker import Worker
    from framewatch.kafka_io import make_producer
    from framewatch.metrics import IngestMetrics
    from framewatch.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("framewatch.ingest").setLevel(logging.INFO)  # each failed feed's reason, for the report
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = Settings(**config["settings"])  # type: ignore[arg-type]
    known = {f.name for f in dataclasses.fields(Source)}
    sources, warmup = ([Source(**{k: v for k, v in s.items() if k in known}) for s in config[part]]  # type: ignore[attr-defined]
                       for part in ("sources", "warmup"))
    registry = CollectorRegistry()
    producer = make_producer(settings)
    state = IngestState.for_shard(settings.state_dir, 0, 1)
    worker = Worker(settings=settings, sources=[*sources, *warmup], producer=producer, state=state,
                    metrics=IngestMetrics(registry), produce_timeout_s=60)
    out: dict[str, object] = {"policy_field": "allow_private" in known}

    async def cycle() -> None:
        async with worker.session():
            warm = await worker.cycle(warmup)
            out["warmup"] = warm.line()
            watch = MemoryWatch()
            started = time.perf_counter()
            summary = await worker.cycle(sources)
            out["elapsed_s"] = time.perf_counter() - started
            out["memory"] = watch.finish()
            out["summary"] = {"feeds": summary.feeds, "outcomes": summary.outcomes,
                              "items_produced": summary.items_produced, "line": summary.line()}

    try:
        asyncio.run(cycle())
    finally:
        producer.close(timeout=30)
    metrics: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and "feed" in sample.labels:
                label = sample.labels.get("outcome") or sample.labels.get("reason") or ""
                metrics[sample.name][sample.labels["feed"]][label] = sample.value
    out["metrics"] = metrics
    out["states"] = {sid: {"last_outcome": st.last_outcome, "failures": st.failures,
                           "next_poll_at": st.next_poll_at.isoformat() if st.next_poll_at else None}
                     for sid, st in state.feeds().items()}
    state.close()
    return out


def main() -> None:
    """Child process: ``main CONFIG OUT`` runs the cycle and writes what happened to OUT."""
    result = run_cycle(json.loads(Path(sys.argv[1]).read_text()))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
