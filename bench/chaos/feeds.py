"""The chaos soak's synthetic stream: RSS feeds on a local server, growing at a fixed rate.

Every item has a unique link (``/items/<n>``), which the framed record carries as ``url``: that
is how the verdict matches what was published to what was framed. Texts use one vocabulary per
frame of the sample codebook (framewatch/sample/codebook.yaml), with unique filler words so no
two items are near-copies (the processor would count a copy as a duplicate, not an item).

Publication times decide what the spike rule sees (processing/trends/spikes.py): most items
(*background*) are back-dated 2-8 h, so they form the baseline hours before the current window;
a few (*current*, 1%) are published now with the baseline's frame mix; and each *planted spike* is a
burst of items of one frame published now, which raises that frame's share of the current
window far above its baseline. A feed shows the items added in its last ``window_s`` seconds,
long enough to outlast any outage of the ingest worker the soak causes.
"""

from __future__ import annotations

import html
import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from tests.helpers.feed_server import FeedServer, Route

# words from each sample-codebook frame's description and examples
VOCAB: dict[str, list[str]] = {
    "dystopia": ["cameras", "surveillance", "punish", "citizens", "orwellian", "panopticon", "tracking",
                 "dystopian", "algorithms", "watched", "jaywalking", "nightmare"],
    "consumer_trust": ["fraud", "consumers", "protect", "businesses", "unpaid", "unsafe", "products", "market",
                       "companies", "contracts", "vaccines", "loans"],
    "fairness": ["opaque", "arbitrary", "unfair", "appeal", "errors", "mistake", "transparency", "rating",
                 "blacklisted", "worries", "lawyers", "explain"],
    "behave_better": ["honesty", "behaviour", "rewards", "trustworthy", "civil", "politely", "queue",
                      "discounts", "conduct", "encourages", "courteous", "manners"],
}
FRAMES = tuple(VOCAB)
BACKGROUND = "background"
CURRENT = "current"


def text_for(frame: str, n: int, rng: random.Random) -> str:
    """A passage in *frame*'s vocabulary, with filler unique to item *n*."""
    words = rng.sample(VOCAB[frame], 8)
    return f"Social credit {' '.join(words[:4])}, {' '.join(words[4:])} (report {n}-{rng.randrange(10**6)})."


@dataclass(frozen=True, slots=True)
class Published:
    """One item put into a feed (a line of the published log)."""

    n: int
    feed: str
    url: str
    frame: str
    role: str  # background | current | spike:<k>
    published_at: str
    added_s: float


@dataclass(frozen=True, slots=True)
class Spike:
    """A planted spike: *size* items of *frame*, published now, from *at_s* into the run."""

    k: int
    frame: str
    at_s: float
    size: int


class SyntheticStream:
    """Adds items to *feeds* feeds at *rate* items/s and serves them as RSS (a ticker thread)."""

    def __init__(self, server: FeedServer, log_path: Path, *, rate: float, feeds: int, seed: int,
                 spikes: list[Spike], window_s: float = 150.0, current_share: float = 0.01) -> None:
        self.server = server
        self.rate = rate
        self.feeds = [f"/feeds/f{i}.xml" for i in range(feeds)]
        self.rng = random.Random(seed)
        self.spikes = spikes
        self.window_s = window_s
        self.current_share = current_share
        self.items: list[Published] = []
        self._by_feed: dict[str, list[tuple[Published, str]]] = {f: [] for f in self.feeds}
        self._queue: list[tuple[str, str]] = []  # (frame, role) of spike items still to add
        self._log = log_path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-feeds", daemon=True)
        self._started = 0.0
        self._spiked: set[int] = set()
        for path in self.feeds:
            server.routes[path] = Route(body=self._render(path, []))

    def start(self) -> None:
        """Start adding items."""
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop adding items (the feeds keep serving what they show)."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._log.close()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def count(self) -> int:
        """Items published so far."""
        with self._lock:
            return len(self.items)

    def _run(self) -> None:
        owed = 0.0
        last = time.monotonic()
        while not self._stop.wait(0.25):
            now = time.monotonic()
            owed += (now - last) * self.rate
            last = now
            for spike in self.spikes:
                if spike.k not in self._spiked and now - self._started >= spike.at_s:
                    self._spiked.add(spike.k)
                    self._queue += [(spike.frame, f"spike:{spike.k}")] * spike.size
            due = int(owed)
            owed -= due
            # a spike's items take the place of the stream's, so the rate stays as asked
            batch = [self._next_kind() for _ in range(due)]
            self._add(batch, now - self._started)

    def _next_kind(self) -> tuple[str, str]:
        if self._queue:
            return self._queue.pop(0)
        role = CURRENT if self.rng.random() < self.current_share else BACKGROUND
        return self.rng.choice(FRAMES), role

    def _add(self, batch: list[tuple[str, str]], added_s: float) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        touched = set()
        with self._lock:
            for frame, role in batch:
                n = len(self.items)
                feed = self.feeds[n % len(self.feeds)]
                published = now if role != BACKGROUND else now - timedelta(seconds=self.rng.uniform(2 * 3600, 8 * 3600))
                item = Published(n, feed, self.server.url(f"/items/{n}"), frame, role,
                                 published.replace(microsecond=0).isoformat(), round(added_s, 3))
                self.items.append(item)
                self._by_feed[feed].append((item, self._entry(item, text_for(frame, n, self.rng))))
                self._log.write(json.dumps(asdict(item)) + "\n")
                touched.add(feed)
            self._log.flush()
            for feed in touched:
                shown = [e for e in self._by_feed[feed] if added_s - e[0].added_s <= self.window_s]
                self._by_feed[feed] = shown
                self.server.routes[feed] = Route(body=self._render(feed, [entry for _, entry in shown]))

    @staticmethod
    def _entry(item: Published, text: str) -> str:
        pub = format_datetime(datetime.fromisoformat(item.published_at), usegmt=True)
        return (f"<item><title>Story {item.n}: social credit</title><link>{item.url}</link>"
                f'<guid isPermaLink="true">{item.url}</guid><pubDate>{pub}</pubDate>'
                f"<description>{html.escape(f'<p>{text}</p>')}</description></item>")

    def _render(self, feed: str, entries: list[str]) -> bytes:
        body = "".join(reversed(entries))  # newest first, as feeds are
        return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                f"<title>Chaos feed {feed}</title><link>{self.server.url('/')}</link>"
                f"<description>synthetic</description>{body}</channel></rss>").encode()


def sources_yaml(server: FeedServer, feeds: list[str], poll_s: int = 10) -> str:
    """A sources file polling every feed of *server* every *poll_s* seconds (10 s is the least)."""
    lines = ["sources:"]
    for i, path in enumerate(feeds):
        lines.append(f"  - {{id: chaos-{i}, url: '{server.url(path)}', kind: news, outlet: Outlet {i % 3},"
                     f" poll_interval: {poll_s}s, allow_private: true}}")
    return "\n".join(lines) + "\n"
