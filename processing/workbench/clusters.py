"""Emergent clusters as the watch page shows them: size and samples from the API's read, plus
keywords and growth (segments in the last day against the day before) from the watch's items."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from framewatch.processing.serve import reads
from framewatch.processing.serve.lake import FRAMED_ITEMS, Lake

KEYWORDS = 6
WINDOW = timedelta(days=1)
WORD = re.compile(r"[^\W\d_][\w'-]{2,}", re.UNICODE)
STOP = frozenset(["the", "and", "for", "that", "with", "this", "from", "have", "has", "had", "was", "were", "are", "been", "being", "will", "would", "could", "should", "about", "into", "over", "than", "then", "them", "they", "their", "there", "these", "those", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "how", "its", "it's", "not", "but", "all", "any", "can", "our", "out", "his", "her", "him", "she", "you", "your", "yours", "ours", "also", "just", "more", "most", "such", "very", "said", "says", "one", "two", "new", "after", "before", "under", "between", "because", "upon", "again"])


def keywords(texts: list[str], n: int = KEYWORDS) -> list[str]:
    """The most frequent content words of *texts* (counted once per passage)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in (m.group(0).lower() for m in WORD.finditer(text or "")) if w not in STOP})
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def cluster_cards(lake: Lake, watch: str, now: datetime) -> list[dict[str, Any]]:
    """Each emergent cluster of *watch*: id, size, items, samples, keywords, recent and previous counts."""
    found = reads.clusters(lake, watch)
    if found.height == 0:
        return []
    lf = lake.scan(FRAMED_ITEMS, watch=watch)
    stats: dict[str, dict[str, Any]] = {}
    if lf is not None:
        segs = (lf.filter(pl.col("watch_id") == watch).select("published_at", "segments").explode("segments")
                .filter(pl.col("segments").is_not_null())
                .select("published_at", pl.col("segments").struct.field("cluster").alias("id"),
                        pl.col("segments").struct.field("text").alias("text"))
                .filter(pl.col("id").is_not_null())
                .group_by("id").agg(
                    pl.col("text").head(200).alias("texts"),
                    (pl.col("published_at") >= now - WINDOW).sum().alias("recent"),
                    ((pl.col("published_at") < now - WINDOW) & (pl.col("published_at") >= now - 2 * WINDOW)).sum()
                    .alias("previous"))
                .collect())
        stats = {r["id"]: r for r in segs.to_dicts()}
    cards = []
    for row in found.to_dicts():
        s = stats.get(row["id"], {"texts": row["samples"], "recent": 0, "previous": 0})
        recent, previous = int(s["recent"]), int(s["previous"])
        cards.append({**row, "keywords": keywords(list(s["texts"])), "recent": recent, "previous": previous,
                      "growth": growth_words(recent, previous)})
    return cards


def growth_words(recent: int, previous: int) -> str:
    """Growth in words: the last day's segments against the day before."""
    if previous == 0:
        return f"{recent} in the last day (none the day before)" if recent else "no segments in the last two days"
    change = (recent - previous) / previous
    return f"{recent} in the last day, {change:+.0%} on the day before ({previous})"
