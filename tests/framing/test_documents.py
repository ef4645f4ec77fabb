"""The document head: chunking, one embedding per chunk across folds, pooling, per-frame
thresholds, saving, the live stage's document decision and the record's level fields
(FakeEmbedder; no real model here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from framewatch import contracts
from framewatch.contracts import FramedItem, MessageContext, RawItem
from framewatch.errors import ConfigError
from framewatch.kafka_io import Message
from framewatch.processing.framing.assign import build_assigner
from framewatch.processing.framing.codebook import parse_codebook, share_level
from framewatch.processing.framing.documents import (
    DOCUMENT,
    MEAN,
    MEAN_MAX,
    SEGMENT,
    ChunkCache,
    DocumentConfig,
    DocumentHead,
    best_threshold,
    chunk_document,
    document_fields,
    fit_document_head,
    pool,
)
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.stage import FrameStage, StageConfig

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
FRAMES = ("apples", "boats", "cars")
WORDS = {
    "apples": "apple orchard fruit harvest cider",
    "boats": "boat sail harbour mast keel",
    "cars": "car engine road wheel garage",
}
FILLER = "the council met on tuesday to discuss the budget and the weather stayed mild all week"
CODEBOOK = """\
watches:
  - id: things
    title: Things
    frames:
      - {id: apples, label: Apples, description: apple orchard fruit, examples: [apple orchard fruit harvest]}
      - {id: boats, label: Boats, description: boat sail harbour, examples: [boat sail harbour mast]}
      - {id: cars, label: Cars, description: car engine road, examples: [car engine road wheel]}
"""


class CountingEmbedder(FakeEmbedder):
    """FakeEmbedder that counts the texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().embed(texts)


def article(frames: Sequence[str], seed: int) -> str:
    """A long text: a paragraph per frame among filler paragraphs."""
    rng = np.random.default_rng(seed)
    paragraphs = [f"{FILLER} {FILLER}." for _ in range(3)]
    for f in frames:
        words = WORDS[f].split()
        paragraphs.insert(int(rng.integers(len(paragraphs) + 1)), " ".join(rng.choice(words, 12)) + ".")
    return "\n\n".join(paragraphs)


def corpus(n: int) -> tuple[list[str], list[tuple[str, ...]]]:
    rng = np.random.default_rng(1)
    texts, labels = [], []
    for i in range(n):
        chosen = tuple(str(f) for f in rng.choice(FRAMES, size=int(rng.integers(1, 3)), replace=False))
        texts.append(article(chosen, i))
        labels.append(chosen)
    return texts, labels


def test_a_long_text_becomes_several_chunks_and_a_short_one_stays_whole() -> None:
    text = article(("apples", "cars"), 0)
    chunks = chunk_document(text, 40)
    assert len(chunks) > 2
    assert " ".join(chunks).split() == text.split()  # nothing lost, nothing added
    assert chunk_document("Boat sails into the harbour", 40) == ["Boat sails into the harbour"]


def test_the_cache_embeds_each_chunk_once_across_folds() -> None:
    emb = CountingEmbedder()
    cache = ChunkCache(emb, 40)
    texts, _ = corpus(6)
    first = cache.documents(texts)
    n = len(emb.seen)
    again = cache.documents(texts[:3])
    assert len(emb.seen) == n == len(set(emb.seen)) == len(cache)
    assert all(np.array_equal(a, b) for a, b in zip(first[:3], again, strict=True))


def test_pooling_keeps_a_frame_that_only_one_chunk_carries() -> None:
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert pool(vectors, MEAN).tolist() == pytest.approx([1 / 3, 0.0, 2 / 3])
    assert pool(vectors, MEAN_MAX)[3:].tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="pooling"):
        pool(vectors, "attention")


def test_best_threshold_maximises_f1_and_silences_a_frame_without_positives() -> None:
    probs = np.array([0.9, 0.8, 0.35, 0.3, 0.1])
    truth = np.array([1, 1, 1, 0, 0])
    assert best_threshold(probs, truth, (0.2, 0.33, 0.5)) == 0.33  # all three found, no false one
    assert best_threshold(probs, np.zeros(5, dtype=int), (0.2, 0.5)) > 1


def test_the_head_learns_multi_label_documents_and_round_trips(tmp_path: Path) -> None:
    emb = FakeEmbedder()
    cache = ChunkCache(emb, 40)
    texts, labels = corpus(80)
    docs = cache.documents(texts)
    head = fit_document_head(docs[:60], labels[:60], FRAMES, DocumentConfig(chunk_tokens=40), model_id=emb.model_id)
    decided = head.decide(docs[60:])
    exact = sum(set(d.labels) == set(t) for d, t in zip(decided, labels[60:], strict=True))
    assert exact >= 15, f"only {exact}/20 label sets right"
    assert all(0 < t <= 1 for t in head.thresholds)
    saved = head.save(tmp_path)
    loaded = DocumentHead.load(saved, FRAMES)
    assert [d.labels for d in loaded.decide(docs[60:])] == [d.labels for d in decided]
    assert (loaded.chunk_tokens, loaded.model_id) == (40, emb.model_id)
    with pytest.raises(ConfigError, match="do not match"):
        DocumentHead.load(saved, ("apples", "boats"))
    with pytest.raises(ConfigError, match="not a document head"):
        DocumentHead.load(tmp_path / "missing.npz", FRAMES)


def test_unknown_labels_and_too_little_data_are_clear_errors() -> None:
    docs = ChunkCache(FakeEmbedder(), 40).documents(["boat sail", "car road"])
    with pytest.raises(ConfigError, match="not a frame"):
        fit_document_head(docs, [("boats",), ("planes",)], FRAMES)
    with pytest.raises(ConfigError, match="at least two"):
        fit_document_head(docs[:1], [("boats",)], FRAMES)


def _head(n: int = 60) -> DocumentHead:
    texts, labels = corpus(n)
    docs = ChunkCache(FakeEmbedder(), 200).documents(texts)
    return fit_document_head(docs, labels, FRAMES, DocumentConfig(chunk_tokens=200), model_id=FakeEmbedder().model_id)


def raw(item_id: str, text: str, kind: str = "article") -> RawItem:
    return RawItem(
        item_id=item_id, source_id="src", feed_url="https://example.org/feed", kind=kind,  # type: ignore[arg-type]
        url=f"https://example.org/{item_id}", title="A title", author=None, published_at=T0, fetched_at=T0, text=text,
    )


def test_share_of_voice_level_follows_the_codebook_then_the_item_kind() -> None:
    watch = parse_codebook(CODEBOOK).watches[0]
    assert share_level(watch, "article", True) == DOCUMENT
    assert share_level(watch, "forum_post", True) == SEGMENT
    assert share_level(watch, "article", False) == SEGMENT
    pinned = parse_codebook(CODEBOOK.replace("    title: Things\n", "    title: Things\n    share_of_voice: segment\n"))
    assert share_level(pinned.watches[0], "article", True) == SEGMENT
    with pytest.raises(ConfigError, match="share_of_voice"):
        parse_codebook(CODEBOOK.replace("    title: Things\n", "    title: Things\n    share_of_voice: paragraph\n"))


def test_record_fields_say_which_level_decided() -> None:
    watch = parse_codebook(CODEBOOK).watches[0]
    head = _head()
    item = raw("a1", article(("boats", "cars"), 99))
    plain = document_fields(None, FakeEmbedder(), watch, item, {"boats": 0.7, "apples": 0.3}, 20_000)
    assert plain == {"frame": "boats", "frame_shares": {"boats": 0.7, "apples": 0.3}, "shares_level": SEGMENT}
    doc = document_fields(head, FakeEmbedder(), watch, item, {"boats": 0.7, "apples": 0.3}, 20_000)
    assert doc["shares_level"] == DOCUMENT
    assert set(doc["frame_shares"]) == set(doc["document_frames"]) and doc["document_frames"]
    assert sum(doc["frame_shares"].values()) == pytest.approx(1.0, abs=1e-5)
    assert doc["frame"] == doc["document_frames"][0]
    assert next(s.frame for s in doc["document_scores"]) == doc["document_frames"][0]
    post = document_fields(head, FakeEmbedder(), watch, raw("p1", item.text, "forum_post"), {"boats": 1.0}, 20_000)
    assert post["shares_level"] == SEGMENT and post["frame_shares"] == {"boats": 1.0} and post["document_frames"]


def test_the_stage_makes_the_document_decision_when_the_assigner_has_a_head() -> None:
    codebook = parse_codebook(CODEBOOK)
    watch = codebook.watches[0]
    assigner = build_assigner(watch, FakeEmbedder())
    assigner.document_head = _head()
    stage = FrameStage(codebook, FakeEmbedder(), framed_topic="t.framed", config=StageConfig(novelty_max=0.0),
                       assigners={watch.id: assigner})
    item = raw("a1", article(("apples",), 7))
    out = stage([Message(MessageContext("t.raw", 0, 0, b"k", 1_772_352_000_000), contracts.encode(item))])
    record = contracts.decode(FramedItem, out.produce[0].value)
    assert record.shares_level == DOCUMENT and record.schema_version == FramedItem.SCHEMA_VERSION == 2
    assert record.document_frames and record.frame == record.document_frames[0]
    assert "apples" in record.document_frames  # the segments keep their own frames, for the explanation
    assert record.segments and all(s.frame is None or s.frame in FRAMES for s in record.segments)
    without = FrameStage(codebook, FakeEmbedder(), framed_topic="t.framed", config=StageConfig(novelty_max=0.0))
    plain = contracts.decode(FramedItem, without([Message(MessageContext("t.raw", 0, 0, b"k", 1), contracts.encode(item))]).produce[0].value)
    assert plain.shares_level == SEGMENT and plain.document_frames == () and plain.document_scores == ()


def test_a_version_1_record_still_decodes_with_segment_defaults() -> None:
    record = FramedItem(
        key="k", item_id="i", watch_id="w", source_id="s", kind="article", published_at=T0, processed_at=T0,
        frame="a", frame_shares={"a": 1.0}, segments=(), codebook_version="1", model_id="m", method="trained",
    )
    data = contracts.to_dict(record)
    for name in ("shares_level", "document_frames", "document_scores"):
        del data[name]
    data["schema_version"] = 1
    old = contracts.decode(FramedItem, json.dumps(data).encode())
    assert (old.schema_version, old.shares_level, old.document_frames) == (1, SEGMENT, ())
