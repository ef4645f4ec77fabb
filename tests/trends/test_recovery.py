"""Alerts exactly once on the real broker, counted as records (keys are deterministic, so a
re-emitted alert would hide behind a distinct-key count): across a kill -9 right after the alert
and a restart (the cooldowns restored from the alerts topic), and with two instances in one
group (one owner evaluates each watch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import Alert, FramedItem
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.processing.trends.recovery import owner_partition
from framewatch.settings import ALERTS, FRAMED_ITEMS, Settings
from tests.helpers.aggregator import run, seed, stable_members, wait_committed
from tests.helpers.framed_records import T0, framed, history_and_spike
from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

AGGREGATOR = """
import threading
from datetime import timedelta
from framewatch.processing.trends.cli import run_aggregator
from framewatch.settings import Settings
from tests.helpers.framed_records import T0
run_aggregator(Settings(), threading.Event(), serve_metrics=False, clock=lambda: T0 + timedelta(minutes=59),
               consumer_overrides={'session_timeout_ms': 6000, 'heartbeat_interval_ms': 1000})
"""


def alert_records(reader: Callable[..., list[tuple[bytes | None, bytes]]], settings: Settings) -> list[Alert]:
    return [contracts.decode(Alert, v) for _, v in reader(settings.topic(ALERTS))]


def more_spike(watch: str, tag: str, n: int = 6) -> list[FramedItem]:
    """New items in the current window, so the restarted aggregator evaluates it again."""
    return [framed(f"{tag}{i}", watch=watch, frame="a", at=T0 + timedelta(minutes=50, seconds=i)) for i in range(n)]


def test_kill_9_right_after_the_alert_and_a_restart_leave_one_alert_record(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list], tmp_path: Path,
) -> None:
    settings = settings_factory(batch_max_records=50)
    topic_factory(settings, FRAMED_ITEMS)
    topic_factory(settings, ALERTS)
    seed(settings, history_and_spike())
    env = {**os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix, "FRAMEWATCH_TOPIC_PARTITIONS": "3",
           "FRAMEWATCH_STATE_DIR": str(settings.state_dir), "FRAMEWATCH_BATCH_MAX_RECORDS": "50",
           "FRAMEWATCH_PARQUET_ENABLED": "false", "FRAMEWATCH_METRICS_PORT": "0"}
    log = tmp_path / "aggregator.log"
    proc = subprocess.Popen([sys.executable, "-c", AGGREGATOR], env=env, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        wait_until("the first alert", lambda: alert_records(topic_reader, settings), timeout_s=90, every_s=0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert len(alert_records(topic_reader, settings)) == 1
    # the restart re-reads what the killed instance had not committed, and more items arrive in
    # the alert's window: the window is evaluated again, and its alert is remembered
    seed(settings, more_spike("scs", "after-kill-"))
    run(settings, timeout_s=60)
    alerts = alert_records(topic_reader, settings)
    assert [(a.watch_id, a.frame, a.rule) for a in alerts] == [("scs", "a", "share_spike")]


def test_two_instances_raise_each_watch_alert_once_and_a_restart_raises_none_again(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list],
) -> None:
    settings = settings_factory(batch_max_records=100, topic_partitions=4)
    watches = ["scs", "wy"]
    # owned by partitions 1 and 2: with the range assignor (0-1 and 2-3) one per instance
    assert [owner_partition(w, 4) for w in watches] == [1, 2]
    topic_factory(settings, FRAMED_ITEMS, 4)
    topic_factory(settings, ALERTS, 4)
    stop = threading.Event()
    handled: list[int] = []

    registries = [CollectorRegistry(), CollectorRegistry()]

    def instance(registry: CollectorRegistry) -> None:
        handled.append(run_aggregator(settings, stop, serve_metrics=False, registry=registry,
                                      clock=lambda: T0 + timedelta(minutes=59),
                                      consumer_overrides={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}))

    def diagnostics() -> str:
        scores = [{w: r.get_sample_value("framewatch_spike_score", {"watch": w, "frame": "a"}) for w in watches}
                  for r in registries]
        alerts = [(a.watch_id, a.frame, a.observed_count) for a in alert_records(topic_reader, settings)]
        return f"alerts {alerts}; spike scores of frame a per instance {scores}"

    threads = [threading.Thread(target=instance, args=(r,)) for r in registries]
    for t in threads:
        t.start()
    try:
        wait_until("both instances in the group", lambda: stable_members(settings, group_id(settings)) == 2,
                   timeout_s=60, every_s=0.5)
        seed(settings, [r for w in watches for r in history_and_spike(w)])
        assert wait_committed(settings, group_id(settings), settings.topic(FRAMED_ITEMS), 90)
        try:
            wait_until("an alert per watch", lambda: len({a.watch_id for a in alert_records(topic_reader, settings)}) == 2,
                       timeout_s=120, every_s=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {diagnostics()}") from None
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(handled) == 2 and all(n > 0 for n in handled), handled
    first = alert_records(topic_reader, settings)
    assert Counter(a.watch_id for a in first) == {"scs": 1, "wy": 1}
    # one instance again, with new items in both alerts' window: cooldowns come from the topic
    seed(settings, more_spike("scs", "later-") + more_spike("wy", "later-"))
    run(settings, timeout_s=60)
    assert Counter(a.watch_id for a in alert_records(topic_reader, settings)) == {"scs": 1, "wy": 1}
