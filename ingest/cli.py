"""``framewatch ingest``: poll the sources file's feeds (this shard's share) into raw-items."""

from __future__ import annotations

import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N; None when not given."""
    if value is None:
        return None
    match = SHARD.match(value.strip())
    if not match or int(match.group(1)) >= int(match.group(2)):
        raise click.BadParameter(f"{value!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(match.group(1)), int(match.group(2))


def fail(message: str, code: int) -> None:
    """Print one line to stderr and exit (no traceback for the user's mistakes)."""
    click.echo(f"framewatch ingest: {message}", err=True)
    sys.exit(code)


@click.command()
@click.option("--sources", "sources_path", required=True, type=click.Path(path_type=Path),
              help="YAML sources file (see framewatch.ingest.sources).")
@click.option("--once", is_flag=True, help="Poll every feed of this shard once, print a summary, exit.")
@click.option("--shard", default=None, help="This worker's shard as I/N (default FRAMEWATCH_SHARD_INDEX/COUNT).")
def ingest(sources_path: Path, once: bool, shard: str | None) -> None:
    """Poll news and forum feeds and produce their entries to the raw-items topic."""
    from pydantic import ValidationError

    from framewatch.errors import ConfigError
    from framewatch.ingest.sources import load_sources
    from framewatch.settings import Settings

    parsed_shard = parse_shard(shard)
    overrides: dict[str, Any] = {}
    if parsed_shard is not None:
        overrides = {"shard_index": parsed_shard[0], "shard_count": parsed_shard[1]}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"invalid setting FRAMEWATCH_{str(first['loc'][0]).upper()}: {first['msg']}", 2)
    if settings.shard_index >= settings.shard_count:
        fail(f"shard {settings.shard_index} is not below shard count {settings.shard_count}", 2)
    try:
        sources = load_sources(sources_path)
    except ConfigError as exc:
        fail(str(exc), 2)
    sys.exit(_serve(settings, sources, once))


def _serve(settings: Any, sources: list[Any], once: bool) -> int:
    """Run the worker; returns the exit code."""
    from kafka.errors import KafkaError
    from prometheus_client import CollectorRegistry

    from framewatch.health import HealthServer
    from framewatch.ingest.state import IngestState
    from framewatch.ingest.worker import Worker
    from framewatch.kafka_io import ensure_topics, make_producer
    from framewatch.metrics import IngestMetrics
    from framewatch.settings import RAW_ITEMS

    try:
        ensure_topics(settings, [settings.topic(RAW_ITEMS)])
        producer = make_producer(settings)
    except KafkaError as exc:
        fail(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}", 1)
    registry = CollectorRegistry()
    state = IngestState.for_shard(settings.state_dir, settings.shard_index, settings.shard_count)
    worker = Worker(settings=settings, sources=sources, producer=producer, state=state,
                    metrics=IngestMetrics(registry))
    health = None
    if not once:
        health = HealthServer(registry, settings.metrics_host, settings.metrics_port,
                              ready=lambda: worker.cycles > 0).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        summary = worker.run(once=once, stop=stop)
    finally:
        producer.close(timeout=10)
        state.close()
        if health is not None:
            health.stop()
    if once:
        click.echo(summary.line())
    return 1 if summary.produce_failed_feeds else 0
