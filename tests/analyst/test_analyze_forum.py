"""`framewatch analyze` on forum feeds: one row per post, named, and each reply framed on its own
words, exactly as ingest + process would segment it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from framewatch.ingest.parse.detect import ThreadMemory, parse_feed
from framewatch.ingest.sources import Source
from framewatch.processing.analyst.cli import analyze
from framewatch.processing.framing.segment import segment_item
from tests.helpers.paths import ROOT
from tests.ingest.parse.forum_feeds import HEADLINE, SITES, Entry, entry, feed

CODEBOOK = ROOT / "framewatch" / "sample" / "codebook.yaml"
ARTICLE = ("Officials say the social credit system is mostly court blacklists for debtors. Critics call it "
           "surveillance and punishment without a trial, straight out of Black Mirror.")
REPLIES = ("It makes people behave better.", "Nobody can appeal a blacklist.", "Scammers lose loans, good.")


def thread_entries(platform: str) -> list[Entry]:
    """An article shared as a thread's first post, then one-line replies, listed newest first."""
    site = SITES[platform]
    first = entry(site, 7, 1, html=f"<p>{ARTICLE}</p>")
    replies = [entry(site, 7, n, html=f"<p>{text}</p>", title=f"Re: {HEADLINE}" if platform in ("phpbb", "smf") else HEADLINE)
               for n, text in enumerate(REPLIES, start=2)]
    return [*reversed(replies), first]


def run(path: Path) -> list[dict]:
    result = CliRunner().invoke(
        analyze, [str(path), "--codebook", str(CODEBOOK), "--embedder", "fake"],
        env={"FRAMEWATCH_CLUSTER_NOVELTY_MAX": "0"},
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("platform", ["xenforo", "discourse", "phpbb", "smf"])
@pytest.mark.parametrize("shape", ["rss", "atom"])
def test_forum_thread_rows_are_named_posts_framed_on_their_own_words(tmp_path: Path, platform: str, shape: str) -> None:
    entries = thread_entries(platform)
    path = tmp_path / f"{platform}.{shape}"
    path.write_bytes(feed(shape, SITES[platform], entries))
    rows = run(path)
    by_url = {e.link: e for e in entries}
    assert sorted(row["url"] for row in rows) == sorted(by_url)  # every post, once: no reply lost to a shared id
    assert len({row["id"] for row in rows}) == len(entries)
    for row in rows:
        e = by_url[row["url"]]
        assert (row["title"], row["author"], row["kind"]) == (e.title, e.author, "forum_post")
        assert datetime.fromisoformat(row["published_at"]) == e.published.astimezone(UTC)
        texts = [s["text"] for s in row["segments"]]
        if e.html.startswith(f"<p>{ARTICLE}"):
            continue
        # a one-line reply is its line, not the headline of the article that opened the thread
        assert texts == [e.html.removeprefix("<p>").removesuffix("</p>")]


def test_analyze_segments_as_ingest_and_process_do(tmp_path: Path) -> None:
    """One code path: the feed read as a forum source by ingest gives the same segments."""
    site = SITES["xenforo"]
    body = feed("rss", site, thread_entries("xenforo"))
    path = tmp_path / "thread.rss"
    path.write_bytes(body)
    analyzed = {row["url"]: [s["text"] for s in row["segments"]] for row in run(path)}
    fetched = datetime(2024, 3, 20, tzinfo=UTC)
    items = parse_feed(body, source=Source(id="xf", url=site.feed_url, kind="forum"), url=site.feed_url,
                       content_type=None, fetched_at=fetched, memory=ThreadMemory()).items
    ingested = {i.url: [s.text for s in segment_item(i)] for i in items}
    assert analyzed == ingested


def test_plain_news_feed_rows_stay_articles(tmp_path: Path) -> None:
    site = SITES["rss"]
    entries = [entry(site, 1, n, html=f"<p>{text}</p>") for n, text in enumerate(REPLIES, start=1)]
    path = tmp_path / "news.xml"
    path.write_bytes(feed("rss", site, entries))
    rows = run(path)
    assert {row["kind"] for row in rows} == {"article"} and len(rows) == len(entries)
    # a short news item is framed with its headline, as before
    assert all(row["segments"][0]["text"].startswith(HEADLINE) for row in rows)
