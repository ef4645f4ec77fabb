"""``framewatch ingest``: poll the sources file's feeds (this shard's share) into raw-items."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import Any

import click

SHARD = re.compile(r"^(\d+)/(\d+)$")
COMPONENT = "ingest"


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N; None when not given."""
    if value is None:
        return None
    match = SHARD.match(value.strip())
    if not match or int(match.group(1)) >= int(match.group(2)):
        raise click.BadParameter(f"{value!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(match.group(1)), int(match.group(2))


@click.command()
@click.option("--sources", "sources_path", required=True, type=click.Path(path_type=Path),
              help="YAML sources file (see framewatch.ingest.sources).")
@click.option("--once", is_flag=True, help="Poll every feed of this shard once, print a summary, exit.")
@click.option("--shard", default=None, help="This worker's shard as I/N (default FRAMEWATCH_SHARD_INDEX/COUNT).")
def ingest(sources_path: Path, once: bool, shard: str | None) -> None:
    """Poll news and forum feeds and produce their entries to the raw-items topic."""
    from framewatch.ingest.sources import load_sources
    from framewatch.service import fail, load_settings, user_errors

    parsed_shard = parse_shard(shard)
    overrides: dict[str, Any] = {}
    if parsed_shard is not None:
        overrides = {"shard_index": parsed_shard[0], "shard_count": parsed_shard[1]}
    settings = load_settings(**overrides)
    if settings.shard_index >= settings.shard_count:
        fail(f"shard {settings.shard_index} is not below shard count {settings.shard_count}")
    with user_errors():
        sources = load_sources(sources_path)
    sys.exit(run_ingest(settings, sources, once))


def run_ingest(settings: Any, sources: list[Any], once: bool, stop: threading.Event | None = None) -> int:
    """Run the worker as a component (a single cycle with *once*); returns the exit code."""
    from kafka.errors import KafkaError

    from framewatch.ingest.state import IngestState
    from framewatch.ingest.worker import Worker
    from framewatch.kafka_io import ensure_topics, make_producer
    from framewatch.metrics import IngestMetrics
    from framewatch.service import EXIT_RUNTIME, Component, fail, run_component
    from framewatch.settings import RAW_ITEMS

    def body(component: Component) -> int:
        try:
            ensure_topics(settings, [settings.topic(RAW_ITEMS)])
            producer = make_producer(settings)
        except KafkaError as exc:
            fail(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}", EXIT_RUNTIME)
        component.closing("producer", lambda: producer.close(timeout=10))
        state = IngestState.for_shard(settings.state_dir, settings.shard_index, settings.shard_count)
        component.closing("state", state.close)
        worker = Worker(settings=settings, sources=sources, producer=producer, state=state,
                        metrics=IngestMetrics(component.registry), heartbeat=component.heartbeat.beat)
        component.ready.set()  # /readyz: the producer is up; the first cycle may take long
        summary = worker.run(once=once, stop=component.stop)
        if once:
            click.echo(summary.line())
        return 1 if summary.produce_failed_feeds else 0

    return run_component(COMPONENT, settings, body, stop=stop, serve_health=not once)
