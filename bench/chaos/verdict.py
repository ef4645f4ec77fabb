"""What the chaos soak saw, and its verdict against the planted truth.

Definitions (the JSON fields of the last line):

* ``items_published``: items the feed server put into a feed (its published log).
* ``items_framed``: distinct published items (matched by their unique link, the framed record's
  ``url``) with at least one record on ``framed-items``.
* ``lost``: published items never framed, plus items framed but missing from the final
  aggregates: the sum over the watch-total cells (frame ``*``, every granularity and bucket) of
  how far the merged aggregate count falls short of the count recomputed from the framed records.
* ``doubled``: items whose framed records disagree on what they count (frame, publication time,
  duplicate-of, the segments' frames) plus items counted more than once: the sum over the same
  cells of how far the aggregate count exceeds the recomputed one. At-least-once delivery writes
  some records twice; repeats with the same values under the same key are *not* doubles (the
  aggregator keeps one contribution per key): they are reported apart as ``redelivered``.
* ``aggregates_exact``: the final aggregates (latest partial row per key on ``aggregates``,
  merged by ``counts.merge_partials``) equal, cell for cell (watch, outlet, granularity, bucket,
  frame; items and segments), the counts recomputed here from one record per framed key.
* ``dead_letters_expected/found``: poison records injected / those with a dead letter naming
  their topic, partition and offset.
* ``webhooks_expected``: planted spikes times subscribers; ``webhooks_received``: distinct
  ``webhook-id`` values of signed requests whose alert is a planted spike's (watch and frame);
  ``duplicate_webhooks``: requests repeating an id already received.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from framewatch import contracts
from framewatch.contracts import (
    ANY,
    BUCKETS,
    EMERGENT_PREFIX,
    AggregateRow,
    Alert,
    DeadLetter,
    FramedItem,
)
from framewatch.errors import DecodeError
from framewatch.processing.alerts import signing
from framewatch.processing.trends.counts import merge_partials

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Receiver:
    """Webhook endpoint: records every request's ``webhook-id`` and checks its signature."""

    def __init__(self, secret: bytes) -> None:
        self.requests: list[tuple[str, bool, dict[str, Any]]] = []  # (id, signature ok, body)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    signing.verify(secret, dict(self.headers), body, time.time())
                    ok = True
                except signing.SignatureError:
                    ok = False
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                outer.requests.append((self.headers.get(signing.ID_HEADER, ""), ok, payload))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TopicTail:
    """Every record of a topic from its start (no group), kept up to date by :meth:`poll`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False,
                                      client_id=f"chaos-tail-{topic}", max_partition_fetch_bytes=8 << 20)
        self.assigned: list[TopicPartition] = []

    def poll(self, budget_s: float = 2.0) -> list[tuple[int, int, bytes | None, bytes]]:
        """(partition, offset, key, value) of records since the last call (at most *budget_s*)."""
        if not self.assigned:
            parts = self.consumer.partitions_for_topic(self.topic) or set()
            if not parts:
                return []
            self.assigned = [TopicPartition(self.topic, p) for p in sorted(parts)]
            self.consumer.assign(self.assigned)
            self.consumer.seek_to_beginning(*self.assigned)
        out = []
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            polled = self.consumer.poll(timeout_ms=200, max_records=20_000)
            if not polled:
                break
            for tp, records in polled.items():
                out += [(tp.partition, r.offset, r.key, r.value or b"") for r in records]
        return out

    def close(self) -> None:
        self.consumer.close()


def _signature(item: FramedItem) -> tuple[Any, ...]:
    """What a framed record counts: differing signatures under one key are a conflict."""
    return (item.frame, item.published_at, item.duplicate_of,
            tuple((s.frame, s.cluster, s.duplicate_of) for s in item.segments))


def counted_frame(item: FramedItem) -> tuple[str | None, dict[str, int]]:
    """The frame an item counts for and its segments per frame, recomputed from the record: the
    codebook frame, else its most common emergent framing, else ``unframed``; a reprint
    (``duplicate_of``) counts nothing; duplicate segments count nothing."""
    segs: Counter[str] = Counter()
    for s in item.segments:
        name = s.frame or (s.cluster if s.cluster and s.cluster.startswith(EMERGENT_PREFIX)
                           else f"{EMERGENT_PREFIX}{s.cluster}" if s.cluster else None)
        if name and not s.duplicate_of:
            segs[name] += 1
    if item.duplicate_of:
        return None, {}
    frame = item.frame
    if frame is None:
        emergent = {k: v for k, v in segs.items() if k.startswith(EMERGENT_PREFIX)}
        frame = max(sorted(emergent), key=emergent.__getitem__) if emergent else "unframed"
    return frame, dict(segs)


def recount(items: Iterable[FramedItem]) -> dict[tuple[str, str, str, datetime, str], tuple[int, int]]:
    """(watch, outlet ``*``, granularity, bucket, frame) -> (items, segments), from one record per key."""
    cells: dict[tuple[str, str, str, datetime, str], list[int]] = {}
    for item in items:
        frame, segs = counted_frame(item)
        if frame is None:
            continue
        seconds = int((item.published_at - _EPOCH).total_seconds())
        for gran, step in BUCKETS.items():
            bucket = datetime.fromtimestamp(seconds - seconds % step, UTC)
            for name, d_items, d_segs in ((ANY, 1, sum(segs.values())), (frame, 1, segs.get(frame, 0)),
                                          *((f, 0, n) for f, n in segs.items() if f != frame)):
                acc = cells.setdefault((item.watch_id, ANY, gran, bucket, name), [0, 0])
                acc[0] += d_items
                acc[1] += d_segs
    return {k: (v[0], v[1]) for k, v in cells.items() if v != [0, 0]}


@dataclass
class Observed:
    """Everything the soak read back from the pipeline's topics."""

    framed: dict[str, FramedItem] = field(default_factory=dict)  # key -> first record
    framed_records: int = 0
    conflicts: set[str] = field(default_factory=set)
    undecodable_framed: int = 0
    aggregates: dict[bytes, bytes] = field(default_factory=dict)  # aggregate key -> latest row
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    _signatures: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def take_framed(self, records: list[tuple[int, int, bytes | None, bytes]]) -> None:
        for _, _, _, value in records:
            try:
                item = contracts.decode(FramedItem, value)
            except DecodeError:
                self.undecodable_framed += 1  # the soak's own poison, among others
                continue
            self.framed_records += 1
            sig = _signature(item)
            first = self._signatures.setdefault(item.key, sig)
            if first != sig:
                self.conflicts.add(item.key)
            self.framed.setdefault(item.key, item)

    def take_aggregates(self, records: list[tuple[int, int, bytes | None, bytes]]) -> None:
        for _, _, key, value in records:
            if key is not None:
                self.aggregates[key] = value

    def take_alerts(self, records: list[tuple[int, int, bytes | None, bytes]]) -> None:
        for _, _, _, value in records:
            try:
                self.alerts.append(contracts.decode(Alert, value))
            except DecodeError:
                continue

    def take_dead_letters(self, records: list[tuple[int, int, bytes | None, bytes]]) -> None:
        for _, _, _, value in records:
            self.dead_letters.append(contracts.decode(DeadLetter, value))

    def merged_aggregates(self) -> dict[tuple[str, str, str, datetime, str], tuple[int, int]]:
        rows = []
        for value in self.aggregates.values():
            try:
                rows.append(contracts.decode(AggregateRow, value))
            except DecodeError:
                continue
        return merge_partials(rows)


def verdict(published: list[dict[str, Any]], seen: Observed, poisons: list[dict[str, Any]],
            planted: list[tuple[str, str]], subscribers: int, receiver: Receiver) -> dict[str, Any]:
    """The soak's figures (see the module docstring for each definition)."""
    by_url = {p["url"]: p for p in published}
    framed_urls = {item.url for item in seen.framed.values() if item.url in by_url}
    never_framed = [p for p in published if p["url"] not in framed_urls]
    mine = [item for item in seen.framed.values() if item.url in by_url]
    truth = recount(mine)
    merged = seen.merged_aggregates()
    short = excess = 0
    for key in set(truth) | set(merged):
        if key[4] != ANY:
            continue
        got, want = merged.get(key, (0, 0))[0], truth.get(key, (0, 0))[0]
        short += max(0, want - got)
        excess += max(0, got - want)
    granularities = len(BUCKETS)  # each item is in one bucket per granularity
    mismatched = sorted(k for k in set(truth) | set(merged) if truth.get(k) != merged.get(k))
    coords = {(d.source_topic, d.partition, d.offset) for d in seen.dead_letters}
    found = [p for p in poisons if (p["topic"], p["partition"], p["offset"]) in coords]
    poison_coords = {(p["topic"], p["partition"], p["offset"]) for p in poisons}
    other_letters = [d for d in seen.dead_letters if (d.source_topic, d.partition, d.offset) not in poison_coords]
    ids: Counter[str] = Counter()
    unsigned = 0
    for msg_id, ok, payload in list(receiver.requests):
        alert = payload.get("alert") or {}
        if (alert.get("watch_id"), alert.get("frame")) not in planted:
            continue
        if not ok:
            unsigned += 1
            continue
        ids[msg_id] += 1
    planted_alerts = [a for a in seen.alerts if (a.watch_id, a.frame) in planted]
    return {
        "items_published": len(published),
        "items_framed": len(framed_urls),
        "lost": len(never_framed) + -(-short // granularities),
        "doubled": len(seen.conflicts) + -(-excess // granularities),
        "aggregates_exact": not mismatched and bool(truth),
        "dead_letters_expected": len(poisons),
        "dead_letters_found": len(found),
        "webhooks_expected": len(planted) * subscribers,
        "webhooks_received": len(ids),
        "duplicate_webhooks": sum(n - 1 for n in ids.values()),
        # details for the human summary
        "_never_framed": [p["n"] for p in never_framed][:20],
        "_never_framed_count": len(never_framed),
        "_aggregate_shortfall": short,
        "_aggregate_excess": excess,
        "_mismatched_cells": [[str(x) for x in k] + [str(truth.get(k)), str(merged.get(k))] for k in mismatched[:10]],
        "_mismatched_count": len(mismatched),
        "_conflicting_keys": sorted(seen.conflicts)[:10],
        "_redelivered": seen.framed_records - len(seen.framed),
        "_other_dead_letters": Counter(f"{d.component}:{d.reason}" for d in other_letters),
        "_missing_dead_letters": [p for p in poisons if p not in found],
        "_planted_alerts": [(a.key, a.rule, a.observed_count, a.window_items, a.score) for a in planted_alerts],
        "_other_alerts": [(a.key, a.rule) for a in seen.alerts if (a.watch_id, a.frame) not in planted],
        "_unsigned_webhooks": unsigned,
    }
