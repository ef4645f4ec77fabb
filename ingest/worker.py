"""The ingest worker: poll the due feeds of this shard, parse, produce new items, remember.

One cycle fetches every due feed concurrently (the fetcher bounds it per host and overall),
parses each body, follows XenForo threads, drops entries produced before, sends the rest to
``raw-items`` keyed by ``item_id``, waits until the broker acknowledged them, and only then
writes the new state (produced ids, validators, thread cursors, next poll) in one transaction.
If Kafka is down the feed's items are not marked and its validators and cursors are not
advanced, so the next poll fetches the same content again: nothing is lost.

Parsing runs off the event loop (``detect.ParsePool``), so a heavy feed never delays the others.
One bad item never stops a feed: items are encoded one by one, cut to the broker's limit
(flagged ``truncated``), or skipped with a reason when they cannot be encoded or the producer
refuses them; only a broker error (unreachable, unacknowledged) stops the cycle's produce.

Sharding: a feed belongs to shard ``stable_hash(source.id) % shard_count``. Every worker reads
the same sources file and picks its own feeds, so there is no coordination and no broker in the
scheduling path. We chose this over a Kafka "feeds" topic with consumer-group assignment because
a feed's state (validators, produced ids, thread cursors) lives in the shard's local SQLite
file: a group rebalance would move feeds between workers without their state and cause
refetches and re-produces on every deploy, while a static shard keeps a feed on one worker and
one state file for good. The hash is SHA-256, not Python's ``hash()``, which is salted per
process. Changing ``shard_count`` reshuffles feeds onto fresh state files; entries still in the
feeds may be produced once more, which downstream tolerates because keys are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError

from framewatch.contracts import RawItem, encode
from framewatch.ingest import outcomes as oc
from framewatch.ingest.addresses import FetchPolicy
from framewatch.ingest.fetcher import Fetcher, FetchResult
from framewatch.ingest.parse import detect as feed_parser
from framewatch.ingest.parse.detect import ParsePool
from framewatch.ingest.parse.results import fit_item
from framewatch.ingest.parse.thread_memory import ThreadMemory
from framewatch.ingest.schedule import feed_jitter, next_poll_at
from framewatch.ingest.sources import Source
from framewatch.ingest.state import FeedState, IngestState, ThreadCursor
from framewatch.ingest.threads import DEFAULT_MAX_PAGES, ThreadReading, has_new_posts, read_thread
from framewatch.metrics import IngestMetrics
from framewatch.settings import RAW_ITEMS, Settings
from framewatch.timeutil import utcnow

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.5  # how often an idle worker checks its stop event
BATCH_WINDOW_S = 1.0  # feeds falling due within this window share one cycle (one flush, one commit)
RECORD_OVERHEAD = 256  # bytes of a record beside its key and value (batch and record headers)
SKIP_UNENCODABLE, SKIP_REJECTED = oc.SKIP_UNENCODABLE, oc.SKIP_REJECTED
# The producer's verdict on one record before it is sent: that item is skipped, the rest goes on
_RECORD_ERRORS: tuple[type[KafkaError], ...] = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidRecordError, kafka_errors.CorruptRecordError,
)


def shard_of(source_id: str, shard_count: int) -> int:
    """The shard a feed belongs to: stable across processes, machines and Python versions."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def in_shard(source_id: str, shard_index: int, shard_count: int) -> bool:
    """True when this shard polls the feed."""
    return shard_of(source_id, shard_count) == shard_index


@dataclass(slots=True)
class FeedPoll:
    """One feed's poll in a cycle, filled in as it goes through fetch, parse and produce."""

    source: Source
    before: FeedState
    result: FetchResult
    outcome: str
    items: list[RawItem] = field(default_factory=list)
    threads: ThreadReading = field(default_factory=ThreadReading)
    skipped: Counter[str] = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)
    flagged: Counter[str] = field(default_factory=Counter)  # flags of the acked items
    produce_failed: bool = False


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """What one cycle did."""

    feeds: int
    outcomes: dict[str, int]
    items_produced: int
    items_skipped: int
    produce_failed_feeds: int
    failing: tuple[str, ...]
    elapsed_s: float

    def line(self) -> str:
        """One line for humans."""
        parts = " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"ingest: {self.feeds} feeds in {self.elapsed_s:.1f}s ({parts or 'none due'}); "
            f"{self.items_produced} items produced, {self.items_skipped} skipped; "
            f"{self.produce_failed_feeds} feeds not produced (Kafka); {len(self.failing)} failing"
        )


class Worker:
    """Polls one shard's feeds into the raw-items topic."""

    def __init__(
        self,
        *,
        settings: Settings,
        sources: Sequence[Source],
        producer: Any,
        state: IngestState,
        metrics: IngestMetrics,
        fetcher_factory: Callable[[], Fetcher] | None = None,
        clock: Callable[[], datetime] = utcnow,
        max_thread_pages: int = DEFAULT_MAX_PAGES,
        produce_timeout_s: float = 30.0,
        heartbeat: Callable[[], None] = lambda: None,
        parse_feed: Callable[..., Any] | None = None,
    ) -> None:
        self.settings = settings
        self.sources = [
            s for s in sources if in_shard(s.id, settings.shard_index, settings.shard_count)
        ]
        self.producer = producer
        self.state = state
        self.metrics = metrics
        self.topic = settings.topic(RAW_ITEMS)
        self.clock = clock
        self.max_thread_pages = max_thread_pages
        self.produce_timeout_s = produce_timeout_s
        self.memory = ThreadMemory()
        self.cycles = 0
        self.heartbeat = heartbeat  # the component's liveness: beaten as polls finish and while idle
        self._fetcher_factory = fetcher_factory or (lambda: Fetcher.from_settings(settings))
        self._fetcher: Fetcher | None = None
        self._parse_feed = parse_feed  # None: detect.parse_feed, looked up at each call
        self._parse_pool: ParsePool | None = None
        self.item_max_bytes: int | None = None  # known at the first produce (topic_max_bytes)

    # --- running --------------------------------------------------------------------------------

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> CycleSummary:
        """Poll every feed once (``once``) or loop until *stop* is set; returns the last summary."""
        return asyncio.run(self._run(once, stop or threading.Event()))

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Worker]:
        """Hold a fetcher (and its pooled connections) across cycles on the running loop."""
        self._fetcher = self._fetcher_factory()
        self._parse_pool = ParsePool(self.settings.parse_workers, processes=self.settings.parse_in_processes)
        try:
            yield self
        finally:
            await self._fetcher.aclose()
            self._fetcher = None
            self._parse_pool.close()
            self._parse_pool = None

    async def _run(self, once: bool, stop: threading.Event) -> CycleSummary:
        summary = CycleSummary(0, {}, 0, 0, 0, (), 0.0)
        async with self.session():
            if once:
                return await self.cycle(self.sources)
            while not stop.is_set():
                due = self.due(self.clock())
                if due:
                    summary = await self.cycle(due)
                    log.info("%s", summary.line())
                await self._sleep_until_due(stop)
        return summary

    def due(self, now: datetime) -> list[Source]:
        """Feeds of this shard whose next poll time has come."""
        states = self.state.feeds()
        return [s for s in self.sources if _is_due(states.get(s.id), now)]

    async def _sleep_until_due(self, stop: threading.Event) -> None:
        """Sleep until the next feed is due (at least BATCH_WINDOW_S, so due feeds batch up)."""
        states = self.state.feeds()
        times = [st.next_poll_at for s in self.sources if (st := states.get(s.id)) and st.next_poll_at]
        now = self.clock()
        if not self.sources:
            wake = now + timedelta(seconds=60)
        elif len(times) < len(self.sources):
            wake = now  # a feed without state is due right away
        else:
            wake = max(min(times), now + timedelta(seconds=BATCH_WINDOW_S))
        await asyncio.sleep(0)
        while not stop.is_set() and self.clock() < wake:
            self.heartbeat()
            await asyncio.sleep(min(IDLE_TICK_S, max(0.0, (wake - self.clock()).total_seconds())))

    # --- one cycle ------------------------------------------------------------------------------

    async def cycle(self, sources: Sequence[Source]) -> CycleSummary:
        """Fetch, parse, produce and record one round over *sources*."""
        started = time.perf_counter()
        states = self.state.feeds()
        polls = await asyncio.gather(
            *(self._poll(s, states.get(s.id) or FeedState(s.id)) for s in sources)
        )
        self._drop_known(polls)
        self._produce(polls)
        failing = self._record(polls)
        self.cycles += 1
        return CycleSummary(
            feeds=len(polls),
            outcomes=dict(Counter(p.outcome for p in polls)),
            items_produced=sum(len(p.acked) for p in polls),
            items_skipped=sum(sum(p.skipped.values()) for p in polls),
            produce_failed_feeds=sum(1 for p in polls if p.produce_failed),
            failing=failing,
            elapsed_s=time.perf_counter() - started,
        )

    async def _poll(self, source: Source, before: FeedState) -> FeedPoll:
        """Fetch and parse one feed (and its threads); never raises."""
        assert self._fetcher is not None
        # the source's own opt-in; links found in its feed get theirs from threads.py
        result = await self._fetcher.fetch(
            source.url, etag=before.etag, last_modified=before.last_modified,
            policy=FetchPolicy(allow_private=source.allow_private),
        )
        self.metrics.fetch_seconds.labels(result.outcome).observe(result.elapsed_s)
        poll = FeedPoll(source, before, result, result.outcome)
        follow: tuple[feed_parser.FollowThread, ...] = ()
        if result.ok:
            try:
                parsed = await self._parse(source, result)
                poll.items.extend(parsed.items)
                follow = parsed.follow
                for _entry, reason in parsed.skipped:  # the parser's own bounded reasons
                    poll.skipped[reason] += 1
            except feed_parser.FeedParseError as exc:
                poll.outcome = oc.parse_outcome(exc.reason)
                poll.result = replace(result, detail=exc.detail or exc.reason)
            except Exception as exc:  # a parser bug must not stop the other feeds
                log.exception("feed %s: parser failed", source.id)
                poll.outcome = oc.PARSE_ERROR
                poll.result = replace(result, detail=f"{type(exc).__name__}: {exc}"[:300])
        if oc.is_success(poll.outcome) and (follow or source.platform == "xenforo"):
            try:
                await self._follow_threads(poll, follow)
            except Exception:  # a thread-page bug must not cost the feed's own items
                log.exception("feed %s: following threads failed", source.id)
                poll.threads = ThreadReading()
        self.heartbeat()
        return poll

    async def _parse(self, source: Source, result: FetchResult) -> feed_parser.ParsedFeed:
        """Parse a fetched body off the event loop (see ParsePool); raises what the parser raises."""
        assert self._parse_pool is not None
        started = time.perf_counter()
        parsed: feed_parser.ParsedFeed = await self._parse_pool.run(
            result.url, self._parse_feed or feed_parser.parse_feed, result.body, source=source,
            url=result.url, content_type=result.content_type, fetched_at=self.clock(),
            max_entry_chars=self.settings.entry_max_chars,
        )
        self.metrics.parse_seconds.observe(time.perf_counter() - started)
        return parsed

    async def _follow_threads(self, poll: FeedPoll, follow: Sequence[feed_parser.FollowThread]) -> None:
        assert self._fetcher is not None
        source = poll.source
        targets: dict[str, tuple[ThreadCursor, feed_parser.FollowThread | None]] = {}
        for cur in self.state.threads_with_more(source.id):
            targets[cur.thread_id] = (cur, None)
        for f in follow:
            cur = self.state.thread(source.id, f.thread_id)
            if has_new_posts(f, cur):
                targets[f.thread_id] = (cur or ThreadCursor(source.id, f.thread_id, f.url), f)
        budget = self.max_thread_pages
        for cur, f in targets.values():
            if budget <= 0:
                break
            budget -= await read_thread(
                fetcher=self._fetcher, parse_page=feed_parser.parse_thread_page, source=source,
                cursor=cur, follow=f, max_pages=budget, now=self.clock, memory=self.memory,
                out=poll.threads,
            )
        for fetched in poll.threads.fetches:
            self.metrics.fetches.labels(source.id, fetched.outcome).inc()
            self.metrics.fetch_seconds.labels(fetched.outcome).observe(fetched.elapsed_s)
        poll.items = [*poll.items, *poll.threads.items]

    def _drop_known(self, polls: Sequence[FeedPoll]) -> None:
        """Drop entries produced before (or twice in this cycle); what is left gets produced."""
        candidates = [i.item_id for p in polls for i in p.items]
        known = self.state.already_produced(candidates) if candidates else set()
        seen: set[str] = set()
        for poll in polls:
            fresh: list[RawItem] = []
            for item in poll.items:
                if item.item_id in known:
                    poll.skipped[oc.SKIP_ALREADY_PRODUCED] += 1
                elif item.item_id in seen:
                    poll.skipped[oc.SKIP_DUPLICATE_IN_FEED] += 1
                else:
                    seen.add(item.item_id)
                    fresh.append(item)
            poll.items = fresh

    def _produce(self, polls: Sequence[FeedPoll]) -> None:
        """Send every new item, one by one, then keep as acked only what the broker acknowledged.
        Items are cut to fit first (``topic_max_bytes``): kafka-python's idempotent producer turns
        a record the broker refuses into a fatal error for every later send."""
        pending: list[tuple[FeedPoll, RawItem, Any]] = []
        kafka_up, limit = True, self.item_max_bytes
        if limit is None and any(p.items for p in polls):
            limit, known = self.topic_max_bytes()
            self.item_max_bytes = limit if known else None  # unknown: asked again next cycle
        for poll, item in [(p, i) for p in polls for i in p.items]:
            if not kafka_up:
                poll.produce_failed = True
                continue
            try:
                sent = self._send(poll, item, limit or self.settings.item_max_bytes)
            except KafkaError as exc:
                log.error("feed %s: cannot produce to %s: %s", poll.source.id, self.topic, exc)
                kafka_up, poll.produce_failed = False, True
                continue
            if sent is not None:
                pending.append((poll, *sent))
        if not pending:
            return
        try:
            self.producer.flush(timeout=self.produce_timeout_s)
        except KafkaError as exc:
            log.error("flush to %s failed: %s", self.topic, exc)
        for poll, item, future in pending:
            try:
                future.get(timeout=0 if not kafka_up else self.produce_timeout_s)
            except KafkaError as exc:
                if not poll.produce_failed:
                    log.error("feed %s: produce not acknowledged: %s", poll.source.id, exc)
                poll.produce_failed = True
                kafka_up = False
                continue
            poll.acked.append(item.item_id)
            poll.flagged.update(item.flags)

    def _send(self, poll: FeedPoll, item: RawItem, limit: int) -> tuple[RawItem, Any] | None:
        """Encode, fit and send one item; None when it was skipped (counted); KafkaError when the
        broker cannot be reached."""
        limit -= RECORD_OVERHEAD + len(item.item_id.encode("utf-8", "replace"))
        try:
            fitted, value = fit_item(item, limit, encode)
        except (UnicodeError, ValueError, TypeError) as exc:
            self._drop(poll, item, SKIP_UNENCODABLE, exc)
            return None
        try:
            future = self.producer.send(self.topic, key=fitted.item_id.encode(), value=value)
        except _RECORD_ERRORS as exc:  # the producer's own check, before anything is sent
            self._drop(poll, item, SKIP_REJECTED, exc)
            return None
        if fitted is not item:
            poll.items = [fitted if i is item else i for i in poll.items]
        return fitted, future

    def topic_max_bytes(self) -> tuple[int, bool]:
        """The largest record to send (``item_max_bytes``, the producer's ``max_request_size``, the
        topic's ``max.message.bytes``), and whether it is final (the broker answered, or no broker)."""
        limits = [self.settings.item_max_bytes]
        config = getattr(self.producer, "config", None)
        if not isinstance(config, dict) or not config.get("max_request_size"):
            return min(limits), True
        limits.append(int(config["max_request_size"]))
        try:
            admin = KafkaAdminClient(**self.settings.kafka_client_config(),
                                     client_id="framewatch-ingest-limits", request_timeout_ms=5000)
            try:
                found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic)])
            finally:
                admin.close()
            limits.append(int(found["topic"][self.topic]["max.message.bytes"]["value"]))
        except Exception as exc:  # no answer (broker down, older client): the other limits for now
            log.info("max.message.bytes of %s unknown: %s", self.topic, exc)
            return min(limits), False
        return min(limits), True

    @staticmethod
    def _drop(poll: FeedPoll, item: RawItem, reason: str, exc: BaseException) -> None:
        """Leave one item out of the feed's produce, counted under *reason*."""
        log.warning("feed %s: item %s not produced (%s): %s: %s", poll.source.id, item.item_id, reason,
                    type(exc).__name__, str(exc)[:200])
        poll.items = [i for i in poll.items if i.item_id != item.item_id]
        poll.skipped[reason] += 1

    def _record(self, polls: Sequence[FeedPoll]) -> tuple[str, ...]:
        """Write the cycle's state in one transaction, then count and log each feed."""
        now = self.clock()
        failing: list[str] = []
        with self.state.transaction():
            for poll in polls:
                after = self._next_state(poll, now)
                self.state.save_feed(after)
                if poll.acked:
                    self.state.mark_produced(poll.source.id, poll.acked, now)
                if not poll.produce_failed:
                    for cursor in poll.threads.cursors:
                        self.state.save_thread(cursor)
                self._observe(poll, after)
                if after.failures >= self.settings.failing_after:
                    failing.append(poll.source.id)
            self.state.prune_produced(now)
        return tuple(failing)

    def _next_state(self, poll: FeedPoll, now: datetime) -> FeedState:
        """The feed's state after this poll (pure apart from the settings it reads)."""
        before, result, cfg = poll.before, poll.result, self.settings
        interval = poll.source.poll_interval_s
        if not oc.is_success(poll.outcome):
            failures = before.failures + 1
            when = next_poll_at(now, interval, failures, result.retry_after_s, cfg.backoff_base_s,
                                cfg.backoff_max_s, feed_jitter(poll.source.id, failures))
            return replace(before, next_poll_at=when, failures=failures, last_outcome=poll.outcome)
        if poll.produce_failed:
            # keep the old validators so the next poll refetches what Kafka did not take
            retry = timedelta(seconds=min(interval, cfg.backoff_base_s))
            return replace(before, next_poll_at=now + retry, failures=0, last_success=now,
                           last_outcome=poll.outcome)
        when = next_poll_at(now, interval, 0, result.retry_after_s, cfg.backoff_base_s,
                            cfg.backoff_max_s, feed_jitter(poll.source.id))
        return replace(
            before,
            etag=result.etag or before.etag if poll.outcome == oc.NOT_MODIFIED else result.etag,
            last_modified=(result.last_modified or before.last_modified
                           if poll.outcome == oc.NOT_MODIFIED else result.last_modified),
            next_poll_at=when, failures=0, last_success=now, last_outcome=poll.outcome,
        )

    def _observe(self, poll: FeedPoll, after: FeedState) -> None:
        """Count and log one feed's poll."""
        m, feed = self.metrics, poll.source.id
        m.fetches.labels(feed, poll.outcome).inc()
        if poll.acked:
            m.items_produced.labels(feed).inc(len(poll.acked))
        unacked = len(poll.items) - len(poll.acked)
        if unacked:
            poll.skipped[oc.SKIP_PRODUCE_FAILED] += unacked
        for reason, count in poll.skipped.items():
            m.items_skipped.labels(feed, reason).inc(count)
        for reason, count in poll.flagged.items():
            m.items_flagged.labels(feed, reason).inc(count)
        m.consecutive_failures.labels(feed).set(after.failures)
        is_failing = after.failures >= self.settings.failing_after
        m.feed_failing.labels(feed).set(1 if is_failing else 0)
        if after.last_success is not None:
            m.last_success.labels(feed).set(after.last_success.timestamp())
        detail = poll.result.detail
        if is_failing:
            log.warning("feed %s is failing: %d polls in a row, last reason %s (%s)",
                        feed, after.failures, poll.outcome, detail)
        elif not oc.is_success(poll.outcome):
            log.info("feed %s: %s (%s); failure %d, next poll %s", feed, poll.outcome, detail,
                     after.failures, after.next_poll_at)
        elif poll.produce_failed:
            log.warning("feed %s: %s but %d items not acknowledged by Kafka; will refetch",
                        feed, poll.outcome, unacked)
        else:
            log.log(logging.INFO if poll.acked else logging.DEBUG, "feed %s: %s, %d new items, %d skipped",
                    feed, poll.outcome, len(poll.acked), sum(poll.skipped.values()))


def _is_due(state: FeedState | None, now: datetime) -> bool:
    return state is None or state.next_poll_at is None or state.next_poll_at <= now

