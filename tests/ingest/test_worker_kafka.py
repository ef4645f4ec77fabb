"""Ingest on a real broker: exactly N records for N entries, nothing on a 304 poll, no duplicate
keys after kill -9 and a restart, and nothing marked produced while Kafka is unreachable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch.contracts import RawItem, decode
from framewatch.ingest import outcomes as oc
from framewatch.ingest.sources import Source
from framewatch.ingest.state import IngestState
from framewatch.ingest.worker import Worker
from framewatch.kafka_io import make_producer
from framewatch.metrics import IngestMetrics
from framewatch.settings import Settings
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.ports import refusing_port

pytestmark = pytest.mark.integration

FEEDS = {
    "alpha": [("a1", "Budget"), ("a2", "Housing"), ("a3", "Transit")],
    "beta": [("b1", "Schools"), ("b2", "Clinics")],
    "gamma": [("c1", "Ports"), ("c2", "Tariffs"), ("c3", "Wages"), ("c4", "Rents")],
}
N = sum(len(v) for v in FEEDS.values())
# the console script installed beside this interpreter (framewatch.cli has no __main__ block)
FRAMEWATCH = [str(Path(sys.executable).with_name("framewatch"))]


@pytest.fixture
def server():
    srv = FeedServer().start()
    yield srv
    srv.stop()


def serve_feeds(server: FeedServer, *, etags: bool) -> list[Source]:
    for sid, entries in FEEDS.items():
        server.routes[f"/{sid}.xml"] = Route(rss(sid, entries, link=f"https://{sid}.example.org/"),
                                             etag=f'"{sid}-1"' if etags else None)
    return [Source(sid, server.url(f"/{sid}.xml"), "news", outlet=sid.title(), allow_private=True) for sid in FEEDS]


def make_worker(settings: Settings, sources: list[Source], producer: object) -> tuple[Worker, IngestState, CollectorRegistry]:
    state = IngestState.for_shard(settings.state_dir, settings.shard_index, settings.shard_count)
    registry = CollectorRegistry()
    worker = Worker(settings=settings, sources=sources, producer=producer, state=state,
                    metrics=IngestMetrics(registry), produce_timeout_s=10)
    return worker, state, registry


def test_n_entries_make_exactly_n_records_and_a_304_poll_makes_none(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], server: FeedServer,
) -> None:
    settings = settings_factory(fetch_timeout_s=5)
    topic = topic_factory(settings, "raw-items")
    producer = make_producer(settings)
    try:
        worker, state, registry = make_worker(settings, serve_feeds(server, etags=True), producer)
        first = worker.run(once=True)
        assert first.outcomes == {oc.OK: 3} and first.items_produced == N
        second = worker.run(once=True)
        assert second.outcomes == {oc.NOT_MODIFIED: 3} and second.items_produced == 0
        state.close()
    finally:
        producer.close(timeout=5)
    records = topic_reader(topic)
    assert len(records) == N
    for key, value in records:
        item = decode(RawItem, value)
        assert key == item.item_id.encode()
        assert item.source_id in FEEDS and item.kind == "article"
    assert len({k for k, _ in records}) == N
    assert registry.get_sample_value("framewatch_ingest_items_produced_total", {"feed": "gamma"}) == 4


def test_kafka_outage_marks_nothing_produced(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], server: FeedServer,
) -> None:
    sources = serve_feeds(server, etags=True)
    good = settings_factory(fetch_timeout_s=5)
    topic = topic_factory(good, "raw-items")
    refusing = refusing_port()
    closed = good.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{refusing.__enter__()}"})  # no broker answers
    dead = make_producer(closed, max_block_ms=1000, api_version=(3, 0))
    try:
        worker, state, registry = make_worker(closed, sources, dead)
        summary = worker.run(once=True)
        assert summary.outcomes == {oc.OK: 3}
        assert summary.items_produced == 0 and summary.produce_failed_feeds == 3
        assert state.produced_count() == 0
        assert all(f.etag is None for f in state.feeds().values())  # validators not advanced
        assert registry.get_sample_value(
            "framewatch_ingest_items_skipped_total", {"feed": "alpha", "reason": oc.SKIP_PRODUCE_FAILED}) == 3
        state.close()
    finally:
        dead.close(timeout=1)
        refusing.__exit__(None, None, None)
    # Kafka is back: the same content is fetched again (no 304) and produced once
    producer = make_producer(good)
    try:
        worker, state, _ = make_worker(good, sources, producer)
        assert worker.run(once=True).items_produced == N
        state.close()
    finally:
        producer.close(timeout=5)
    assert len(topic_reader(topic)) == N


def test_kill_9_after_the_first_cycle_then_restart_makes_no_duplicates(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list[tuple[bytes | None, bytes]]], server: FeedServer, tmp_path: Path,
) -> None:
    settings = settings_factory()
    topic = topic_factory(settings, "raw-items")
    serve_feeds(server, etags=False)  # no validators: every poll returns every entry again
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text("sources:\n" + "".join(
        f"  - id: {sid}\n    url: {server.url(f'/{sid}.xml')}\n    kind: news\n    poll_interval: 15m\n    allow_private: true\n"
        for sid in FEEDS
    ))
    env = {
        **os.environ,
        "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "FRAMEWATCH_STATE_DIR": str(settings.state_dir),
        "FRAMEWATCH_METRICS_PORT": "0",
        "FRAMEWATCH_LOG_LEVEL": "INFO",
    }
    cmd = [*FRAMEWATCH, "ingest", "--sources", str(sources_file)]
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(log_path, b"ingest: 3 feeds in", timeout_s=25)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    # one more entry appears, then the worker restarts (here: one cycle over every feed)
    server.routes["/beta.xml"] = Route(rss("beta", [*FEEDS["beta"], ("b3", "Bridges")], link="https://beta.example.org/"))
    again = subprocess.run([*cmd, "--once"], env=env, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert b"1 items produced" in again.stdout and b"9 skipped" in again.stdout
    keys = [k for k, _ in topic_reader(topic)]
    assert len(keys) == N + 1 and len(set(keys)) == len(keys)


def test_sigterm_shuts_the_worker_down_cleanly(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], server: FeedServer, tmp_path: Path,
) -> None:
    settings = settings_factory()
    topic_factory(settings, "raw-items")
    serve_feeds(server, etags=True)
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - id: alpha\n    url: {server.url('/alpha.xml')}\n    kind: news\n    allow_private: true\n")
    env = {**os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix, "FRAMEWATCH_STATE_DIR": str(settings.state_dir),
           "FRAMEWATCH_METRICS_PORT": "0", "FRAMEWATCH_LOG_LEVEL": "INFO"}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*FRAMEWATCH, "ingest", "--sources", str(sources_file), "--shard", "0/1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(log_path, b"ingest: 1 feeds in", timeout_s=25)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert b"Traceback" not in log_path.read_bytes()
    state = IngestState.for_shard(settings.state_dir, 0, 1)
    assert state.produced_count() == 3
    state.close()


def test_cli_rejects_an_invalid_sources_file(tmp_path: Path) -> None:
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - id: ok-feed\n    url: https://x.example/rss\n    kind: news\n  - id: Bad Id\n    url: https://y.example/rss\n    kind: news\n")
    result = subprocess.run([*FRAMEWATCH, "ingest", "--sources", str(bad), "--once"],
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{bad}:5:" in err and "sources[1].id" in err


def _wait_for(path: Path, needle: bytes, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the worker's log:\n{path.read_text()[-3000:]}")
