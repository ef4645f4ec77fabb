"""`framewatch serve` under load: every list and series endpoint timed over HTTP, beside a plain
polars scan of the same query.

The lake is written with polars exactly as docs/read-model.md lays it out (one file per date,
watch and batch of ``--batch`` rows, as the sink writes them; this bench does not run the sink,
whose throughput bench/sink.py measures). The API runs in this process under uvicorn on
127.0.0.1; each query is asked once cold (``first``: nothing cached), then ``--repeat`` times
(lists page after page, as a client reads them: the listing is cached while its files are unchanged).

Prints one line per endpoint, then one JSON object on the last line:
``{"items", "p95_ms_worst", "p95_ms_polars", "worst_endpoint", "first_ms_worst"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from framewatch.processing.serve.cli import bind, build_context, make_server, url_of
from framewatch.settings import Settings

WATCHES = ("china-scs", "climate", "elections")
FRAMES = ("surveillance", "trade", "military", "rights", "economy")
OUTLETS = tuple(f"outlet{i}.example" for i in range(20))
TOKEN = "bench-admin-token"
DT = pl.Datetime("us", "UTC")


def framed_items(n: int, now: datetime, days: int) -> pl.DataFrame:
    """*n* framed items over the last *days* days, two segments each, 5% duplicates, some clusters."""
    i = pl.int_range(0, n, dtype=pl.Int64)
    span_us = days * 86_400_000_000
    published = pl.lit(now) - pl.duration(microseconds=i * (span_us // max(n, 1)))
    frame = pl.lit(pl.Series(FRAMES)).get(i % len(FRAMES))
    seg = lambda k: pl.struct(  # noqa: E731
        index=pl.lit(k, pl.Int64), text=pl.format("passage {} of item {} about {}", pl.lit(k), i, frame),
        text_hash=pl.format("h{}-{}", i, pl.lit(k)), frame=frame, score=pl.lit(0.6), margin=pl.lit(0.1),
        labels=pl.lit([], pl.List(pl.String)), top=pl.concat_list(pl.struct(frame=frame, score=pl.lit(0.6))),
        nearest_examples=pl.concat_list(pl.format("example of {}", frame)), duplicate_of=pl.lit(None, pl.String),
        cluster=pl.when(i % 50 == 0).then(pl.format("emergent:{}", i % 7)).otherwise(None),
        flags=pl.lit([], pl.List(pl.String)))
    item_id = pl.format("item{}", i)
    watch = pl.lit(pl.Series(WATCHES)).get(i % len(WATCHES))
    return pl.select(
        _partition=(i % 6).cast(pl.Int32), _offset=i, _written_at=published.cast(DT),
        key=pl.format("{}:{}", watch, item_id), item_id=item_id, watch_id=watch, source_id=pl.lit("src"),
        kind=pl.lit("article"), published_at=published.cast(DT), processed_at=published.cast(DT), frame=frame,
        frame_shares=pl.concat_list(pl.struct(frame=frame, share=pl.lit(1.0))), segments=pl.concat_list(seg(0), seg(1)),
        codebook_version=pl.lit("cb0"), model_id=pl.lit("bench"), method=pl.lit("zero-shot"),
        url=pl.format("https://x.example/{}", item_id), title=pl.format("Title {} on {}", i, frame),
        outlet=pl.lit(pl.Series(OUTLETS)).get(i % len(OUTLETS)),
        duplicate_of=pl.when((i % 20 == 7) & (i > 30)).then(pl.format("item{}", i - 3 * len(WATCHES))).otherwise(None),
        schema_version=pl.lit(1, pl.Int64),
    )


def aggregates(items: pl.DataFrame) -> pl.DataFrame:
    """Hourly aggregate rows (per frame and the * total, per framed-items partition) of *items*."""
    rows = items.select("watch_id", "frame", "_partition", pl.col("published_at").dt.truncate("1h").alias("bucket_start"))
    per_frame = rows.group_by("watch_id", "frame", "_partition", "bucket_start").len()
    total = rows.group_by("watch_id", "_partition", "bucket_start").len().with_columns(frame=pl.lit("*"))
    both = pl.concat([per_frame, total.select(per_frame.columns)])
    return both.select(
        _partition=pl.lit(0, pl.Int32), _offset=pl.int_range(0, pl.len(), dtype=pl.Int64), _written_at=pl.col("bucket_start"),
        key=pl.format("{}|1h|{}|{}|*|p{}", "watch_id", pl.col("bucket_start").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "frame", "_partition"),
        watch_id="watch_id", frame="frame", granularity=pl.lit("1h"), bucket_start="bucket_start", outlet=pl.lit("*"),
        partition=pl.col("_partition").cast(pl.Int64), items=pl.col("len").cast(pl.Int64),
        segments=(2 * pl.col("len")).cast(pl.Int64), schema_version=pl.lit(1, pl.Int64))


def write_table(root: Path, table: str, frame: pl.DataFrame, day_col: str, batch: int) -> int:
    """Files per date=/watch= partition, *batch* rows each, named like the sink's; returns files written."""
    files = 0
    keyed = frame.with_columns(_day=pl.col(day_col).dt.strftime("%Y-%m-%d"))
    for (day, watch), part in keyed.group_by("_day", "watch_id"):
        folder = root / table / f"date={day}" / f"watch={watch}"
        folder.mkdir(parents=True, exist_ok=True)
        part = part.drop("_day")
        for start in range(0, part.height, batch):
            chunk = part.slice(start, batch)
            first, last = chunk["_offset"].min(), chunk["_offset"].max()
            chunk.write_parquet(folder / f"b-0-{first:012d}-{last:012d}.parquet")
            files += 1
    return files


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
    parser.add_argument("--batch", type=int, default=20_000, help="rows per file, like one sink batch")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per endpoint")
    parser.add_argument("--dir", type=Path, default=None, help="lake folder (default: a temporary one); one that holds a lake already is reused")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    root = args.dir or Path(tempfile.mkdtemp(prefix="framewatch-bench-serve-"))
    if (root / "framed_items").is_dir():
        print(f"lake: reusing {root} (made with --items {args.items}?)")
    else:
        t0 = time.perf_counter()
        items = framed_items(args.items, now, args.days)
        files = write_table(root, "framed_items", items, "published_at", args.batch)
        files += write_table(root, "aggregates", aggregates(items), "bucket_start", args.batch)
        print(f"lake: {args.items} items, {files} files in {time.perf_counter() - t0:.1f} s at {root}")
        del items
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
                      "worst_endpoint": worst_name, "first_ms_worst": round(first_worst, 1)}))


if __name__ == "__main__":
    main()
