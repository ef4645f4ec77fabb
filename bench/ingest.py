"""Ingest benchmark: one worker cycle over 2,000 ETag'd feeds, then an all-304 cycle, then a
cycle over 2,000 feeds of which 5% are hostile, with a fresh worker and state.

A separate process serves the feeds (five items each) from 16 loopback addresses, as 16 hosts,
so the per-host limit behaves as it would against real servers; the sources opt into those
private addresses (``allow_private``), except the hostile ones that test the refusal. The
hostile feeds are a mix of the corpus (tests/helpers/hostile_feeds.py) that is cheap to serve:
stacked Content-Encoding, redirects to ftp: and to itself, lying Content-Length, 500/429 with
absurd Retry-After, empty, HTML, broken XML, binary garbage, UTF-16 without BOM, a lone
surrogate, JSON nested 100,000 deep, and a private address the source did not opt into. The
worker produces to a real broker on a topic unique to this run: FRAMEWATCH_TEST_KAFKA when set
and reachable, else one this script starts with deploy/kafka/kafka.sh and stops at the end
(bench/broker.py). The last line printed is one JSON object.

    python bench/ingest.py [--feeds 2000] [--items 5] [--hostile-share 0.05]

Targets: a full cycle of 2,000 feeds under 60 s on 2 cores; a conditional-GET hit (304) under
2 ms of worker CPU (``time.process_time`` of the 304 cycle divided by the feeds); the cycle with
5% hostile feeds, against the clean one in the same run (``mixed_vs_clean``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import logging
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.broker import running_broker

HOSTS = [f"127.0.0.{i}" for i in range(1, 17)]
REFUSED = "private-not-opted-in"  # a hostile kind made by the source, not by the server


def _raw(status: str, headers: list[tuple[str, str]], body: bytes, length: int | None = None) -> bytes:
    head = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers),
            f"Content-Length: {len(body) if length is None else length}", "Connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


def hostile_responses(items: int) -> dict[str, bytes]:
    """Whole raw answers of the hostile kinds, each sent and then the connection closed."""
    feed, rss = feed_body(0, items), [("Content-Type", "application/rss+xml; charset=utf-8")]
    return {
        "stacked-gzip": _raw("200 OK", [*rss, ("Content-Encoding", "gzip, gzip")], gzip.compress(gzip.compress(feed))),
        "redirect-to-ftp": _raw("302 Found", [("Location", "ftp://127.0.0.1/feed.xml")], b""),
        "redirect-to-itself": _raw("302 Found", [("Location", "./{self}")], b""),
        "content-length-lies": _raw("200 OK", rss, feed, len(feed) + 50_000),
        "error-500-absurd-retry-after": _raw("500 Oops", [("Retry-After", "9" * 40)], b"oops"),
        "429-retry-after-year-9999": _raw("429 Slow", [("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")], b""),
        "empty": _raw("200 OK", rss, b""),
        "html": _raw("200 OK", [("Content-Type", "text/html")], b"<!DOCTYPE html><html><body><p>no feed</p></body></html>"),
        "invalid-xml": _raw("200 OK", rss, b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</titl><item><<>></rss'),
        "binary-garbage": _raw("200 OK", [("Content-Type", "application/octet-stream")], random.Random(7).randbytes(4000)),
        "utf16-no-bom": _raw("200 OK", rss, feed.decode().encode("utf-16-le")),
        "lone-surrogate": _raw("200 OK", [("Content-Type", "application/feed+json")],
                               b'{"version":"https://jsonfeed.org/version/1.1","title":"s","items":[{"id":"s1","content_text":"a \\ud800 b"}]}'),
        "deep-json": _raw("200 OK", [("Content-Type", "application/feed+json")],
                          b'{"version":"https://jsonfeed.org/version/1.1","items":[],"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    }


def hostile_kind(index: int, kinds: list[str], share: float) -> str | None:
    """The hostile kind of feed *index* in the mixed cycle, or None for a clean feed."""
    every = max(1, round(1 / share)) if share > 0 else 0
    if not every or index % every:
        return None
    return kinds[(index // every) % len(kinds)]


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
    hostile = {f"/hostile/{kind}".encode(): raw for kind, raw in hostile_responses(items).items()}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                inm = next((ln[14:].strip() for ln in lines[1:] if ln[:14].lower() == b"if-none-match:"), None)
                body, etag = bodies.get(path, (None, None))
                if path.startswith(b"/hostile/"):
                    raw = hostile.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    writer.write(raw.replace(b"{self}", path.rsplit(b"/", 1)[1]))
                    await writer.drain()
                    break  # every hostile answer ends with the connection (some lie about their length)
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


def sources_for(ports: list[int], feeds: int, *, hostile_share: float = 0.0, prefix: str = "bench") -> list[object]:
    """The feeds; with *hostile_share*, that share of them hostile (see hostile_kind)."""
    from framewatch.ingest.sources import Source

    opt_in = "allow_private" in {f.name for f in dataclasses.fields(Source)}  # the fetch policy's opt-in
    kinds = [*hostile_responses(1), REFUSED]
    out = []
    for i in range(feeds):
        base = f"http://{HOSTS[i % len(HOSTS)]}:{ports[i % len(HOSTS)]}"
        kind = hostile_kind(i, kinds, hostile_share)
        url = f"{base}/hostile/{kind}" if kind and kind != REFUSED else f"{base}/feed/{i}.xml"
        extra = {"allow_private": kind != REFUSED} if opt_in else {}
        out.append(Source(f"{prefix}-{i}", url, "news", outlet=f"Bench {i}", poll_interval_s=900.0, **extra))
    return out


async def cycles(worker: object, names: tuple[str, ...]) -> dict[str, float]:
    """Run one cycle per name over every feed of *worker*, timing each."""
    out: dict[str, float] = {}
    async with worker.session():  # type: ignore[attr-defined]
        for name in names:
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
    parser.add_argument("--hostile-share", type=float, default=0.05)
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
    with running_broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            kafka_bootstrap=bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
            state_dir=Path(tmp), fetch_timeout_s=30,
        )
        topic = settings.topic(RAW_ITEMS)
        ensure_topics(settings, [topic], partitions=6)
        producer = make_producer(settings)
        state = IngestState.for_shard(settings.state_dir, 0, 1)
        mixed_state = IngestState.for_shard(Path(tmp) / "mixed", 0, 1)
        worker = Worker(settings=settings, sources=sources_for(ports, args.feeds), producer=producer,
                        state=state, metrics=IngestMetrics(CollectorRegistry()))
        mixed = Worker(settings=settings, producer=producer, state=mixed_state, metrics=IngestMetrics(CollectorRegistry()),
                       sources=sources_for(ports, args.feeds, hostile_share=args.hostile_share, prefix="mixed"))
        try:
            out = asyncio.run(cycles(worker, ("full", "not_modified")))
            out.update(asyncio.run(cycles(mixed, ("mixed",))))
        finally:
            producer.close(timeout=10)
            state.close()
            mixed_state.close()
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
        "hostile_share": args.hostile_share,
        "hostile_feeds": sum(1 for i in range(feeds) if hostile_kind(i, [""], args.hostile_share) is not None),
        "mixed_cycle_s": round(out["mixed_s"], 3),
        "mixed_cycle_cpu_s": round(out["mixed_cpu_s"], 3),
        "mixed_items": out["mixed_items"],
        "mixed_vs_clean": round(out["mixed_s"] / out["full_s"], 3),
        "outcomes_mixed": out["mixed_outcomes"],
        "hosts": len(HOSTS),
        "topic": topic,
    }
    print(f"clean {result['cycle_s']:.1f}s vs {result['hostile_share']:.0%} hostile {result['mixed_cycle_s']:.1f}s "
          f"(x{result['mixed_vs_clean']:.2f}), same run, {feeds} feeds each", flush=True)
    print(json.dumps(result, sort_keys=False))


if __name__ == "__main__":
    main()
