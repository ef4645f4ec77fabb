"""``framewatch notify [--subscriptions FILE]``: the notifier component (alerts -> subscribers), following
the subscriptions the API edits (see alerts.live)."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import click
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from framewatch.contracts import Alert
from framewatch.kafka_io import (
    Message,
    StageOutput,
    decode_batch,
    ensure_topics,
    make_consumer,
    make_producer,
    run_stage,
)
from framewatch.metrics import NotifyMetrics, PipelineMetrics
from framewatch.processing.alerts import digest
from framewatch.processing.alerts.delivery import DeliveryLog, Notifier, send
from framewatch.processing.alerts.digest import DigestBook
from framewatch.processing.alerts.live import SubscriptionFollower
from framewatch.processing.alerts.subscriptions import Subscription, load_subscriptions
from framewatch.service import Component, load_settings, run_component, user_errors
from framewatch.settings import ALERTS, DEAD_LETTERS, SUBSCRIPTIONS, Settings
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

COMPONENT = "notify"
DIGEST_EVERY_S = 10.0


def group_id(settings: Settings) -> str:
    """Consumer group of the notify component."""
    return settings.group_id(COMPONENT)


def notify_stage(notifier: Notifier) -> Callable[[Sequence[Message]], StageOutput]:
    """Stage over alert batches: deliver; alerts that do not decode are dead-lettered."""

    def stage(batch: Sequence[Message]) -> StageOutput:
        oks, failures = decode_batch(Alert, batch)
        latest: dict[str, Alert] = {}
        for _, alert in oks:
            latest[alert.key] = alert  # the same alert produced twice is one alert
        notifier.handle(list(latest.values()))
        return StageOutput(produce=[], failures=failures)

    return stage


def run_notifier(
    settings: Settings,
    subscriptions_path: str | Path | None,
    stop: threading.Event,
    *,
    registry: CollectorRegistry | None = None,
    serve_metrics: bool = True,
    max_batches: int | None = None,
    idle_stop_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_ready: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Run the notifier until *stop* is set; raises ConfigError before start on a bad file.
    *clock* decides when a digest's period has ended."""
    file = None if subscriptions_path is None else Path(subscriptions_path)
    if file is not None:
        load_subscriptions(file)  # fail fast, before touching Kafka

    chart_key = settings.chart_link_key.get_secret_value() if settings.chart_link_key else None

    def body(component: Component) -> int:
        metrics = NotifyMetrics(component.registry)
        delivery_log = DeliveryLog(settings.state_dir / "notify" / "deliveries.sqlite3")
        component.closing("delivery log", delivery_log.close)
        digests = DigestBook(settings.state_dir / "notify" / "digests.sqlite3")
        component.closing("digests", digests.close)
        notifier = Notifier(
            [], delivery_log, metrics, max_attempts=settings.notify_max_attempts,
            backoff_base_s=settings.notify_backoff_base_s, timeout_s=settings.notify_timeout_s,
            failing_after=settings.notify_failing_after, sleep=sleep,
            sender=functools.partial(send, public_url=settings.public_url, chart_key=chart_key), queue_digest=digests.add,
        )
        component.closing("notifier", notifier.close)

        def use(subs: list[Subscription], rejected: dict[str, str]) -> None:
            notifier.subscriptions = subs  # one reference swap: a batch in flight keeps the set it began with
            metrics.subscriptions.set(len(subs))
            metrics.subscriptions_rejected.set(len(rejected))

        follower = SubscriptionFollower(settings, file, os.environ, use)
        use(follower.start(component.stop), {})
        ensure_topics(settings, [settings.topic(ALERTS), settings.topic(DEAD_LETTERS)])
        consumer = make_consumer(settings, group_id(settings), [settings.topic(ALERTS)])
        component.closing("consumer", consumer.close)
        producer = make_producer(settings)
        component.closing("producer", producer.close)
        component.ready.set()
        log.info("notifier: %d subscriptions (file %s, overlaid with topic %s)", len(notifier.subscriptions),
                 file or "none", settings.topic(SUBSCRIPTIONS))
        pipeline = PipelineMetrics(component.registry, COMPONENT)
        last_flush = [-DIGEST_EVERY_S]

        def send_due() -> StageOutput:
            # digests whose period ended go out on idle turns, at most every DIGEST_EVERY_S
            if time.monotonic() - last_flush[0] >= DIGEST_EVERY_S:
                last_flush[0] = time.monotonic()
                digest.flush(digests, notifier, clock(), settings.public_url)
            return StageOutput(produce=[])
        while True:
            try:
                return run_stage(
                    consumer=consumer, producer=producer, stage=notify_stage(notifier), settings=settings,
                    metrics=pipeline, stop=component.stop, max_batches=max_batches,
                    idle_stop_s=idle_stop_s, heartbeat=component.heartbeat.beat, idle=send_due,
                )
            except CommitFailedError:
                # the group rebalanced under the batch: its offsets go uncommitted and it is read
                # again (here or by the partition's new owner); the delivery log, written before
                # the commit, makes every delivery already made a duplicate, not a second send
                log.warning("commit failed after a rebalance; carrying on")
                pipeline.errors.labels(COMPONENT, "commit_failed").inc()

    return run_component(
        COMPONENT, settings, body, stop=stop, registry=registry, serve_health=serve_metrics,
        on_health=on_ready,
    )


@click.command("notify")
@click.option("--subscriptions", "subscriptions_path", type=click.Path(dir_okay=False),
              help="YAML file of subscriptions, the starting state (see framewatch.processing.alerts.subscriptions); "
                   "the API's edits on the subscriptions topic are laid over it and followed while running.")
def notify(subscriptions_path: str | None) -> None:
    """Deliver alerts to subscribers (webhook, Slack, e-mail), each alert once per subscriber."""
    with user_errors():
        if subscriptions_path is not None:
            load_subscriptions(subscriptions_path)  # fail fast, before touching Kafka
        run_notifier(load_settings(), subscriptions_path, threading.Event())
