"""The demo stream `framewatch up` replays without --sources: seeded items, and their feeds rendered for any time.

A newcomer's first `up` must show data at once: share-of-voice windows need items published in
the last minutes and hours, and the spike detector needs a 48 h baseline and something to find.
So the stream is generated around an anchor (`up`'s start): about 6 items an hour over the 48 h
before it, a planted framing shift (``dystopia`` from 20% to 70%, in a surge of 48 items an hour)
from an hour before the anchor to half an hour after, then the quiet rate again for 7 h. A feed
rendered at time *at* lists only the items published by then, so items keep arriving while `up`
runs.

Items come from five feeds, in the forms the parsers read (see /work/shared/FEEDS.md): two RSS 2.0
outlets and one Atom outlet, and two Discourse topic feeds (``/t/<slug>/<id>.rss``, one item per
post) whose replies often quote an earlier post at length (``aside.quote``) and add a line or
two. A real topic feed lists only its last ~25 posts; the demo lists every post published so
far, so the first poll reads the whole history. Texts come from ``sample/demo/texts.yaml``, each
sentence written in its frame's codebook words; combinations are drawn without repeats so no
item is a near copy of another (the processor would count a copy as a reprint, i.e. not at all).
"""

from __future__ import annotations

import functools
import html
import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape

import yaml

DEFAULT_SEED = 7
HISTORY_H = 48  # the spike baseline's hours
BASE_PER_H = 6
SURGE_PER_H = 48
SURGE_BEFORE_S = 3600  # the shift starts an hour before the anchor ...
SURGE_AFTER_S = 1800  # ... and goes on for the first half hour of `up`
FUTURE_H = 7  # then the quiet rate goes on this long
PLANTED = "dystopia"
BASELINE_SHARES = {"dystopia": 0.20, "consumer_trust": 0.30, "fairness": 0.25, "behave_better": 0.25}
SURGE_SHARES = {"dystopia": 0.70, "consumer_trust": 0.10, "fairness": 0.10, "behave_better": 0.10}
NEWS_SHARE = 0.6  # of items; the rest are forum posts
QUOTE_SHARE = 0.7  # of replies
POLL_INTERVAL = "60s"


@dataclass(frozen=True, slots=True)
class Quote:
    """An earlier post quoted by a reply."""

    author: str
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class DemoItem:
    """One item of the demo stream: a news article or a forum post, with the frame it was written in."""

    feed: str
    guid: str
    published_at: datetime
    frame: str
    title: str
    author: str
    paragraphs: tuple[str, ...]
    number: int = 0  # forum post number in its topic (1 opens it); 0 for news
    quote: Quote | None = None

    @property
    def text(self) -> str:
        """The author's own words (quotes excluded)."""
        return "\n\n".join(self.paragraphs)


@functools.cache
def demo_texts() -> dict[str, Any]:
    """The bundled texts (framewatch/sample/demo/texts.yaml)."""
    path = resources.files("framewatch") / "sample" / "demo" / "texts.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def feed_paths(texts: dict[str, Any] | None = None) -> dict[str, str]:
    """URL path of every demo feed -> its feed id."""
    texts = texts or demo_texts()
    paths = {f"/{n['id']}.{'xml' if n['format'] == 'rss' else 'atom'}": n["id"] for n in texts["news"]}
    paths.update({f"/t/{f['slug']}/{f['topic']}.rss": f["id"] for f in texts["forums"]})
    return paths


def sources_yaml(base: str, texts: dict[str, Any] | None = None) -> str:
    """A sources file for the demo feeds served at *base* (a loopback server: allow_private)."""
    texts = texts or demo_texts()
    by_id = {**{n["id"]: n for n in texts["news"]}, **{f["id"]: f for f in texts["forums"]}}
    lines = ["# Written by `framewatch up`: the bundled demo stream, served locally.", "sources:"]
    for path, feed in feed_paths(texts).items():
        forum = feed.startswith("demo-forum")
        outlet = "Demo Forum" if forum else by_id[feed]["outlet"]
        lines += [f"  - id: {feed}", f'    url: "{base}{path}"', f"    kind: {'forum' if forum else 'news'}",
                  f"    outlet: {outlet}", f"    poll_interval: {POLL_INTERVAL}", "    allow_private: true"]
        if forum:
            lines.append("    platform: discourse")
    return "\n".join(lines) + "\n"


def _quota(shares: dict[str, float], n: int, rng: random.Random, block: int = 20) -> list[str]:
    """*n* frames in these shares, shuffled within blocks of *block* items (so every few hours
    holds the shares, and the detector's recency-weighted baseline is the stated one)."""
    if n > block:
        return [f for k in range(0, n, block) for f in _quota(shares, min(block, n - k), rng, block)]
    exact = {f: s * n for f, s in shares.items()}
    counts = {f: int(v) for f, v in exact.items()}
    for f in sorted(exact, key=lambda f: counts[f] - exact[f])[: n - sum(counts.values())]:
        counts[f] += 1
    frames = [f for f, c in counts.items() for _ in range(c)]
    rng.shuffle(frames)
    return frames


def _times(start_s: float, end_s: float, n: int, rng: random.Random) -> list[float]:
    """*n* times in [start, end), one in each of n equal slots: items arrive steadily, never in
    long gaps (a newcomer watching `up` sees one every minute or two during the shift)."""
    step = (end_s - start_s) / n
    return [start_s + (k + rng.uniform(0.05, 0.95)) * step for k in range(n)]


def _combos(rng: random.Random, *sizes: int) -> itertools.cycle[tuple[int, ...]]:
    """Index combinations (first, then others in rising order: the same sentences swapped would
    be a near copy) in a seeded order; every set of others (most of an item's words) comes once
    before any comes again with a new first."""
    combos = [c for c in itertools.product(*(range(s) for s in sizes)) if all(a < b for a, b in itertools.pairwise(c[1:]))]
    rng.shuffle(combos)
    seen: Counter[tuple[int, ...]] = Counter()
    rounds = []
    for c in combos:
        rounds.append(seen[c[1:]])
        seen[c[1:]] += 1
    return itertools.cycle([c for _, c in sorted(zip(rounds, combos, strict=True), key=lambda rc: rc[0])])


def demo_items(now: datetime, seed: int = DEFAULT_SEED) -> list[DemoItem]:
    """The whole stream around the anchor *now*, oldest first (future items included)."""
    texts, rng = demo_texts(), random.Random(seed)
    t0 = now.timestamp()
    surge_start, surge_end = t0 - SURGE_BEFORE_S, t0 + SURGE_AFTER_S
    surge_n = round(SURGE_PER_H * (SURGE_BEFORE_S + SURGE_AFTER_S) / 3600)
    phases = [
        (t0 - HISTORY_H * 3600, surge_start, BASE_PER_H * HISTORY_H, BASELINE_SHARES),
        (surge_start, surge_end, surge_n, SURGE_SHARES),
        (surge_end, t0 + FUTURE_H * 3600, round(BASE_PER_H * (FUTURE_H * 3600 - SURGE_AFTER_S) / 3600), BASELINE_SHARES),
    ]
    timeline = [(t, f) for a, b, n, shares in phases for t, f in zip(_times(a, b, n, rng), _quota(shares, n, rng), strict=True)]
    frames = texts["frames"]
    news_pick = {f: _combos(rng, len(v["openers"]), len(v["details"]), len(v["details"])) for f, v in frames.items()}
    forum_pick = {f: _combos(rng, len(texts["forum_tails"][f]), len(v), len(v)) for f, v in texts["forum_lines"].items()}
    topics: dict[str, list[DemoItem]] = {f["id"]: [] for f in texts["forums"]}
    items: list[DemoItem] = []
    for t, frame in timeline:
        at = datetime.fromtimestamp(round(t), UTC)
        fill = {"city": rng.choice(texts["cities"]), "n": rng.randint(12, 480)}
        if rng.random() < NEWS_SHARE:
            outlet = rng.choice(texts["news"])
            opener, d1, d2 = next(news_pick[frame])
            v = frames[frame]
            paragraphs = (v["openers"][opener].format(**fill), f"{v['details'][d1]} {v['details'][d2]}".format(**fill))
            items.append(DemoItem(outlet["id"], f"{outlet['id']}-{seed}-{len(items)}", at, frame,
                                  rng.choice(v["headlines"]).format(**fill), rng.choice(outlet["authors"]), paragraphs))
            continue
        forum = rng.choice(texts["forums"])
        posts = topics[forum["id"]]
        tail, l1, l2 = next(forum_pick[frame])
        lines = texts["forum_lines"][frame]
        words = (lines[l1], lines[l2], texts["forum_tails"][frame][tail].format(**fill))
        author, quote = rng.choice(texts["users"]), None
        others = [p for p in posts[-6:] if p.author != author]
        if others and rng.random() < QUOTE_SHARE:
            quoted = rng.choice(others)
            quote = Quote(quoted.author, quoted.number, quoted.text)
        number = len(posts) + 1
        post = DemoItem(forum["id"], f"demo.invalid-post-{forum['topic']}-{number}", at, frame, forum["title"],
                        author, (" ".join(words),), number, quote)
        posts.append(post)
        items.append(post)
    return items


def visible(items: Sequence[DemoItem], at: datetime) -> list[DemoItem]:
    """The items published by *at*: a feed never shows the future."""
    return [i for i in items if i.published_at <= at]


def render_feed(feed: str, items: Sequence[DemoItem], at: datetime) -> tuple[bytes, str]:
    """(body, content type) of demo feed *feed* as served at *at*, newest item first."""
    texts = demo_texts()
    shown = sorted((i for i in visible(items, at) if i.feed == feed), key=lambda i: i.published_at, reverse=True)
    news = {n["id"]: n for n in texts["news"]}
    forums = {f["id"]: f for f in texts["forums"]}
    if feed in forums:
        return _discourse_rss(forums[feed], shown, at).encode(), "application/rss+xml; charset=utf-8"
    if feed not in news:
        raise KeyError(feed)
    if news[feed]["format"] == "atom":
        return _atom(news[feed], shown, at).encode(), "application/atom+xml; charset=utf-8"
    return _rss(news[feed], shown, at).encode(), "application/rss+xml; charset=utf-8"


def _paragraphs(item: DemoItem) -> str:
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in item.paragraphs)


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())[:60]


def _rss(outlet: dict[str, Any], items: Sequence[DemoItem], at: datetime) -> str:
    site = f"http://{outlet['id']}.demo.invalid"
    entries = "".join(
        f"""  <item>
    <title>{escape(i.title)}</title>
    <link>{site}/china/{_slug(i.title)}-{i.guid.rsplit('-', 1)[1]}</link>
    <guid isPermaLink="false">{i.guid}</guid>
    <dc:creator>{escape(i.author)}</dc:creator>
    <pubDate>{format_datetime(i.published_at)}</pubDate>
    <content:encoded><![CDATA[{_paragraphs(i)}]]></content:encoded>
  </item>
""" for i in items)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>{escape(outlet['outlet'])}: China</title>
  <link>{site}/china</link>
  <description>Demo coverage bundled with framewatch</description>
  <language>en</language>
  <lastBuildDate>{format_datetime(at.astimezone(UTC))}</lastBuildDate>
{entries}</channel>
</rss>
"""


def _atom(outlet: dict[str, Any], items: Sequence[DemoItem], at: datetime) -> str:
    site = f"http://{outlet['id']}.demo.invalid"
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = "".join(
        f"""  <entry>
    <title>{escape(i.title)}</title>
    <id>urn:{i.guid}</id>
    <link href="{site}/asia/{_slug(i.title)}-{i.guid.rsplit('-', 1)[1]}"/>
    <published>{i.published_at.strftime('%Y-%m-%dT%H:%M:%SZ')}</published>
    <updated>{i.published_at.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>
    <author><name>{escape(i.author)}</name></author>
    <content type="html">{escape(_paragraphs(i))}</content>
  </entry>
""" for i in items)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>{escape(outlet['outlet'])}: Asia</title>
  <id>urn:{outlet['id']}:asia</id>
  <updated>{stamp}</updated>
  <link href="{site}/asia/"/>
{entries}</feed>
"""


def _discourse_rss(forum: dict[str, Any], items: Sequence[DemoItem], at: datetime) -> str:
    topic_url = f"http://forum.demo.invalid/t/{forum['slug']}/{forum['topic']}"
    entries = []
    for i in items:
        own = _paragraphs(i)
        if i.quote is not None:
            q = i.quote
            own = (f'<aside class="quote no-group" data-username="{escape(q.author)}" data-post="{q.number}" '
                   f'data-topic="{forum["topic"]}">\n<div class="title">{escape(q.author)}:</div>\n'
                   f"<blockquote><p>{html.escape(q.text, quote=False)}</p></blockquote>\n</aside>\n{own}")
        entries.append(f"""    <item>
      <title>{escape(forum['title'])}</title>
      <dc:creator><![CDATA[{i.author}]]></dc:creator>
      <description><![CDATA[<p>@{i.author} wrote:</p>
<blockquote>{own}</blockquote>
<p><a href="{topic_url}/{i.number}">Read full topic</a></p>]]></description>
      <link>{topic_url}/{i.number}</link>
      <pubDate>{format_datetime(i.published_at)}</pubDate>
      <guid isPermaLink="false">{i.guid}</guid>
    </item>
""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom" version="2.0">
  <channel>
    <title>{escape(forum['title'])}</title>
    <link>{topic_url}</link>
    <description>Posts in a demo Discourse topic</description>
    <generator>Discourse</generator>
    <lastBuildDate>{format_datetime(at.astimezone(UTC))}</lastBuildDate>
{"".join(entries)}  </channel>
</rss>
"""
