"""The notifier component on the real broker: a crash between the webhook POST and the delivery
log's write. Promised: at-least-once per (alert, subscriber), at most one repeat, and the repeat
carries the same delivery id (``webhook-id``) so the receiver can drop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from framewatch import contracts
from framewatch.processing.alerts import signing
from framewatch.processing.alerts.cli import group_id
from framewatch.settings import ALERTS, Settings
from tests.helpers.aggregator import wait_committed
from tests.helpers.alerts import alert
from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import Receiver

pytestmark = pytest.mark.integration


def start_notifier(settings: Settings, subs: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FRAMEWATCH_TOPIC_PREFIX": settings.topic_prefix, "FRAMEWATCH_STATE_DIR": str(settings.state_dir),
           "FRAMEWATCH_METRICS_PORT": "0", "FRAMEWATCH_NOTIFY_TIMEOUT_S": "30", "HOOK_SECRET": "s3cret"}
    return subprocess.Popen([sys.executable, "-m", "framewatch", "notify", "--subscriptions", str(subs)],
                            env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_a_crash_between_the_post_and_the_delivery_log_repeats_once_with_the_same_id(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], tmp_path: Path,
) -> None:
    settings = settings_factory()
    topic_factory(settings, ALERTS)
    receiver = Receiver(hold=True)
    subs = tmp_path / "subs.yaml"
    subs.write_text("subscriptions:\n  - subscriber: desk\n    watch: scs\n"
                    f"    channel: {{type: webhook, url: '{receiver.url}', secret_env: HOOK_SECRET}}\n")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    spike = alert()
    producer.send(settings.topic(ALERTS), key=spike.key.encode(), value=contracts.encode(spike))
    producer.flush()
    producer.close()
    log = tmp_path / "notify.log"
    proc = start_notifier(settings, subs, log)
    try:
        wait_until("the first POST", lambda: receiver.requests, timeout_s=60)
        proc.send_signal(signal.SIGKILL)  # the POST arrived; its answer, the log and the commit never came
        proc.wait(timeout=10)
        receiver.release.set()
        proc = start_notifier(settings, subs, log)
        assert wait_committed(settings, group_id(settings), settings.topic(ALERTS), 60), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.close()
    assert len(receiver.requests) == 2, "delivered after the restart, exactly once more"
    (_, first_body), (_, again_body) = receiver.requests
    ids = {signing.verify(b"s3cret", headers, body, time.time(), tolerance_s=600) for headers, body in receiver.requests}
    assert first_body == again_body
    # what a receiver keeping the ids it has seen ends up with: one notification
    assert len(ids) == 1
    assert "s3cret" not in log.read_text(), "the signing secret is never logged"
