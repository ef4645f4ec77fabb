"""The comparison behind the Models page (fake embedder): stratified folds, per-frame figures that
agree with ``framewatch eval``'s, a candidate that beats a misleading codebook, a promotion the
processor's loader reads back under the same model id, and the refusal of a worse candidate."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

import pytest

from framewatch.errors import ConfigError
from framewatch.processing.analyst.compare import (
    MIN_LABELS,
    artifact_model_id,
    compare_models,
    frame_scores,
    promote_artifact,
    stratified_folds,
    train_candidate,
)
from framewatch.processing.analyst.evaluate import per_frame, primary_f1
from framewatch.processing.framing.assign import build_assigner
from framewatch.processing.framing.codebook import Watch, parse_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.train import LabelledText, read_manifest
from framewatch.processing.workbench.models import Job, ModelDesk
from framewatch.settings import Settings

# the codebook's examples share no word with the labels: the few-shot model in use guesses
CODEBOOK = """\
watches:
  - id: scs
    title: Social credit
    match: {any: [social credit]}
    frames:
      - {id: dystopia, label: Dystopia, description: a state that controls, examples: [the state and its plans]}
      - {id: trust, label: Trust, description: markets that work, examples: [the market and its plans]}
      - {id: trade, label: Trade, description: goods and money, examples: [the money and its plans]}
"""
WORDS = {"dystopia": "cameras watch punish citizens surveillance", "trust": "loans sellers honest fraud blacklist",
         "trade": "tariffs ports exports shipping customs"}
EMB = FakeEmbedder(64)


def watch() -> Watch:
    return parse_codebook(CODEBOOK, "codebook.yaml").watches[0]


def labels(per_frame_n: int = 8) -> list[LabelledText]:
    out = []
    for frame, words in WORDS.items():
        for i, picked in enumerate(list(combinations(words.split(), 3))[:per_frame_n]):
            out.append(LabelledText(f"{frame}-{i}", " ".join(picked), (frame,)))
    out.append(LabelledText("none-1", "a passage with no frame", ()))  # a "none" answer
    return out


def test_folds_are_stratified_balanced_and_do_not_depend_on_order() -> None:
    examples = [ex for ex in labels(10) if ex.labels]
    folds = stratified_folds(examples, 5)
    for frame in WORDS:
        per_fold = [sum(1 for ex, f in zip(examples, folds, strict=True) if f == k and ex.labels[0] == frame) for k in range(5)]
        assert per_fold == [2] * 5, (frame, per_fold)
    shuffled = examples[:]
    random.Random(7).shuffle(shuffled)
    again = dict(zip((ex.id for ex in shuffled), stratified_folds(shuffled, 5), strict=True))
    assert again == dict(zip((ex.id for ex in examples), folds, strict=True))


def test_frame_scores_agree_with_the_eval_commands_figures() -> None:
    frames = ("a", "b", "c")
    true = ["a", "a", "a", "b", "b", "c", "c", "c"]
    pred = ["a", "b", None, "b", "a", "c", "c", "a"]
    scores, macro = frame_scores(true, pred, frames)
    assert macro == pytest.approx(primary_f1(true, pred, frames)[0])
    reference = per_frame(true, pred, frames)
    for f in frames:
        assert (round(scores[f].precision, 4), round(scores[f].recall, 4), scores[f].support) == (
            reference[f]["precision"], reference[f]["recall"], reference[f]["support"])
    assert scores["a"].f1 == pytest.approx(1 / 3) and scores["b"].f1 == pytest.approx(0.5)


def test_the_candidate_is_compared_with_the_model_in_use_on_the_same_labels() -> None:
    w = watch()
    current = build_assigner(w, EMB)  # the codebook's few-shot model, what the processor runs without an artifact
    seen: list[tuple[str, int, int]] = []
    c = compare_models(labels(), w, EMB, current, candidate_id="cand", progress=lambda *a: seen.append(a))
    assert (c.labels, c.without_frame, c.folds) == (24, 1, 5)
    assert c.current.method == "few-shot" and c.current.model_id == EMB.model_id
    assert [r["support"] for r in c.rows()] == [8, 8, 8]
    # the model in use, scored independently on the same labelled texts
    labelled = [ex for ex in labels() if ex.labels]
    direct = [a.frame for a in current.assign_texts([ex.text for ex in labelled])]
    assert c.current.macro_f1 == pytest.approx(primary_f1([ex.labels[0] for ex in labelled], direct, w.frame_ids)[0])
    assert c.candidate.macro_f1 > 0.8 > c.current.macro_f1
    assert c.macro_delta == pytest.approx(c.candidate.macro_f1 - c.current.macro_f1)
    assert [s for s in seen if s[0] == "training the candidate"] == [("training the candidate", k, 5) for k in range(5)]


def test_too_few_labels_or_unknown_frames_are_refused_with_a_reason() -> None:
    w = watch()
    few = [ex for ex in labels() if ex.labels][: MIN_LABELS - 1]
    with pytest.raises(ConfigError, match=f"at least {MIN_LABELS}"):
        compare_models(few, w, EMB, build_assigner(w, EMB))
    with pytest.raises(ConfigError, match="nonsense"):
        compare_models([*labels(), LabelledText("x", "x", ("nonsense",))], w, EMB, build_assigner(w, EMB))


def test_promotion_writes_the_candidate_the_processor_loads_under_its_model_id(tmp_path: Path) -> None:
    w = watch()
    live = tmp_path / "live"
    old_id = train_candidate([ex for ex in labels() if ex.labels][::-1], w, EMB, live, codebook_version="v0")
    (live / "encoder").mkdir()  # leftovers of an older, fine-tuned model
    (live / "document-head.npz").write_bytes(b"old")
    new_id = train_candidate(labels(), w, EMB, tmp_path / "candidate", codebook_version="v1")
    assert new_id != old_id and new_id.startswith(f"{EMB.model_id}+head:")
    promote_artifact(tmp_path / "candidate", live)
    assert artifact_model_id(read_manifest(live)) == new_id
    assert sorted(p.name for p in live.iterdir()) == ["examples.json", "head.npz", "manifest.json"]
    assert build_assigner(w, EMB, artifact_path=str(live)).model_ref == new_id  # what framed records will name


def test_a_worse_candidate_needs_the_confirm_box_and_the_promotion_is_recorded(tmp_path: Path) -> None:
    codebook = tmp_path / "codebook.yaml"
    codebook.write_text(CODEBOOK)
    settings = Settings(state_dir=tmp_path / "state", serve_codebook_path=codebook,  # type: ignore[call-arg]
                        serve_artifact_path=tmp_path / "live", model_name="fake")
    now = datetime(2026, 12, 2, tzinfo=UTC)
    desk = ModelDesk(settings, lambda: now)
    w = watch()
    model_id = train_candidate(labels(), w, EMB, desk.candidate_dir, codebook_version="v1")
    c = compare_models(labels(), w, EMB, build_assigner(w, EMB), candidate_id=model_id)
    worse = replace(c, current=replace(c.current, macro_f1=c.candidate.macro_f1 + 0.1))
    desk.job = Job("scs", "ana", now, "done", finished_at=now, comparison=worse)
    with pytest.raises(ConfigError, match="below the model in use"):
        desk.promote(model_id, "ana", confirm=False)
    assert not (tmp_path / "live").exists()
    with pytest.raises(ConfigError, match="changed since"):
        desk.promote("fake+head:00000000", "ana", confirm=True)
    assert "promoted" in desk.promote(model_id, "ana", confirm=True)
    assert artifact_model_id(read_manifest(tmp_path / "live")) == model_id
    assert desk.promotion is not None and (desk.promotion.by, desk.promotion.at, desk.promotion.model_id) == ("ana", now, model_id)
