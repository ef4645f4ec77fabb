"""`framewatch serve` under load: every list and series endpoint timed over HTTP, beside a plain
polars scan of the same query.

The lake is built through the sink: framed items encoded as the processor produces them, then
the aggregator's hourly rows of them, each written by the sink's own stage in flush windows of
``--batch`` records (``sink_items_per_s`` is that stage's rate on framed items, Kafka aside;
bench/sink.py measures the whole consumer). The API runs in this process under uvicorn on
127.0.0.1; each query is asked once cold (``first``: nothing cached), then ``--repeat`` times
(lists page after page, as a client reads them: the listing is cached while its files are unchanged).

Prints one line per endpoint, then one JSON object on the last line:
``{"items", "p95_ms_worst", "p95_ms_polars", "sink_items_per_s", "worst_endpoint", "first_ms_worst"}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from framewatch import contracts
from framewatch.contracts import AggregateRow, FramedItem, FramedSegment, FrameScore, MessageContext
from framewatch.kafka_io import Message
from framewatch.processing.serve.cli import bind, build_context, make_server, url_of
from framewatch.processing.sink.stage import SinkStage
from framewatch.processing.sink.storage import LocalStorage
from framewatch.settings import AGGREGATES, FRAMED_ITEMS, Settings

WATCHES = ("china-scs", "climate", "elections")
FRAMES = ("surveillance", "trade", "military", "rights", "economy")
OUTLETS = tuple(f"outlet{i}.example" for i in range(20))
TOKEN = "bench-admin-token"


def framed_records(n: int, now: datetime, days: int) -> Iterator[bytes]:
    """*n* encoded framed items over the last *days* days, as the processor produces them: two
    segments each, 5% duplicates, some emergent clusters, 3 watches, 20 outlets."""
    step = timedelta(microseconds=days * 86_400_000_000 // max(n, 1))
    for i in range(n):
        frame, watch = FRAMES[i % len(FRAMES)], WATCHES[i % len(WATCHES)]
        at = now - i * step
        segs = tuple(FramedSegment(
            index=k, text=f"passage {k} of item {i} about {frame}", text_hash=f"h{i}-{k}", frame=frame, score=0.6,
            margin=0.1, top=(FrameScore(frame, 0.6),), nearest_examples=(f"example of {frame}",),
            cluster=f"emergent:{i % 7}" if i % 50 == 0 else None) for k in (0, 1))
        yield contracts.encode(FramedItem(
            key=f"{watch}:item{i}", item_id=f"item{i}", watch_id=watch, source_id="src", kind="article",
            published_at=at, processed_at=at, frame=frame, frame_shares={frame: 1.0}, segments=segs,
            codebook_version="cb0", model_id="bench", method="zero-shot", url=f"https://x.example/item{i}",
            title=f"Title {i} on {frame}", outlet=OUTLETS[i % len(OUTLETS)],
            duplicate_of=f"item{i - 3 * len(WATCHES)}" if i % 20 == 7 and i > 30 else None))


def aggregate_records(root: Path) -> Iterator[bytes]:
    """Hourly aggregate rows (per frame and the * total, per framed-items partition) of the lake's
    framed items, encoded as the aggregator publishes them."""
    rows = (pl.scan_parquet(f"{root}/framed_items/**/*.parquet", hive_partitioning=False)
            .select("watch_id", "frame", "_partition", pl.col("published_at").dt.truncate("1h").alias("bucket_start")))
    per_frame = rows.group_by("watch_id", "frame", "_partition", "bucket_start").len()
    total = rows.group_by("watch_id", "_partition", "bucket_start").len().with_columns(frame=pl.lit("*"))
    both = pl.concat([per_frame, total.select(per_frame.collect_schema().names())]).collect()
    for r in both.iter_rows(named=True):
        yield contracts.encode(AggregateRow(
            watch_id=r["watch_id"], frame=r["frame"], granularity="1h", bucket_start=r["bucket_start"], outlet="*",
            partition=r["_partition"], items=r["len"], segments=2 * r["len"]))


def through_sink(root: Path, logical: str, records: Iterator[bytes], window: int) -> tuple[int, float]:
    """Write *records* with the sink's own stage (decode, files per date/watch/partition, fsync),
    *window* records a flush, 6 Kafka partitions; (records, records a second)."""
    topic = f"bench.{logical}"
    stage = SinkStage(LocalStorage(root), {topic: logical})
    n, spent = 0, 0.0
    try:
        while True:
            batch = [Message(MessageContext(topic, (n + k) % 6, (n + k) // 6), v)
                     for k, v in enumerate(itertools.islice(records, window))]
            if not batch:
                return n, n / spent if spent else 0.0
            t0 = time.perf_counter()
            stage(batch)
            spent += time.perf_counter() - t0
            n += len(batch)
    finally:
        stage.close()


def p95(samples: list[float]) -> float:
    """95th percentile in ms."""
    return statistics.quantiles(samples, n=20)[-1] * 1000 if len(samples) > 1 else samples[0] * 1000


def timed(call: Callable[[], Any], repeat: int) -> float:
    """p95 of *repeat* calls after one warm-up."""
    call()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return p95(samples)


def main() -> None:
    """Build the lake, start the API, time the endpoints."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="framed items in the lake (the issue's target: 1000000)")
    parser.add_argument("--days", type=int, default=30, help="days of publication times")
    parser.add_argument("--batch", type=int, default=20_000, help="records per sink flush window")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per endpoint")
    parser.add_argument("--dir", type=Path, default=None, help="lake folder (default: a temporary one); one that holds a lake already is reused")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    root = args.dir or Path(tempfile.mkdtemp(prefix="framewatch-bench-serve-"))
    sink_rate = None
    if (root / "framed_items").is_dir():
        print(f"lake: reusing {root} (made with --items {args.items}?)")
    else:
        t0 = time.perf_counter()
        n, sink_rate = through_sink(root, FRAMED_ITEMS, framed_records(args.items, now, args.days), args.batch)
        aggs, _ = through_sink(root, AGGREGATES, aggregate_records(root), args.batch)
        files = sum(1 for _ in root.rglob("*.parquet"))
        print(f"lake: {n} items and {aggs} aggregate rows through the sink's stage ({sink_rate:,.0f} items/s), "
              f"{files} files in {time.perf_counter() - t0:.1f} s at {root}")
    settings = Settings(sink_url=str(root), state_dir=root / "state", serve_admin_token=TOKEN, serve_page_max=500)
    server = make_server(build_context(settings))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    week = (now - timedelta(days=7)).isoformat()
    day = (now - timedelta(days=1)).isoformat()
    w = WATCHES[0]
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        "watches": ("/watches", {}),
        "series 1h 7d": (f"/watches/{w}/series", {"bucket": "1h", "start": week}),
        "series 1h 7d count": (f"/watches/{w}/series", {"bucket": "1h", "start": week, "as": "count"}),
        "items latest": ("/items", {"watch": w, "limit": 100}),
        "items frame+outlet+day": ("/items", {"watch": w, "frame": "trade", "outlet": "outlet3.example", "start": day}),
        "items search": ("/items", {"watch": w, "q": "ABOUT MILITARY", "start": week, "limit": 100}),
        "items page 3": ("/items", {"watch": w, "start": week, "limit": 100, "offset": 200}),
        "alerts": ("/alerts", {}),
        "clusters": ("/clusters", {"watch": w}),
    }
    glob = f"{root}/framed_items/**/*.parquet"
    scan = lambda: pl.scan_parquet(glob, hive_partitioning=True)  # noqa: E731
    plain: dict[str, Callable[[], Any]] = {
        "items latest": lambda: scan().filter(pl.col("watch") == w).sort("published_at", descending=True).head(100).collect(),
        "items frame+outlet+day": lambda: scan().filter((pl.col("watch") == w) & (pl.col("frame") == "trade")
                                                        & (pl.col("outlet") == "outlet3.example")
                                                        & (pl.col("published_at") >= now - timedelta(days=1))).collect(),
        "items search": lambda: scan().filter((pl.col("watch") == w) & pl.col("title").str.to_lowercase().str.contains("military")).head(100).collect(),
    }
    worst, worst_name, first_worst = 0.0, "", 0.0
    with httpx.Client(base_url=url_of(sock), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        for name, (path, params) in queries.items():
            t0 = time.perf_counter()
            client.get(path, params=params).raise_for_status()
            first = (time.perf_counter() - t0) * 1000
            pages = iter(range(1, 10**9))

            def call(path: str = path, params: dict[str, Any] = params, pages: Any = pages) -> None:
                # lists are read page after page (the listing cache's case); the rest as asked
                extra = {"offset": 100 * next(pages)} if path == "/items" else {}
                client.get(path, params={**params, **extra}).raise_for_status()

            ms = timed(call, args.repeat)
            line = f"{name:24s} first {first:8.1f} ms   p95 {ms:8.1f} ms"
            if name in plain:
                line += f"   plain polars p95 {timed(plain[name], args.repeat):8.1f} ms"
            print(line)
            first_worst = max(first_worst, first)
            if ms > worst:
                worst, worst_name = ms, name
    polars_worst = max(timed(fn, args.repeat) for fn in plain.values())
    server.should_exit = True
    thread.join(timeout=10)
    print(json.dumps({"items": args.items, "p95_ms_worst": round(worst, 1), "p95_ms_polars": round(polars_worst, 1),
                      "sink_items_per_s": None if sink_rate is None else round(sink_rate),
                      "worst_endpoint": worst_name, "first_ms_worst": round(first_worst, 1)}))


if __name__ == "__main__":
    main()
