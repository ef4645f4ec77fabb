"""Ids, digests and hashes said to be stable across restarts are stable across *processes*:
computed in subprocesses with different PYTHONHASHSEED (Python salts ``hash()`` per process),
and pinned to fixed values where a value is stored (ids in Kafka keys and state files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.paths import ROOT

SCRIPT = r'''
import hashlib, json
from datetime import datetime, timezone
from framewatch import contracts
from framewatch.contracts import RawItem
from framewatch.ingest.parse.detect import parse_feed
from framewatch.ingest.parse.thread_memory import ThreadMemory
from framewatch.ingest.schedule import feed_jitter
from framewatch.ingest.sources import Source
from framewatch.ingest.worker import shard_of
from framewatch.processing.alerts.delivery import delivery_id
from framewatch.processing.analyst.evaluate import fold_of
from framewatch.processing.framing.codebook import load_codebook
from framewatch.processing.framing.dedup import MinHasher, normalise_for_dedup, shingles
from framewatch.processing.framing.embed import FakeEmbedder, text_hash
from framewatch.processing.framing.stage import FrameStage, StageConfig
from framewatch.processing.analyst.evaluate import LabelledText
from framewatch.processing.trends.recovery import owner_partition
from tests.helpers.paths import FEEDS, ROOT

at = datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
out = {
    "stable_id": contracts.stable_id("src", "guid-1"),
    "text_hash": text_hash("Cameras watch every citizen."),
    "shards": [shard_of(f"feed-{i}", 7) for i in range(20)],
    "jitter": [round(feed_jitter(f"feed-{i}", 1), 12) for i in range(5)],
    "owners": [owner_partition(w, 6) for w in ("scs", "wy", "gun-violence")],
    "delivery": delivery_id("scs:a:2026-03-01T08:00:00Z", "desk"),
    "folds": [fold_of(LabelledText(f"id{i}", "t", ())) for i in range(20)],
    "minhash": MinHasher().signature(shingles(normalise_for_dedup("a syndicated copy of the story, word for word"))).tolist()[:16],
    "fake_vector": [round(float(v), 6) for v in FakeEmbedder().embed(["social credit cameras"])[0][:8]],
    "codebook_version": load_codebook(ROOT / "framewatch" / "sample" / "codebook.yaml").version,
}
memory = ThreadMemory()
items = []
for name, kind in (("xenforo_forum.rss", "forum"), ("discourse_topic.rss", "forum"), ("rss2_news.xml", "news"),
                   ("phpbb_topic.atom", "forum"), ("smf_recent.rss", "forum")):
    source = Source(id=name.split(".")[0].replace("_", "-"), url="https://example.org/" + name, kind=kind)
    parsed = parse_feed((FEEDS / name).read_bytes(), source=source, url=source.url, content_type=None,
                        fetched_at=at, memory=memory)
    items += [(it.item_id, it.text, [q.text for q in it.quotes], it.thread_id, it.parent_id) for it in parsed.items]
out["parsed"] = hashlib.sha256(json.dumps(items).encode()).hexdigest()
out["parsed_ids"] = [i[0] for i in items][:6]
stage = FrameStage(load_codebook(ROOT / "framewatch" / "sample" / "codebook.yaml"), FakeEmbedder(),
                   config=StageConfig(novelty_max=0.3, cluster_min_score=-1.0))
raws = [RawItem(item_id=f"i{n}", source_id="s", feed_url="https://example.org/f", kind="article",
                url=f"https://example.org/{n}", title=None, author=None, published_at=at, fetched_at=at,
                text=t) for n, t in enumerate([
                    "The social credit system watches and punishes citizens with cameras.",
                    "A social credit blacklist protects consumers from fraud.",
                    "Social credit data privacy leaks worry everyone online.",
                    "Social credit privacy of personal data records leaks again."])]
records, _, _ = stage.frame_items([(None, r) for r in raws])
out["framed"] = hashlib.sha256(b"".join(contracts.encode(r) for r in records)).hexdigest()
print(json.dumps(out, sort_keys=True))
'''


def values_with_hash_seed(seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ids_and_digests_are_the_same_in_processes_with_other_hash_seeds() -> None:
    first, second, third = (values_with_hash_seed(seed) for seed in ("0", "4242", "random"))
    assert first == second == third
    assert len(set(first["shards"])) > 1 and len(first["parsed_ids"]) == 6  # the values say something


def test_stored_ids_keep_their_published_values() -> None:
    """Ids that live in Kafka keys, SQLite state and receivers' dedup tables never change."""
    values = values_with_hash_seed("1")
    assert values["stable_id"] == "a6d1fc3d4e8f030d39ef913a"  # sha256("src" 0x1f "guid-1")[:24]
    assert values["text_hash"] == "e1f62ec2649e53cfecf48734a97068fe"
    assert values["delivery"] == "f592f7708792191e4b199260"
    assert values["shards"][:5] == [0, 4, 5, 5, 3]
    assert values["parsed_ids"][:2] == ["95e89f02d5a5854e8ad39b76", "9a53511b0e46f3435cd44697"]
