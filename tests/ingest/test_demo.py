"""The demo stream `framewatch up` replays: deterministic, never ahead of the clock, parsed by the
real parsers, served on 127.0.0.1, and carrying a framing shift the spike rule catches."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from framewatch import contracts
from framewatch.contracts import ANY, Alert
from framewatch.ingest import demo
from framewatch.ingest.cli import run_ingest
from framewatch.ingest.parse.detect import parse_feed
from framewatch.ingest.sources import Source, load_sources
from framewatch.processing.framing.cli import run_processor
from framewatch.processing.framing.codebook import load_codebook
from framewatch.processing.trends.cli import run_aggregator
from framewatch.processing.trends.cli import spike_config as aggregator_spike_config
from framewatch.processing.trends.spikes import SpikeConfig, current_window_end, evaluate_share
from framewatch.settings import ALERTS, Settings
from framewatch.stack import SAMPLE_DIR, demo_sources, serve_sample_feeds
from tests.helpers.waiting import wait_until

NOW = datetime(2026, 12, 2, 10, 2, 17, tzinfo=UTC)
WATCH = "social-credit"


def spike_config() -> SpikeConfig:
    """The thresholds the aggregator runs with by default (settings, not the dataclass's own)."""
    return aggregator_spike_config(Settings())


class LabelCounts:
    """The detector's CountsView over the generator's own frame labels."""

    def __init__(self, items: list[demo.DemoItem]) -> None:
        self.counts: Counter[tuple[str, str, int]] = Counter()
        for item in items:
            t = int(item.published_at.timestamp())
            for gran, step in (("5m", 300), ("1h", 3600)):
                self.counts[(item.frame, gran, t - t % step)] += 1
                self.counts[(ANY, gran, t - t % step)] += 1

    def count(self, watch: str, frame: str, granularity: str, bucket_s: int, outlet: str = ANY) -> int:
        return self.counts[(frame, granularity, bucket_s)]

    def baseline_stamp(self, watch: str, hour_s: int) -> tuple[int, ...]:
        return ()


def source_of(feed: str, url: str) -> Source:
    forum = feed.startswith("demo-forum")
    return Source(feed, url, "forum" if forum else "news", None, 60.0, "discourse" if forum else "auto", (), True)


def test_the_stream_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    first, again, other = demo.demo_items(NOW, 3), demo.demo_items(NOW, 3), demo.demo_items(NOW, 4)
    assert first == again
    assert [i.text for i in first] != [i.text for i in other]
    assert all(i.published_at.tzinfo is not None for i in first)
    assert [i.published_at for i in first] == sorted(i.published_at for i in first)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_few_hundred_items_over_two_days_with_forum_quotes(seed: int) -> None:
    items = demo.demo_items(NOW, seed)
    shown = demo.visible(items, NOW)
    assert 300 <= len(items) <= 400 and 280 <= len(shown) < len(items)
    assert min(i.published_at for i in items) >= NOW - timedelta(hours=demo.HISTORY_H)
    assert max(i.published_at for i in shown) <= NOW
    assert len({i.feed for i in items}) == len(demo.feed_paths())
    posts = [i for i in items if i.number]
    quoting = [p for p in posts if p.quote is not None]
    assert len(posts) > 100 and len(quoting) > 0.5 * len(posts)
    by_number = {(p.feed, p.number): p for p in posts}
    for post in quoting:
        assert post.quote is not None
        quoted = by_number[(post.feed, post.quote.number)]
        assert quoted.published_at <= post.published_at and quoted.author != post.author
        assert post.quote.text == quoted.text and post.quote.text not in post.text
    # no two items say the same thing (the processor would count a copy as a reprint)
    assert len({i.text for i in items}) == len(items)


def test_a_feed_never_shows_the_future_and_new_items_keep_arriving() -> None:
    items = demo.demo_items(NOW, 5)
    seen = []
    for minutes in (0, 5, 10, 30):
        at = NOW + timedelta(minutes=minutes)
        shown = 0
        for path, feed in demo.feed_paths().items():
            body, content_type = demo.render_feed(feed, items, at)
            parsed = parse_feed(body, source=source_of(feed, f"http://127.0.0.1:1{path}"),
                                url=f"http://127.0.0.1:1{path}", content_type=content_type, fetched_at=at)
            assert parsed.items and max(i.published_at for i in parsed.items) <= at
            shown += len(parsed.items)
        seen.append(shown)
    assert seen[0] < seen[1] < seen[2] < seen[3]


def test_the_planted_shift_clears_every_threshold_of_the_spike_rule_in_the_first_ten_minutes() -> None:
    cfg = spike_config()
    for seed in range(1, 9):
        items = demo.demo_items(NOW, seed)
        for minutes in (0, 5, 10):
            at = NOW + timedelta(minutes=minutes)
            view = LabelCounts(demo.visible(items, at))
            end = current_window_end(at.timestamp())
            ev = evaluate_share(view, WATCH, demo.PLANTED, end, cfg)
            assert ev.fires, ev
            # with margin: the share more than doubles, and the score clears the threshold by 1
            assert ev.count >= 2 * cfg.min_count and ev.observed_share >= 2.5 * ev.baseline_share
            assert ev.score >= cfg.z_threshold + 1.0, ev
            assert 0.15 <= ev.baseline_share <= 0.25 <= 0.6 <= ev.observed_share
            others = [evaluate_share(view, WATCH, f, end, cfg) for f in demo.BASELINE_SHARES if f != demo.PLANTED]
            assert not any(o.fires for o in others)
        # and the baseline hours before the shift are quiet: no alert a day earlier
        day_before = NOW - timedelta(hours=20)
        view = LabelCounts(demo.visible(items, day_before))
        assert not evaluate_share(view, WATCH, demo.PLANTED, current_window_end(day_before.timestamp()), cfg).fires


def test_every_feed_parses_with_the_real_parsers_and_forum_quotes_stay_apart() -> None:
    items = demo.demo_items(NOW, 6)
    at = NOW + timedelta(minutes=1)
    shown = demo.visible(items, at)
    total = 0
    for path, feed in demo.feed_paths().items():
        url = f"http://127.0.0.1:8080{path}"
        body, content_type = demo.render_feed(feed, items, at)
        parsed = parse_feed(body, source=source_of(feed, url), url=url, content_type=content_type, fetched_at=at)
        expected = [i for i in shown if i.feed == feed]
        assert len(parsed.items) == len(expected) and not parsed.skipped
        assert len({r.item_id for r in parsed.items}) == len(expected)
        by_time = {i.published_at: i for i in expected}
        for raw in parsed.items:
            item = by_time[raw.published_at]
            assert raw.text.split() == item.text.split(), raw.item_id
            if feed.startswith("demo-forum"):
                assert raw.kind == "forum_post" and raw.thread_id is not None
                if item.quote is None:
                    assert raw.quotes == ()
                else:
                    assert [q.text.split() for q in raw.quotes] == [item.quote.text.split()]
                    assert raw.quotes[0].author == item.quote.author
            else:
                assert raw.kind == "article" and raw.title == item.title
        total += len(parsed.items)
    assert total == len(shown)


def test_the_feed_server_answers_on_loopback_with_the_demo_feeds(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    server, base = serve_sample_feeds(now, seed=11)
    try:
        assert base.startswith("http://127.0.0.1:")
        sources_file = tmp_path / "sources.yaml"
        sources_file.write_text(demo_sources(base))
        sources = load_sources(sources_file)
        assert {s.url.removeprefix(base) for s in sources} == set(demo.feed_paths())
        assert all(s.poll_interval_s == 60 and s.allow_private for s in sources)
        items = 0
        for source in sources:
            with urllib.request.urlopen(source.url, timeout=10) as resp:
                body, content_type = resp.read(), resp.headers["Content-Type"]
            parsed = parse_feed(body, source=source, url=source.url, content_type=content_type,
                                fetched_at=datetime.now(UTC))
            items += len(parsed.items)
        stream = demo.demo_items(now, 11)
        assert len(demo.visible(stream, now)) <= items <= len(demo.visible(stream, datetime.now(UTC)))
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing.xml", timeout=10)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


class LabelEmbedder:
    """A fake embedder that knows the demo's labels: every passage of an item (and every anchor
    of a frame) becomes that frame's axis, so the pipeline, not the model, is under test."""

    model_id = "demo-labels"
    dim = 8

    def __init__(self, items: Sequence[demo.DemoItem]) -> None:
        watch = load_codebook(SAMPLE_DIR / "codebook.yaml").watches[0]
        self.axis = {f.id: n for n, f in enumerate(watch.frames)}
        self.anchors = [(_words(t), f.id) for f in watch.frames for t in (f.label, f.description, *f.examples)]
        self.items = [(_words(i.text), i.frame) for i in items]

    def frame_of(self, text: str) -> str | None:
        words = _words(text)
        for key, frame in self.anchors:
            if key in words:
                return frame
        return next((frame for item, frame in self.items if words and words in item), None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, text in enumerate(texts):
            frame = self.frame_of(text)
            out[n, self.axis[frame] if frame else self.dim - 1] = 1.0
        return out


@pytest.mark.integration
def test_up_s_demo_stream_raises_the_planted_alert_through_the_real_pipeline(
    settings_factory: Callable[..., Settings], topic_reader: Callable[..., list], tmp_path: Path
) -> None:
    """Demo feeds -> ingest (one cycle) -> process -> aggregate on the real broker: one alert,
    for the planted frame, on the current window."""
    now = datetime.now(UTC)
    server, base = serve_sample_feeds(now, seed=21)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        settings = settings_factory()
        sources_file = tmp_path / "sources.yaml"
        sources_file.write_text(demo_sources(base))
        assert run_ingest(settings_factory(state_dir=tmp_path / "ingest"), load_sources(sources_file), once=True) == 0
        embedder = LabelEmbedder(demo.demo_items(now, 21))
        threads = [
            threading.Thread(target=run_processor, args=(settings_factory(state_dir=tmp_path / "process"),
                             SAMPLE_DIR / "codebook.yaml", stop, embedder), daemon=True),
            threading.Thread(target=run_aggregator, args=(settings_factory(state_dir=tmp_path / "aggregate"), stop),
                             kwargs={"serve_metrics": False}, daemon=True),
        ]
        for thread in threads:
            thread.start()
        def alerts() -> list[Alert]:
            return [contracts.decode(Alert, v) for _, v in topic_reader(settings.topic(ALERTS))]

        found = wait_until("the planted alert", alerts, timeout_s=90, every_s=1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.shutdown()
        server.server_close()
    assert [(a.watch_id, a.frame, a.rule) for a in found] == [(WATCH, demo.PLANTED, "share_spike")]
    alert = found[0]
    assert alert.window_end > now and alert.observed_share >= 2 * alert.baseline_share
    assert alert.observed_count >= 10 and alert.score >= spike_config().z_threshold
