"""`framewatch sink` on the real broker, over the local folder and SeaweedFS: records in, files
that plain polars reads; committed only once written; a replay rewrites the same files; bad
records dead-lettered; kill -9 mid-batch and a restart leave exactly one row per key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import DeadLetter
from framewatch.kafka_connect import connect
from framewatch.kafka_io import ensure_topics
from framewatch.processing.sink.cli import COMPONENT, SinkOptions, run_sink
from framewatch.settings import AGGREGATES, ALERTS, DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings
from tests.helpers.aggregator import committed_to_end
from tests.helpers.framed_records import T0
from tests.helpers.waiting import wait_until
from tests.sink.conftest import Lake
from tests.sink.records import (
    NEXT_DAY,
    WATCHES,
    aggregate_value,
    alert_value,
    framed_value,
    raw_value,
)

ROOT = Path(__file__).resolve().parents[2]


def produce(settings: Settings, records: list[tuple[str, str | None, bytes | None]]) -> None:
    """(logical topic, key, value) records, acknowledged, into topics of settings.topic_partitions."""
    ensure_topics(settings, [settings.topic(t) for t in (RAW_ITEMS, FRAMED_ITEMS, AGGREGATES, ALERTS, DEAD_LETTERS)])
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    for logical, key, value in records:
        producer.send(settings.topic(logical), key=key.encode() if key else None, value=value)
    producer.flush()
    producer.close()


def framed_records(n: int, start: int = 0) -> list[tuple[str, str | None, bytes | None]]:
    out: list[tuple[str, str | None, bytes | None]] = []
    for i in range(start, start + n):
        watch = WATCHES[i % 2]
        out.append((FRAMED_ITEMS, contracts.framed_key(f"item{i}", watch),
                    framed_value(i, watch, at=T0 if i % 3 else NEXT_DAY)))
    return out


def sink_settings(settings_factory: Callable[..., Settings], lake: Lake, **overrides: object) -> Settings:
    return settings_factory(**{"sink_flush_s": 1.0, **lake.overrides, **overrides})


def run_until_idle(settings: Settings, registry: CollectorRegistry | None = None, **options: object) -> int:
    return run_sink(settings, threading.Event(), serve_metrics=False, registry=registry,
                    options=SinkOptions(**{"idle_stop_s": 2.0, **options}))  # type: ignore[arg-type]


def test_records_in_parquet_out_with_bad_ones_dead_lettered(
    settings_factory: Callable[..., Settings], lake: Lake, topic_reader: Callable[..., list]
) -> None:
    settings = sink_settings(settings_factory, lake, sink_flush_rows=7)  # many small files
    records = framed_records(40)
    records += [(RAW_ITEMS, f"item{i}", raw_value(i)) for i in range(5)]
    records += [(AGGREGATES, f"a{i}", aggregate_value(i)) for i in range(3)] + [(ALERTS, "al", alert_value())]
    records += [(FRAMED_ITEMS, "bad", b"{not json"), (FRAMED_ITEMS, "scs:item0", None)]  # and a tombstone
    registry = CollectorRegistry()
    run_sink_then = threading.Thread(target=run_until_idle, args=(settings, registry),
                                     kwargs={"compact_every_s": 0.2, "compact_min_files": 3})
    produce(settings, records)
    run_sink_then.start()
    run_sink_then.join(timeout=90)
    assert not run_sink_then.is_alive()

    framed = lake.latest("framed_items")
    assert sorted(framed["key"].to_list()) == sorted(k for t, k, _ in records[:40] if k)
    assert framed.filter(framed["key"] == "scs:item2")["date"].to_list()[0].isoformat() == "2026-11-26"
    assert lake.latest("items").height == 5 and lake.latest("aggregates").height == 3
    assert lake.latest("alerts")["top_items"].to_list()[0][0]["title"] == "Spike story"
    assert any(f.rpartition("/")[2].startswith("c-") for f in lake.files("framed_items"))  # the compactor ran
    dead = [contracts.decode(DeadLetter, v) for _, v in topic_reader(settings.topic(DEAD_LETTERS))]
    assert [(d.component, d.reason, d.raw) for d in dead] == [(COMPONENT, "not_json", b"{not json")]
    assert registry.get_sample_value("framewatch_dead_letters_total", {"component": COMPONENT, "reason": "not_json"}) == 1
    for logical in (RAW_ITEMS, FRAMED_ITEMS, AGGREGATES, ALERTS):
        assert committed_to_end(settings, settings.group_id(COMPONENT), settings.topic(logical))
    # the sink's own metrics: rows by table as stored, and the compactor's work
    rows = {t: registry.get_sample_value("framewatch_sink_rows_written_total", {"table": t})
            for t in ("framed_items", "items", "aggregates", "alerts")}
    assert rows == {"framed_items": 40, "items": 5, "aggregates": 3, "alerts": 1}
    assert (registry.get_sample_value("framewatch_sink_bytes_written_total", {"table": "framed_items"}) or 0) > 0
    assert (registry.get_sample_value("framewatch_sink_compactions_total", {"outcome": "ok"}) or 0) >= 1


def test_a_replay_of_the_same_offsets_rewrites_the_same_files(
    settings_factory: Callable[..., Settings], lake: Lake
) -> None:
    records = framed_records(60)
    # one window of exactly the records there are: the same batch whenever it is read
    settings = sink_settings(settings_factory, lake, sink_flush_rows=len(records), sink_flush_s=20.0)
    produce(settings, records)
    run_until_idle(settings, max_batches=1)
    files = lake.files("framed_items")
    first = lake.rows("framed_items")
    assert first.height == 60 and len(files) == first.select("_partition", "watch", "date").n_unique() > 6

    admin = connect(KafkaAdminClient, settings, client_id="test-admin")
    try:  # forget the group's offsets: the next run reads everything again
        admin.delete_groups([settings.group_id(COMPONENT)])
    finally:
        admin.close()
    run_until_idle(settings, max_batches=1)
    again = lake.rows("framed_items")
    assert lake.files("framed_items") == files
    assert again.height == 60  # replaced, not doubled
    assert again["_written_at"].min() > first["_written_at"].max()  # and really written again


# `framewatch sink` as its command runs it, with a short group session: the restart need not
# wait the default 45 s for the killed member to expire
SINK_PROCESS = """
import logging, threading
from framewatch.processing.sink.cli import SinkOptions, run_sink
from framewatch.service import load_settings
logging.basicConfig(level="INFO")
run_sink(load_settings(), threading.Event(), options=SinkOptions(consumer_overrides={"session_timeout_ms": 6000}))
"""


def sink_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("kafka_bootstrap", "topic_prefix", "topic_partitions", "state_dir", "sink_url", "sink_s3_endpoint",
                 "sink_s3_access_key_id", "sink_flush_s", "sink_flush_rows"):
        value = getattr(settings, name)
        if value is not None:
            env[f"FRAMEWATCH_{name.upper()}"] = str(value)
    if settings.sink_s3_secret_access_key is not None:
        env["FRAMEWATCH_SINK_S3_SECRET_ACCESS_KEY"] = settings.sink_s3_secret_access_key.get_secret_value()
    env["FRAMEWATCH_METRICS_PORT"] = "0"
    return env


def test_kill_9_mid_batch_and_a_restart_leave_exactly_one_row_per_key(
    settings_factory: Callable[..., Settings], lake: Lake, tmp_path: Path
) -> None:
    settings = sink_settings(settings_factory, lake, sink_flush_rows=150)  # each window: up to 12 files
    records = framed_records(600)
    produce(settings, records)
    log = tmp_path / "sink.log"
    proc = subprocess.Popen([sys.executable, "-c", SINK_PROCESS], cwd=ROOT, env=sink_env(settings),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:  # the first file of a window is written: the window's other files and its commit are not
        wait_until("the sink's first file", lambda: lake.files("framed_items") or proc.poll() is not None, 60, 0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert not committed_to_end(settings, settings.group_id(COMPONENT), settings.topic(FRAMED_ITEMS))
    if lake.kind == "local":  # what a kill during a write leaves: a temp file of a dead process
        folder = Path(lake.root) / lake.files("framed_items")[0].rpartition("/")[0]
        host = os.uname().nodename.replace(".", "_")
        (folder / f".b-00000-1-2.parquet.{host}-{proc.pid}.0badc0de.tmp").write_bytes(b"half a file")

    run_until_idle(settings)
    latest = lake.latest("framed_items")
    assert latest.height == 600 and latest["key"].n_unique() == 600
    assert sorted(latest["key"].to_list()) == sorted(k for _, k, _ in records if k)
    assert lake.rows("framed_items").height >= 600
    assert [f for f in lake.storage.list("") if f.name.endswith(".tmp")] == []
    assert committed_to_end(settings, settings.group_id(COMPONENT), settings.topic(FRAMED_ITEMS))
