"""``framewatch analyze FEED --codebook CB``: frame one feed (file or URL) now, without Kafka.

The feed is fetched with the ingest fetcher (timeouts and size cap from settings) and parsed with
the ingest parser, then framed by the same stage the processor runs. Prints one JSON line per
(item, watch), naming the item (``url``, ``title``, ``author``, ``published_at``, ``kind``).

The parser decides platform and kind as it does for ingest: the source given to it has no
platform forced (``auto``), and a feed found to be Discourse, phpBB, SMF or XenForo is forum
posts, so a reply is framed on its own words, not on its thread's title. Copied quotes are found
with a thread memory, as in ingest.

A feed that cannot be fetched or parsed ends with one ``error:`` line naming the reason and exit
status 1; an invalid codebook exits 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from framewatch.contracts import FramedItem, RawItem
from framewatch.errors import FramewatchError
from framewatch.settings import Settings
from framewatch.timeutil import utcnow


class AnalyzeError(FramewatchError):
    """The feed could not be fetched or parsed; ``reason`` is a fetch outcome or parse reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def feed_url(feed: str) -> str:
    """A URL for *feed*: http(s) and file URLs pass through, anything else is a local path."""
    if urlsplit(feed).scheme in ("http", "https", "file"):
        return feed
    return Path(feed).resolve().as_uri()


def fetch_items(feed: str, settings: Settings) -> list[RawItem]:
    """Fetch and parse *feed*; raises AnalyzeError with the fetch outcome or parse reason."""
    from framewatch.ingest.addresses import FetchPolicy
    from framewatch.ingest.fetcher import Fetcher
    from framewatch.ingest.parse.detect import FeedParseError, ThreadMemory, parse_feed
    from framewatch.ingest.sources import Source

    url = feed_url(feed)

    async def fetch() -> Any:
        fetcher = Fetcher.from_settings(settings)
        try:
            # a URL (or file) the user typed is opted in; links found in it never are
            return await fetcher.fetch(url, policy=FetchPolicy(allow_private=True))
        finally:
            await fetcher.aclose()

    result = asyncio.run(fetch())
    if not result.ok:
        detail = result.detail or (f"HTTP {result.status}" if result.status else "")
        raise AnalyzeError(result.outcome, detail)
    # kind "news" is only the default: a forum platform found in the feed makes its items forum posts
    source = Source(id="analyze", url=url, kind="news", platform="auto")
    try:
        parsed = parse_feed(
            result.body, source=source, url=url, content_type=result.content_type, fetched_at=utcnow(),
            memory=ThreadMemory(),
        )
    except FeedParseError as exc:
        raise AnalyzeError(exc.reason, exc.detail) from exc
    return list(parsed.items)


def summary_line(record: FramedItem, item: RawItem | None = None) -> dict[str, Any]:
    """The JSON object printed for one framed record (``author`` comes from its *item*)."""
    return {
        "id": record.item_id,
        "url": record.url,
        "title": record.title,
        "author": item.author if item is not None else None,
        "published_at": record.published_at.isoformat(),
        "kind": record.kind,
        "watch": record.watch_id,
        "frame": record.frame,
        "frames": record.frame_shares,
        "segments": [
            {"text": s.text, "frame": s.frame, "score": s.score, **({"cluster": s.cluster} if s.cluster else {})}
            for s in record.segments
        ],
    }


def analyze_feed(
    feed: str, codebook_path: str, settings: Settings, embedder_name: str | None = None
) -> list[tuple[FramedItem, RawItem]]:
    """Frame every entry of *feed* with the codebook: (record, its item) pairs.

    Raises ConfigError or AnalyzeError.
    """
    from framewatch.processing.framing.cli import stage_config
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder
    from framewatch.processing.framing.stage import FrameStage

    codebook = load_codebook(codebook_path)
    items = fetch_items(feed, settings)
    if not items:
        return []
    embedder = make_embedder(embedder_name or settings.model_name, precision=settings.model_precision,
                             backend=settings.model_backend, cache_dir=settings.model_cache_dir)
    stage = FrameStage(codebook, embedder, config=stage_config(settings))
    records, _report, _failures = stage.frame_items([(None, item) for item in items])
    by_id = {item.item_id: item for item in items}
    return [(record, by_id[record.item_id]) for record in records if record.item_id in by_id]
