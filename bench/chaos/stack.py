"""Setting up the chaos soak's stack: the children's environment, the topics, readiness."""

from __future__ import annotations

import os
import time
from pathlib import Path

PREFIX = "chaos."


def child_env(bootstrap: str, lake: Path, model: str | None, secret: str) -> dict[str, str]:
    """The children's environment: the host's, minus its FRAMEWATCH_* (the shared broker's), plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}
    env.update({
        "FRAMEWATCH_KAFKA_BOOTSTRAP": bootstrap, "FRAMEWATCH_TOPIC_PREFIX": PREFIX,
        "FRAMEWATCH_TOPIC_PARTITIONS": "3", "FRAMEWATCH_SINK_URL": str(lake), "FRAMEWATCH_SINK_FLUSH_S": "5",
        "FRAMEWATCH_BATCH_MAX_WAIT_MS": "300", "FRAMEWATCH_METRICS_HOST": "127.0.0.1",
        "CHAOS_HOOK_SECRET": secret, "HF_HUB_OFFLINE": "1",
    })
    if model:
        env["FRAMEWATCH_MODEL_NAME"] = model
    return env


def wait_ready(ports: dict[str, int], timeout_s: float) -> list[str]:
    """Wait until every component answers /readyz with 200; returns those that never did."""
    import urllib.error
    import urllib.request

    waiting = dict(ports)
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        del waiting[name]
            except (OSError, urllib.error.URLError):
                pass
        time.sleep(1.0)
    return sorted(waiting)


def create_topics(bootstrap: str) -> None:
    """The pipeline's topics; raw-items takes records up to 6 MiB, so that a poison over the
    decoders' 4 MiB limit reaches the processor's decoder (the broker's 1 MiB default would
    refuse it at the door)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from framewatch.kafka_io import ensure_topics
    from framewatch.settings import Settings
    from framewatch.stack import TOPICS

    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=PREFIX, topic_partitions=3)
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="chaos-admin")
    try:
        admin.create_topics([NewTopic(settings.topic("raw-items"), 3, 1,
                                      topic_configs={"max.message.bytes": str(6 << 20)})])
    finally:
        admin.close()
    ensure_topics(settings, [settings.topic(t) for t in TOPICS])
