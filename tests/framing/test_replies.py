"""Short forum replies: the decision rule (relevance gate, calibrated thresholds, codebook
``decision:`` block) with the fake embedder, the labelled fixture itself, and the calibrated
rule's error rates on that fixture with the real model (bench/replies.py prints the full table)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import yaml

from framewatch.errors import ConfigError
from framewatch.processing.framing.assign import (
    DEFAULT_CONFIGS,
    FEW_SHOT,
    ZERO_SHOT,
    AssignConfig,
    FrameAssigner,
    accepts,
    balanced_error,
    build_assigner,
    calibrate,
    decision_errors,
    few_shot_assigner,
    zero_shot_assigner,
)
from framewatch.processing.framing.codebook import Frame, Watch, load_codebook, parse_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.segment import split_sentences
from tests.helpers.paths import FIXTURES

REPLIES = FIXTURES / "replies"
EMB = FakeEmbedder(128)
FRAMES = (
    Frame("dystopia", "Surveillance", "cameras surveillance watching citizens punish", ("cameras watch citizens", "surveillance punishes citizens")),
    Frame("trust", "Consumer trust", "consumers trust fraud protection sellers", ("consumers trust honest sellers", "fraud protection for consumers")),
)
WATCH = Watch("scs", "Social credit", None, FRAMES)


class FixedScorer:
    """Preset scores, so the rule is checked exactly."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = np.array(rows)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return self.rows[: len(vectors)]


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(("best", "margin", "relevance", "config", "expected"), [
    (0.5, 0.1, 0.2, AssignConfig(min_score=0.3), True),  # no gate: relevance is ignored
    (0.5, 0.1, 0.2, AssignConfig(min_score=0.3, min_relevance=0.25), False),
    (0.5, 0.1, 0.3, AssignConfig(min_score=0.3, min_relevance=0.25), True),
    (0.5, 0.1, None, AssignConfig(min_score=0.3, min_relevance=0.25), True),  # no anchors: no gate
    (0.2, 0.1, 0.9, AssignConfig(min_score=0.3, min_relevance=0.25), False),
    (0.5, 0.05, 0.9, AssignConfig(min_score=0.3, min_margin=0.1), False),
])
def test_accepts_needs_score_margin_and_relevance(best: float, margin: float, relevance: float | None,
                                                  config: AssignConfig, expected: bool) -> None:
    assert accepts(best, margin, relevance, config) is expected


def test_relevance_gate_leaves_a_far_reply_unframed_and_says_how_far() -> None:
    anchors = EMB.embed(["cameras watch citizens", "consumers trust honest sellers"])
    vectors = EMB.embed(["cameras watch citizens everywhere", "lol"])
    rows = [[0.7, 0.3], [0.7, 0.3]]  # a head gives "lol" the same confident probabilities
    gated = FrameAssigner(WATCH, FixedScorer(rows), method=FEW_SHOT, embedder=EMB,
                          config=AssignConfig(min_score=0.2, min_relevance=0.5), anchor_vectors=anchors)
    near, far = gated.assign(vectors)
    assert near.frame == "dystopia" and far.frame is None and far.labels == ()
    assert near.relevance is not None and far.relevance is not None and far.relevance < 0.5 <= near.relevance
    ungated = FrameAssigner(WATCH, FixedScorer(rows), method=FEW_SHOT, embedder=EMB,
                            config=AssignConfig(min_score=0.2), anchor_vectors=anchors)
    assert [a.frame for a in ungated.assign(vectors)] == ["dystopia", "dystopia"]


def test_decision_errors_count_each_kind() -> None:
    truth = ["a", "a", "a", "b", None, None]
    predicted = ["a", None, "b", "b", "a", None]
    counts = decision_errors(truth, predicted)
    assert counts == {"framed": 4, "unframed_true": 2, "unframed": 1, "misframed": 1, "false_frame": 1}
    assert balanced_error(counts) == pytest.approx((2 / 4 + 1 / 2) / 2)


def test_calibrate_finds_a_gate_that_rejects_chit_chat_the_default_frames() -> None:
    framed = ["cameras watch citizens at night", "surveillance cameras punish citizens", "consumers trust honest sellers now",
              "fraud protection helps consumers", "citizens watched by cameras", "honest sellers earn consumers trust"]
    chatter = ["lol", "bump", "thanks for the link", "wrong thread mate", "happy new year", "nice avatar btw"]
    truth = ["dystopia", "dystopia", "trust", "trust", "dystopia", "trust"] + [None] * len(chatter)
    assigner = few_shot_assigner(WATCH, EMB)
    vectors = EMB.embed(framed + chatter)
    before = decision_errors(truth, [a.frame for a in assigner.assign(vectors)])
    tuned = calibrate(assigner, vectors, truth)
    after = decision_errors(truth, [a.frame for a in few_shot_assigner(WATCH, EMB, config=tuned).assign(vectors)])
    assert before["false_frame"] == len(chatter)  # probabilities alone never say "none"
    assert tuned.min_relevance is not None and after["false_frame"] < before["false_frame"]
    assert balanced_error(after) < balanced_error(before)
    assert tuned.label_ratio == assigner.config.label_ratio  # only the thresholds move


def test_zero_shot_calibration_leaves_relevance_to_min_score() -> None:
    assigner = zero_shot_assigner(WATCH, EMB)
    vectors = EMB.embed(["cameras watch citizens", "lol", "consumers trust sellers"])
    tuned = calibrate(assigner, vectors, ["dystopia", None, "trust"])
    assert tuned.min_relevance is None  # its anchors are its prototypes: relevance == best score
    got = [a.frame for a in zero_shot_assigner(WATCH, EMB, tuned).assign(vectors)]
    assert decision_errors(["dystopia", None, "trust"], got)["false_frame"] == 0


# --- the codebook carries calibrated thresholds ----------------------------------------------

CODEBOOK = """
watches:
  - id: scs
    title: Social credit
    decision:
      few-shot: {min_score: 0.3, min_relevance: 0.26}
      zero-shot: {min_score: 0.22}
    frames:
      - {id: dystopia, label: Surveillance, description: cameras watch citizens, examples: [cameras watch citizens]}
      - {id: trust, label: Consumer trust, description: consumers trust sellers, examples: [consumers trust sellers]}
"""


def test_codebook_decision_block_sets_the_assigners_thresholds() -> None:
    watch = parse_codebook(CODEBOOK).watches[0]
    assert watch.thresholds_for(FEW_SHOT) == {"min_score": 0.3, "min_relevance": 0.26}
    assert watch.thresholds_for("trained") == {}
    few = build_assigner(watch, EMB)
    assert few.method == FEW_SHOT and (few.config.min_score, few.config.min_relevance) == (0.3, 0.26)
    assert few.config.label_ratio == DEFAULT_CONFIGS[FEW_SHOT].label_ratio
    zero = zero_shot_assigner(watch, EMB)
    assert zero.config.min_score == 0.22 and zero.config.min_relevance is None
    assert zero_shot_assigner(WATCH, EMB).config == DEFAULT_CONFIGS[ZERO_SHOT]  # no block: defaults


@pytest.mark.parametrize(("block", "message"), [
    ("decision: {one-shot: {min_score: 0.3}}", r"codebook>:5: watches\[0\]\.decision\.one-shot: unknown field"),
    ("decision: {few-shot: {threshold: 0.3}}", r"watches\[0\]\.decision\.few-shot\.threshold: unknown field"),
    ("decision: {few-shot: {min_score: 2}}", r"decision\.few-shot\.min_score: expected a number between -1 and 1"),
    ("decision: {few-shot: {min_score: yes}}", r"decision\.few-shot\.min_score: expected a number"),
])
def test_codebook_decision_block_errors_name_the_field(block: str, message: str) -> None:
    text = f"watches:\n  - id: scs\n    title: t\n    frames: [{{id: a, label: A, description: d}}]\n    {block}\n"
    with pytest.raises(ConfigError, match=message):
        parse_codebook(text)


# --- the fixture ---------------------------------------------------------------------------


def load_fixture() -> tuple[Watch, list[dict[str, Any]], dict[str, list[str]]]:
    watch = load_codebook(REPLIES / "codebook.yaml").watches[0]
    replies = yaml.safe_load((REPLIES / "replies.yaml").read_text(encoding="utf-8"))["replies"]
    shots = yaml.safe_load((REPLIES / "shots.yaml").read_text(encoding="utf-8"))["shots"]
    return watch, replies, shots


def test_fixture_is_short_labelled_replies_with_shots_kept_apart() -> None:
    watch, replies, shots = load_fixture()
    assert len(replies) >= 60 and len({r["id"] for r in replies}) == len(replies)
    assert all(1 <= len(split_sentences(r["text"])) <= 3 for r in replies)
    assert all(set(r["labels"]) <= set(watch.frame_ids) and len(r["labels"]) <= 1 for r in replies)
    assert sum(1 for r in replies if not r["labels"]) >= 15 and sum(1 for r in replies if r.get("quote")) >= 15
    for fold in (0, 1):  # both folds hold every frame and chit-chat
        labels = {(r["labels"] or ["none"])[0] for r in replies if r["fold"] == fold}
        assert labels == {*watch.frame_ids, "none"}
    assert set(shots) == set(watch.frame_ids) and all(len(v) >= 3 for v in shots.values())
    texts = {r["text"] for r in replies} | {r.get("quote") for r in replies}
    assert not texts & {t for v in shots.values() for t in v}
    assert not any(f.examples for f in watch.frames)  # zero-shot as loaded; few-shot gets the shots


# --- with the real model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    from framewatch.processing.framing.embed import CachingEmbedder, SentenceTransformerEmbedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return CachingEmbedder(SentenceTransformerEmbedder(precision="float32"))


def cross_validated(mode: str, minilm: Any) -> tuple[dict[str, int], dict[str, int]]:
    """(before, after) error counts, pooled over both folds; after's thresholds are calibrated
    on the other fold, so no reply is scored by thresholds fitted on it."""
    watch, replies, shots = load_fixture()
    if mode == FEW_SHOT:
        watch = replace(watch, frames=tuple(replace(f, examples=tuple(shots[f.id])) for f in watch.frames))
    build = zero_shot_assigner if mode == ZERO_SHOT else (lambda w, e, c: few_shot_assigner(w, e, config=c))
    base = build(watch, minilm, DEFAULT_CONFIGS[mode])
    before: dict[str, int] = dict.fromkeys(decision_errors([], []), 0)
    after = dict(before)
    for held_fold in (0, 1):
        fit = [r for r in replies if r["fold"] != held_fold]
        held = [r for r in replies if r["fold"] == held_fold]
        tuned = calibrate(base, minilm.embed([r["text"] for r in fit]), [(r["labels"] or [None])[0] for r in fit])
        truth = [(r["labels"] or [None])[0] for r in held]
        vectors = minilm.embed([r["text"] for r in held])
        for total, assigner in ((before, base), (after, build(watch, minilm, tuned))):
            for key, value in decision_errors(truth, [a.frame for a in assigner.assign(vectors)]).items():
                total[key] += value
    return before, after


@pytest.mark.model
@pytest.mark.parametrize("mode", [ZERO_SHOT, FEW_SHOT])
def test_real_model_calibrated_rule_on_held_out_replies(mode: str, minilm: Any) -> None:
    """Target: at most a quarter of the clear replies left unframed or misframed (the current
    rule's best here, zero-shot, leaves 0.26 while framing a fifth of the chit-chat), and at most
    one chit-chat reply in ten framed; the balanced error must beat the current rule's."""
    before, after = cross_validated(mode, minilm)
    clear_error = (after["unframed"] + after["misframed"]) / after["framed"]
    assert balanced_error(after) < balanced_error(before)
    assert after["false_frame"] / after["unframed_true"] <= 0.1
    if mode == FEW_SHOT:  # zero-shot, with descriptions only, stays near 0.3 (see bench/replies.py)
        assert clear_error <= 0.25
