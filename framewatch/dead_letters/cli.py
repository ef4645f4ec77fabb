"""``framewatch dead-letters list|show|replay``: what components could not handle, and putting it back."""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import click
from kafka.errors import KafkaError

from framewatch.dead_letters import render
from framewatch.dead_letters.reader import Entry, TopicReader, to_entry
from framewatch.dead_letters.replay import (
    Planned,
    execute,
    latest_markers,
    markers_topic,
    plan,
    read_markers,
)
from framewatch.dead_letters.selection import (
    NEVER_REPLAYABLE,
    FilterError,
    Filters,
    MissingTopicError,
    UnknownIdError,
    build_filters,
    format_id,
    parse_duration,
    parse_id,
)
from framewatch.errors import FramewatchError
from framewatch.kafka_io import ensure_topics, make_producer
from framewatch.service import EXIT_RUNTIME, EXIT_USAGE, fail, load_settings
from framewatch.settings import DEAD_LETTERS, Settings
from framewatch.timeutil import utcnow

PROGRESS_AFTER_S = 2.0  # a read shorter than this shows no progress


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """User mistakes exit 2 with one line; an unreachable or failing broker exits 1."""
    try:
        yield
    except (FilterError, MissingTopicError, UnknownIdError) as exc:
        fail(str(exc), EXIT_USAGE)
    except KafkaError as exc:
        fail(f"Kafka: {exc}", EXIT_RUNTIME)
    except FramewatchError as exc:  # e.g. a client that could not connect, with its cause
        fail(str(exc), EXIT_RUNTIME)


class Progress:
    """Records read so far, on stderr, every few seconds once a read takes long."""

    def __init__(self, topic: str, every_s: float | None = None) -> None:
        self.topic = topic
        self.every_s = PROGRESS_AFTER_S if every_s is None else every_s
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.started >= self.every_s and now - self.last >= self.every_s:
            self.last = now
            click.echo(f"reading {self.topic}: {done}/{total} records ({100 * done // max(total, 1)}%)", err=True)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The filters every subcommand that selects dead letters takes."""
    options = [
        click.option("--reason", "reasons", multiple=True, help="Only this reason (repeatable)."),
        click.option("--component", "components", multiple=True, help="Only from this component (repeatable)."),
        click.option("--source-topic", "source_topics", multiple=True,
                     help="Only from this topic, with or without the prefix (repeatable)."),
        click.option("--since", help="Failed at or after: ISO-8601 (2026-11-26T09:00Z) or ago (90s, 30m, 2h, 3d, 1w)."),
        click.option("--until", help="Failed before: ISO-8601 or ago, like --since."),
        click.option("--limit", type=click.IntRange(min=1), help="At most this many (see each command)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _filters(settings: Settings, reasons: tuple[str, ...], components: tuple[str, ...],
             source_topics: tuple[str, ...], since: str | None, until: str | None) -> Filters:
    return build_filters(reasons=reasons, components=components, source_topics=source_topics,
                         since=since, until=until, topic_prefix=settings.topic_prefix, now=utcnow())


def scan(reader: TopicReader, topic: str) -> Iterator[Entry]:
    """Every record of the dead-letters topic as an entry, with progress on stderr."""
    for record in reader.records(topic, progress=Progress(topic)):
        yield to_entry(record)


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay what components could not handle (topic dead-letters)."""


@dead_letters.command("list")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="One JSON line per dead letter (ASCII only); the summary goes to stderr.")
def list_cmd(reasons: tuple[str, ...], components: tuple[str, ...], source_topics: tuple[str, ...],
             since: str | None, until: str | None, limit: int | None, as_json: bool) -> None:
    """List dead letters, one line each, and count them per component and reason.

    Oldest first; --limit keeps the most recent N. Reads the topic to its end without a
    consumer group and commits nothing; progress goes to stderr when the read is long.
    """
    settings = load_settings()
    topic = settings.topic(DEAD_LETTERS)
    with _errors():
        filters = _filters(settings, reasons, components, source_topics, since, until)
        unfiltered = filters == Filters()
        counts: Counter[tuple[str, str]] = Counter()
        undecodable = 0
        kept: list[tuple[tuple[datetime, int, int], Entry, int]] = []
        with TopicReader(settings) as reader:
            for entry in scan(reader, topic):
                if entry.letter is None:
                    undecodable += 1
                    if not unfiltered:
                        continue
                elif not filters.matches(entry.letter):
                    continue
                else:
                    counts[(entry.letter.component, entry.letter.reason)] += 1
                light, size = _without_payload(entry)
                item = (_order(entry), light, size)
                if limit is None:
                    kept.append(item)
                elif len(kept) < limit:
                    heapq.heappush(kept, item)
                else:
                    heapq.heappushpop(kept, item)
    kept.sort(key=lambda item: item[0])
    if not as_json:
        click.echo(render.header())
    for _, entry, size in kept:
        if as_json:
            click.echo(render.as_json(entry, **({"raw_size": size} if entry.letter else {})))
        else:
            click.echo(render.row(entry))
    for line in render.summary(counts, len(kept), undecodable):
        click.echo(line, err=as_json)


@dead_letters.command("show")
@click.argument("dead_letter_id", metavar="ID")
@click.option("--max-bytes", type=click.IntRange(min=0), default=4096, show_default=True,
              help="Payload bytes shown (0: all).")
@click.option("--json", "as_json", is_flag=True, help="The whole record as one ASCII-only JSON line, payload in base64.")
def show(dead_letter_id: str, max_bytes: int, as_json: bool) -> None:
    """Show one dead letter in full; ID is PARTITION:OFFSET, as `list` prints it.

    The payload is shown as UTF-8 with control characters escaped, or as hex when binary.
    """
    settings = load_settings()
    topic = settings.topic(DEAD_LETTERS)
    with _errors():
        partition, offset = parse_id(dead_letter_id)
        with TopicReader(settings) as reader:
            entry = to_entry(reader.record_at(topic, partition, offset))
            replayed = _replay_state(reader, settings, entry)
    if as_json:
        extra = {"raw_b64": entry.letter.raw_b64, "replayed": replayed} if entry.letter else {}
        click.echo(render.as_json(entry, **extra))
        return
    for line in render.details(entry, topic, replayed, max_bytes):
        click.echo(line)


@dead_letters.command("replay")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@filter_options
@click.option("--dry-run/--execute", default=True, show_default=True,
              help="Only print what would be replayed (the default), or replay it.")
@click.option("--claim-ttl", default="10m", show_default=True,
              help="How long another run's claim on a dead letter holds before this run may take it over.")
def replay(ids: tuple[str, ...], reasons: tuple[str, ...], components: tuple[str, ...],
           source_topics: tuple[str, ...], since: str | None, until: str | None, limit: int | None,
           dry_run: bool, claim_ttl: str) -> None:
    """Replay dead letters to their source topics, each at most once (dry run by default).

    The original bytes go to the source topic with the original key.
    Selects by ID(s) and the filters (--limit: at most N replayed this run, oldest first).
    Dead letters whose reason a replay cannot cure (not_json and the other decode errors) are
    held back unless chosen by --reason or by id; topics outside FRAMEWATCH_TOPIC_PREFIX are
    refused. Each replayed record carries the header framewatch-replay-of.
    """
    settings = load_settings()
    topic = settings.topic(DEAD_LETTERS)
    with _errors():
        filters = _filters(settings, reasons, components, source_topics, since, until)
        ttl = parse_duration(claim_ttl)
        chosen = frozenset(format_id(*parse_id(i)) for i in ids)
        if not dry_run:
            ensure_topics(settings, [markers_topic(settings)], partitions=1, compacted=True)
        with TopicReader(settings) as reader:
            if chosen:
                entries = [to_entry(reader.record_at(topic, *parse_id(i))) for i in sorted(chosen)]
                for entry in entries:
                    if entry.letter is None:
                        raise UnknownIdError(f"record {entry.id} of {topic} is {entry.problem}")
            else:
                entries = list(scan(reader, topic))
            entries = [e for e in entries if e.letter is not None and filters.matches(e.letter)]
            now = utcnow()
            planned, markers_end = plan(entries, settings=settings, reader=reader, chosen_reasons=filters.reasons,
                                        chosen_ids=chosen, now=now, claim_ttl=ttl, limit=limit)
            refused = [p for p in planned if p.status == "refused" and p.entry.id in chosen]
            if refused:
                raise FilterError("refusing to replay " + "; ".join(f"{p.entry.id}: {p.note}" for p in refused))
            for p in planned:
                click.echo(_plan_line(p, dry_run))
            counts = Counter(p.status for p in planned)
            tally = (f"{counts['replay']} to replay, {counts['replayed']} already replayed, {counts['claimed']} "
                     f"claimed by another run, {counts['held']} held back, {counts['refused']} refused")
            if dry_run:
                click.echo(f"dry run: {tally}" + ("; add --execute to replay" if counts["replay"] else ""))
                return
            producer = make_producer(settings, **settings.kafka_client_config(), allow_auto_create_topics=False)
            try:
                outcome = execute(planned, settings=settings, reader=reader, producer=producer,
                                  markers_end=markers_end, now=now)
            finally:
                producer.close()
    for dl_id in outcome.taken:
        click.echo(f"{'taken':<15} {dl_id:<10} another run claimed it first")
    for dl_id, error in outcome.failed.items():
        click.echo(f"{'failed':<15} {dl_id:<10} {render.one_line(error)}", err=True)
    click.echo(f"replayed {len(outcome.replayed)}, taken by another run {len(outcome.taken)}, failed {len(outcome.failed)}")
    if outcome.failed:
        fail(f"{len(outcome.failed)} replay(s) failed; their claims expire after --claim-ttl, then run again", EXIT_RUNTIME)


def _plan_line(p: Planned, dry_run: bool) -> str:
    letter = p.letter
    if p.status == "replay":
        label = "would replay" if dry_run else "replaying"
        doomed = (f"  warning: {render.one_line(letter.reason)} will likely fail again"
                  if letter.reason in NEVER_REPLAYABLE else "")
        return (f"{label:<15} {p.entry.id:<10} {render.one_line(letter.component, 12):<12} "
                f"{render.one_line(letter.reason, 16):<16} -> {render.source_of(letter)} "
                f"key {render.key_text(letter)} ({len(letter.raw)} bytes){doomed}")
    label = {"replayed": "already", "claimed": "claimed", "held": "warning: held", "refused": "refused"}[p.status]
    return f"{label:<15} {p.entry.id:<10} {render.one_line(p.note, 240)}"


def _replay_state(reader: TopicReader, settings: Settings, entry: Entry) -> str | None:
    topic = markers_topic(settings)
    if not reader.exists(topic):
        return None
    marker = latest_markers(read_markers(reader, topic)).get(entry.id)
    if marker is None or marker.digest != entry.digest:
        return None
    if marker.state == "replayed":
        return f"yes, to {marker.where()} (run {marker.run_id})"
    return f"claimed by run {marker.run_id} at {marker.at:%Y-%m-%dT%H:%M:%SZ}, not confirmed"


def _order(entry: Entry) -> tuple[datetime, int, int]:
    at = entry.letter.failed_at if entry.letter else datetime.min.replace(tzinfo=UTC)
    return at, entry.partition, entry.offset


def _without_payload(entry: Entry) -> tuple[Entry, int]:
    """*entry* without its payload (a list holds many), and the payload's size."""
    if entry.letter is None:
        return entry, 0
    size = len(entry.letter.raw)
    return dataclasses.replace(entry, letter=dataclasses.replace(entry.letter, raw_b64="")), size
