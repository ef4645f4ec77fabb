"""A synthetic stream of raw items with a planted framing spike, for end-to-end tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from framewatch.contracts import RawItem, stable_id

VOCAB = {
    "dystopia": ["cameras", "surveillance", "punish", "citizens", "dystopia", "panopticon", "tracking", "orwellian", "watched"],
    "trust": ["fraud", "consumers", "protect", "companies", "contracts", "market", "trust", "debts", "blacklist", "vaccines"],
    "fairness": ["opaque", "appeal", "unfair", "mistakes", "transparency", "rights", "errors", "lawyers", "arbitrary"],
}
NOVEL = ["robots", "farming", "harvest", "tractors", "drones", "irrigation", "soil"]


def text_for(frame: str, rng: random.Random) -> str:
    """A short passage in *frame*'s vocabulary, with unique filler so no two are near-copies."""
    words = rng.sample(VOCAB.get(frame, NOVEL), 6)
    filler = [f"z{rng.randrange(10**9)}" for _ in range(4)]
    return "Social credit " + " ".join(words[:3] + filler[:2] + words[3:] + filler[2:]) + "."


def item(n: int, frame: str, published: datetime, rng: random.Random, outlet: str = "Wire") -> RawItem:
    """One raw news item framed as *frame* (or off-codebook when *frame* is 'novel')."""
    return RawItem(
        item_id=stable_id("synthetic", str(n)), source_id="synthetic", feed_url="http://127.0.0.1/synthetic",
        kind="article", url=f"http://127.0.0.1/synthetic/{n}", title=f"Story {n} ({frame})", author=None,
        published_at=published, fetched_at=published, text=text_for(frame, rng), outlet=outlet,
    )


def planted_spike(now: datetime, seed: int = 7) -> tuple[list[RawItem], list[RawItem]]:
    """Baseline (6 h, 20 items/h, mixed frames) and spike (last 50 min, dystopia dominates)."""
    rng = random.Random(seed)
    baseline, spike = [], []
    mix = ["dystopia", "trust", "trust", "fairness"]
    for n in range(120):
        published = now - timedelta(hours=7) + timedelta(minutes=3 * n)
        outlet = "Wire" if n % 2 else "Daily"
        baseline.append(item(n, mix[n % 4], published, rng, outlet))
    for k in range(40):
        published = now - timedelta(minutes=50) + timedelta(seconds=70 * k)
        frame = "dystopia" if k % 5 else "trust"
        spike.append(item(1000 + k, frame, published, rng, "Wire" if k % 2 else "Daily"))
    for k in range(6):  # a small off-codebook story, for emergent framings
        spike.append(item(2000 + k, "novel", now - timedelta(minutes=30 - k), rng))
    return baseline, spike
