"""Evaluation: metrics checked against hand-computed answers, cross-validation runs, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from framewatch.cli import main
from framewatch.errors import ConfigError
from framewatch.processing.analyst.evaluate import (
    EvalOptions,
    evaluate,
    fold_of,
    load_labelled,
    multilabel_f1,
    per_frame,
    primary_f1,
    sample_shots,
)
from framewatch.processing.framing.assign import AssignConfig
from framewatch.processing.framing.codebook import Frame, Watch
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.train import LabelledText, TrainConfig

WATCH = Watch("w", "W", None, (
    Frame("a", "Apples", "apple orchard fruit"),
    Frame("b", "Boats", "boat sail harbour"),
    Frame("c", "Cars", "car engine road"),
))
CODEBOOK = """\
watches:
  - id: w
    title: W
    frames:
      - {id: a, label: Apples, description: apple orchard fruit}
      - {id: b, label: Boats, description: boat sail harbour}
      - {id: c, label: Cars, description: car engine road}
"""


def test_per_frame_precision_and_recall_by_hand() -> None:
    got = per_frame(["a", "a", "b", "c"], ["a", "b", "b", None], ["a", "b", "c"])
    assert got == {"a": {"precision": 1.0, "recall": 0.5, "support": 2}, "b": {"precision": 0.5, "recall": 1.0, "support": 1},
                   "c": {"precision": 0.0, "recall": 0.0, "support": 1}}


def test_primary_f1_by_hand() -> None:
    # a: tp1 fn1 -> 2/3; b: tp1 fp1 -> 2/3; c: fn1 -> 0; micro: tp2 fp1 fn2 -> 4/7
    macro, micro = primary_f1(["a", "a", "b", "c"], ["a", "b", "b", None], ["a", "b", "c"])
    assert macro == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert micro == pytest.approx(4 / 7)


def test_multilabel_f1_by_hand() -> None:
    # a: tp1 -> 1; b: tp1 fn1 -> 2/3; c: fp2 -> 0; micro: tp2 fp2 fn1 -> 4/7
    macro, micro = multilabel_f1([["a", "b"], ["b"], []], [["a"], ["b", "c"], ["c"]], ["a", "b", "c"])
    assert macro == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert micro == pytest.approx(4 / 7)


def dataset() -> list[LabelledText]:
    words = {"a": ["apple", "orchard", "fruit"], "b": ["boat", "sail", "harbour"], "c": ["car", "engine", "road"]}
    out = []
    for i in range(30):
        frame = "abc"[i % 3]
        w = words[frame]
        out.append(LabelledText(f"x{i}", f"the {w[i % 3]} and the {w[(i + 1) % 3]} story {i}", (frame,), fold=i % 5))
    out.append(LabelledText("none", "unlabelled story", ()))
    return out


@pytest.mark.parametrize(("mode", "adapt"), [("zero-shot", True), ("zero-shot", False), ("few-shot", True), ("trained", True)])
def test_evaluate_modes_on_separable_data(mode: str, adapt: bool) -> None:
    cfg = AssignConfig(min_score=0.0) if mode == "zero-shot" else None  # fake cosines are small
    opts = EvalOptions(mode=mode, shots=2, adapt=adapt, train=TrainConfig(finetune=False), model_name="fake-128", assign=cfg)
    result = evaluate(dataset(), WATCH, FakeEmbedder(128), opts)
    assert result["mode"] == mode and result["n"] == 31
    assert result["folds"] == (0 if not adapt else 5)  # zero-shot self-training is per fold, by default
    assert result["macro_f1"] >= 0.9, result
    assert set(result) >= {"macro_f1", "micro_f1", "multilabel_macro_f1", "multilabel_micro_f1", "seconds"}


def test_unknown_labels_and_modes_rejected() -> None:
    with pytest.raises(ConfigError, match="not in watch"):
        evaluate([LabelledText("1", "t", ("zzz",))], WATCH, FakeEmbedder(), EvalOptions())
    with pytest.raises(ConfigError, match="unknown mode"):
        evaluate(dataset(), WATCH, FakeEmbedder(), EvalOptions(mode="magic"))


def test_shots_come_from_training_folds_with_fixed_seed() -> None:
    train = [ex for ex in dataset() if fold_of(ex) != 0]
    shots = sample_shots(train, WATCH.frame_ids, 3, seed=7)
    assert shots == sample_shots(train, WATCH.frame_ids, 3, seed=7)
    assert [f for _, f in shots] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    test_texts = {ex.text for ex in dataset() if fold_of(ex) == 0}
    assert not test_texts & {t for t, _ in shots}


def test_fold_from_id_when_missing() -> None:
    ex = LabelledText("abc", "t", ())
    assert fold_of(ex) == fold_of(ex) and 0 <= fold_of(ex) < 5


def test_load_labelled_errors_name_line(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "1", "text": "t", "labels": ["a"]}\n{"id": 2}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"d.jsonl:2: invalid example"):
        load_labelled(p)


def test_cli_prints_json_last(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": e.id, "text": e.text, "labels": list(e.labels), "fold": e.fold}) + "\n" for e in dataset()), encoding="utf-8")
    cb = tmp_path / "cb.yaml"
    cb.write_text(CODEBOOK, encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", str(data), "--codebook", str(cb), "--mode", "few-shot", "--shots", "2", "--model", "fake-64"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["mode"] == "few-shot" and last["folds"] == 5
    assert set(last["per_frame"]) == {"a", "b", "c"} and last["per_frame"]["a"]["support"] == 10
    assert all(0 <= v["precision"] <= 1 and 0 <= v["recall"] <= 1 for v in last["per_frame"].values())
    art = tmp_path / "art"
    # the analysts' "none" answers (no labels) teach no frame; the codebook's examples join the data
    cb.write_text(CODEBOOK.replace("apple orchard fruit}", "apple orchard fruit, examples: [apple harvest, ripe apples]}"))
    with data.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "none-1", "text": "nothing to do with it", "labels": []}) + "\n")
    trained = CliRunner().invoke(main, ["codebook", "train", str(data), "--codebook", str(cb), "--out", str(art), "--model", "fake-64"])
    assert trained.exit_code == 0, trained.output
    out = json.loads(trained.stdout.strip().splitlines()[-1])
    assert (out["n"], out["without_frame"]) == (30 + 2, 2)  # 30 labelled rows, 2 codebook examples; 2 without
    cb.write_text(CODEBOOK, encoding="utf-8")
    assert json.loads((art / "manifest.json").read_text())["frame_ids"] == ["a", "b", "c"]
    ok = CliRunner().invoke(main, ["codebook", "validate", str(cb)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    cb.write_text(CODEBOOK.replace("id: b,", "id: B!,"), encoding="utf-8")
    bad = CliRunner().invoke(main, ["codebook", "validate", str(cb)])
    assert bad.exit_code != 0 and f"{cb}:6: watches[0].frames[1].id" in bad.output


def test_cluster_mode_scores(tmp_path: Path) -> None:
    result = evaluate(dataset(), WATCH, FakeEmbedder(64), EvalOptions(mode="cluster"))
    assert result["mode"] == "cluster"
    assert {"nmi", "ari", "v_measure"} <= set(result)
    assert result["nmi"] == pytest.approx(result["v_measure"], abs=2e-4)  # arithmetic NMI is V-measure


def test_cluster_mode_takes_any_labels_as_the_truth() -> None:
    """Clustering never reads the frames: story labels need no made-up codebook."""
    stories = [LabelledText(f"s{i}", f"story {'abc'[i % 3]} news {'abc'[i % 3]} report", (f"story-{'abc'[i % 3]}",))
               for i in range(30)]
    result = evaluate(stories, WATCH, FakeEmbedder(64), EvalOptions(mode="cluster"))
    assert result["n"] == 30 and result["nmi"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="labels not in watch"):  # framing modes still check
        evaluate(stories, WATCH, FakeEmbedder(64), EvalOptions(mode="few-shot"))


def test_gvfc_zero_shot_with_fake_embedder_same_through_the_cli(shared_dir: Path, tmp_path: Path) -> None:
    """The real data set's format loads, and the command gives what the API gives."""
    from framewatch.processing.framing.codebook import load_codebook

    gvfc = shared_dir / "data" / "gvfc"
    examples = load_labelled(gvfc / "gvfc_headlines.jsonl")
    watch = load_codebook(gvfc / "codebook.yaml").watches[0]
    result = evaluate(examples[:200], watch, FakeEmbedder(64), EvalOptions())
    head = tmp_path / "head.jsonl"
    head.write_text("".join(line + "\n" for line in (gvfc / "gvfc_headlines.jsonl").read_text().splitlines()[:200]))
    cli = CliRunner().invoke(main, ["eval", str(head), "--codebook", str(gvfc / "codebook.yaml"), "--model", "fake-64"])
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout.strip().splitlines()[-1])
    assert result["n"] == printed["n"] == 200
    assert {k: printed[k] for k in ("macro_f1", "micro_f1")} == {k: result[k] for k in ("macro_f1", "micro_f1")}
