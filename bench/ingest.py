"""Ingest benchmark: one worker cycle over 2,000 ETag'd feeds, then an all-304 cycle.

A separate process serves the feeds (five items each) from 16 loopback addresses, as 16 hosts,
so the per-host limit behaves as it would against real servers. The worker produces to a real
broker (127.0.0.1:19092 or FRAMEWATCH_KAFKA_BOOTSTRAP) on a topic unique to this run. The last
line printed is one JSON object.

    python bench/ingest.py [--feeds 2000] [--items 5]

Targets: a full cycle of 2,000 feeds under 60 s on 2 cores; a conditional-GET hit (304) under
2 ms of worker CPU (``time.process_time`` of the 304 cycle divided by the feeds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path

HOSTS = [f"127.0.0.{i}" for i in range(1, 17)]


def feed_body(index: int, items: int) -> bytes:
    """A plausible RSS 2.0 news feed, distinct per feed."""
    entries = "".join(
        f"<item><title>Feed {index} story {j}: council debates housing plan</title>"
        f"<link>https://news{index % 97}.example.org/{index}/{j}</link>"
        f'<guid isPermaLink="false">feed-{index}-entry-{j}</guid>'
        f"<pubDate>Wed, 19 Nov 2025 {j % 24:02d}:{index % 60:02d}:00 GMT</pubDate>"
        f"<dc:creator>Reporter {j}</dc:creator>"
        f"<description>&lt;p&gt;The council of city {index} debated the housing plan on day {j}. "
        "Supporters called it overdue; critics warned of the cost to taxpayers and asked for "
        "an independent review before the vote.&lt;/p&gt;</description></item>"
        for j in range(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Bench feed {index}</title><link>https://news{index % 97}.example.org/</link>"
        f"<description>bench</description>{entries}</channel></rss>"
    ).encode()


def serve(feeds: int, items: int, conn: object) -> None:
    """Child process: a small keep-alive HTTP/1.1 server answering 200 or 304 by ETag."""
    bodies = {f"/feed/{i}.xml".encode(): (feed_body(i, items), f'"v{i}"'.encode()) for i in range(feeds)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                inm = next((ln[14:].strip() for ln in lines[1:] if ln[:14].lower() == b"if-none-match:"), None)
                body, etag = bodies.get(path, (None, None))
                if body is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                elif inm == etag:
                    writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\nETag: "
                        + etag + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, host, 0, backlog=512) for host in HOSTS]
        conn.send([s.sockets[0].getsockname()[1] for s in servers])  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    asyncio.run(main())


def sources_for(ports: list[int], feeds: int) -> list[object]:
    from framewatch.ingest.sources import Source

    return [
        Source(f"bench-{i}", f"http://{HOSTS[i % len(HOSTS)]}:{ports[i % len(HOSTS)]}/feed/{i}.xml", "news",
               outlet=f"Bench {i}", poll_interval_s=900.0)
        for i in range(feeds)
    ]


async def two_cycles(worker: object) -> dict[str, float]:
    out: dict[str, float] = {}
    async with worker.session():  # type: ignore[attr-defined]
        for name in ("full", "not_modified"):
            wall, cpu = time.perf_counter(), time.process_time()
            summary = await worker.cycle(worker.sources)  # type: ignore[attr-defined]
            out[f"{name}_s"] = time.perf_counter() - wall
            out[f"{name}_cpu_s"] = time.process_time() - cpu
            out[f"{name}_items"] = summary.items_produced
            out[f"{name}_outcomes"] = summary.outcomes  # type: ignore[assignment]
            print(f"{name}: {summary.line()}  (cpu {out[f'{name}_cpu_s']:.2f}s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)

    from prometheus_client import CollectorRegistry

    from framewatch.ingest.state import IngestState
    from framewatch.ingest.worker import Worker
    from framewatch.kafka_io import ensure_topics, make_producer
    from framewatch.metrics import IngestMetrics
    from framewatch.settings import RAW_ITEMS, Settings

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(args.feeds, args.items, child), daemon=True)
    server.start()
    ports = parent.recv()
    bootstrap = os.environ.get("FRAMEWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            kafka_bootstrap=bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
            state_dir=Path(tmp), fetch_timeout_s=30,
        )
        topic = settings.topic(RAW_ITEMS)
        ensure_topics(settings, [topic], partitions=6)
        producer = make_producer(settings)
        state = IngestState.for_shard(settings.state_dir, 0, 1)
        worker = Worker(settings=settings, sources=sources_for(ports, args.feeds), producer=producer,
                        state=state, metrics=IngestMetrics(CollectorRegistry()))
        try:
            out = asyncio.run(two_cycles(worker))
        finally:
            producer.close(timeout=10)
            state.close()
            server.terminate()
    feeds = args.feeds
    result = {
        "feeds": feeds,
        "items": out["full_items"],
        "cycle_s": round(out["full_s"], 3),
        "cycle_cpu_s": round(out["full_cpu_s"], 3),
        "items_per_s": round(out["full_items"] / out["full_s"], 1),
        "feeds_per_s": round(feeds / out["full_s"], 1),
        "not_modified_cycle_s": round(out["not_modified_s"], 3),
        "not_modified_cpu_ms_per_fetch": round(1000 * out["not_modified_cpu_s"] / feeds, 3),
        "not_modified_produced": out["not_modified_items"],
        "outcomes_full": out["full_outcomes"],
        "outcomes_not_modified": out["not_modified_outcomes"],
        "hosts": len(HOSTS),
        "topic": topic,
    }
    print(json.dumps(result, sort_keys=False))


if __name__ == "__main__":
    main()
