"""Parse benchmark: time of text extraction, quote splitting and copied-quote detection on 75,
150 and 300 kB inputs (linear: the 300 kB time is about 4x the 75 kB one), and how long the
worker's event loop stalls while a heavy feed is parsed inline, in a thread, or in a process.

Inputs: 300 kB of ``<p>`` paragraphs; the same with a blockquote after every paragraph;
``<div>`` nested to the size; ``<br>`` lines; one huge line; a run of ``&lt;`` before "script"
(defusing); a reply that copies a thread's earlier post fragment by fragment (copied quotes).

Event loop: a ticker wakes every 5 ms while a JSON Feed of 20 entries of 250 kB each is parsed
(inline on the loop: the baseline, measured in the same run; ``ParsePool(2)``: threads, the
default; ``ParsePool(2, processes=True)``: processes); the figure is the longest gap between two ticks. The last line
printed is one JSON object.

    python bench/parse.py [--sizes 75,150,300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from framewatch.ingest.parse.detect import ParsePool, parse_feed
from framewatch.ingest.parse.html_text import html_to_text
from framewatch.ingest.parse.quotes import split_post, split_quotes
from framewatch.ingest.parse.thread_memory import ThreadMemory
from framewatch.ingest.sources import Source

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PARAGRAPH = "<p>The council debated the budget at length, and the mayor spoke about housing costs.</p>"

INPUTS: dict[str, Callable[[int], str]] = {
    "paragraphs": lambda n: PARAGRAPH * (n // len(PARAGRAPH)),
    "quotes": lambda n: ("<blockquote><cite>Ann wrote:</cite>She said it first.</blockquote>" + PARAGRAPH) * (n // 160),
    "nested": lambda n: "<div>" * (n // 11) + "deep" + "</div>" * (n // 11),
    "line_breaks": lambda n: "words on one line<br>" * (n // 21),
    "one_line": lambda n: "<p>" + "word " * (n // 5) + "</p>",
    "escaped_script": lambda n: "<p>" + "&lt;" * (n // 4) + "script</p>",
}


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    """The fastest of *repeat* runs, in seconds (the least disturbed by other jobs)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def copied_reply(chars: int) -> Callable[[], Any]:
    memory = ThreadMemory()
    words = [f"w{i}" for i in range(chars // 4)]
    split_post("<p>" + " ".join(words) + ".</p>", memory=memory, thread_key="t", post_key="p1", author="a",
               published_at=T0)
    reply = "<p>" + " ".join(f"{words[i]} {words[i + 1]}." for i in range(0, len(words) - 20, 2)) + " " + " ".join(words[-12:]) + ".</p>"
    return lambda: split_post(reply, memory=memory, thread_key="t", post_key="p2", author="b",
                              published_at=T0 + timedelta(hours=1))


def heavy_feed() -> bytes:
    entries = [{"id": f"e{i}", "title": f"Entry {i}", "content_html": INPUTS["quotes"](250_000)} for i in range(20)]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Heavy", "items": entries}).encode()


async def loop_stall(parse: Callable[[], Any]) -> tuple[float, float]:
    """(longest gap between 5 ms ticks, parse seconds) while *parse* (a coroutine function) runs."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await parse()
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    return max(gaps), elapsed


async def stalls(body: bytes) -> dict[str, dict[str, float]]:
    source = Source("heavy", "https://heavy.example.org/feed.json", "news")
    kwargs = {"source": source, "url": source.url, "content_type": "application/feed+json", "fetched_at": T0}
    out: dict[str, dict[str, float]] = {}

    async def inline() -> None:
        parse_feed(body, memory=ThreadMemory(), **kwargs)

    gap, took = await loop_stall(inline)
    out["inline"] = {"max_loop_gap_s": round(gap, 3), "parse_s": round(took, 3)}
    for name, processes in (("thread", False), ("process", True)):
        pool = ParsePool(2, processes=processes)
        try:
            await pool.run(source.url, parse_feed, b'{"version": "https://jsonfeed.org/version/1", "items": []}', **kwargs)  # warm
            gap, took = await loop_stall(lambda p=pool: p.run(source.url, parse_feed, body, **kwargs))
        finally:
            pool.close()
        out[name] = {"max_loop_gap_s": round(gap, 3), "parse_s": round(took, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="75,150,300", help="input sizes in kB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) * 1000 for s in args.sizes.split(",")]
    figures: dict[str, dict[str, float]] = {}
    for name, make in INPUTS.items():
        markups = {n: make(n) for n in sizes}
        for label, fn in (("html_to_text", html_to_text), ("split_quotes", split_quotes)):
            row = {f"{n // 1000}kB": round(best_of(args.repeat, lambda m=markups[n], f=fn: f(m)), 4) for n in sizes}
            figures[f"{label}/{name}"] = row
            print(f"{label:13} {name:15} " + "  ".join(f"{k} {v:.3f}s" for k, v in row.items()), flush=True)
    row = {f"{n // 1000}kB": round(best_of(args.repeat, copied_reply(n)), 4) for n in sizes}
    figures["split_post/copied_fragments"] = row
    print(f"{'split_post':13} {'copied':15} " + "  ".join(f"{k} {v:.3f}s" for k, v in row.items()), flush=True)
    growth = {k: round(v[f"{sizes[-1] // 1000}kB"] / max(v[f"{sizes[0] // 1000}kB"], 1e-6), 2) for k, v in figures.items()}
    body = heavy_feed()
    loop = asyncio.run(stalls(body))
    for name, row2 in loop.items():
        print(f"event loop, parse {name:8}: longest stall {row2['max_loop_gap_s']:.3f}s while parsing "
              f"{len(body) / 1e6:.1f} MB for {row2['parse_s']:.2f}s", flush=True)
    result = {
        "sizes_kb": [n // 1000 for n in sizes],
        "seconds": figures,
        f"growth_{sizes[-1] // 1000}_over_{sizes[0] // 1000}": growth,
        "growth_median": statistics.median(growth.values()),
        "heavy_feed_bytes": len(body),
        "event_loop": loop,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
