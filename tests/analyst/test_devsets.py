"""Development sets and the evaluations that read them: synthetic long articles (from the
hand-written fixture headlines, or GVFC when ../shared is there), the labelled news-title stream,
`framewatch eval --level document|segment` and `--mode cluster` against their baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from framewatch.cli import main
from framewatch.errors import ConfigError
from framewatch.processing.analyst.devsets import (
    compose_articles,
    compose_stream,
    read_events,
    read_filler,
)
from framewatch.processing.analyst.devsets import main as devsets_main
from framewatch.processing.analyst.evaluate import load_labelled
from tests.helpers.paths import ROOT

LONGFORM = ROOT / "tests" / "fixtures" / "longform"
EVENTS = ROOT / "tests" / "fixtures" / "news_stream" / "events.yaml"


def fixture_articles(n: int = 60, seed: int = 0) -> list[dict[str, object]]:
    return compose_articles(load_labelled(LONGFORM / "headlines.jsonl"), read_filler(LONGFORM / "filler.txt"), n=n, seed=seed)


def test_articles_are_long_multi_frame_and_keep_each_headline_in_its_fold() -> None:
    headlines = load_labelled(LONGFORM / "headlines.jsonl")
    by_text = {h.text: h for h in headlines}
    rows = fixture_articles()
    assert rows == fixture_articles()  # seeded
    assert rows != fixture_articles(seed=1)
    assert {len(r["labels"]) for r in rows} == {1, 2, 3}  # type: ignore[arg-type]
    for r in rows:
        text = str(r["text"])
        assert len(text.split()) >= 300 and "\n\n" in text
        used = [h for t, h in by_text.items() if t in text]
        assert used and all(h.fold == r["fold"] for h in used), "a headline leaked into another fold"
        assert set(r["labels"]) == {lab for h in used for lab in h.labels}  # type: ignore[arg-type]


def test_stream_titles_interleave_in_time_with_their_event_as_label() -> None:
    events = read_events(EVENTS)
    assert len(events) >= 30
    rows = compose_stream(events, per_event=16)
    assert len(rows) >= 500
    assert [r["published_at"] for r in rows] == sorted(r["published_at"] for r in rows)
    assert len({r["text"] for r in rows}) == len(rows)
    first_ten = {r["labels"][0] for r in rows[:40]}  # type: ignore[index]
    assert len(first_ten) > 1  # events overlap in time


def test_bad_dev_inputs_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "filler.txt").write_text("# only a comment\nOne sentence.\n")
    with pytest.raises(ConfigError, match="at least 10"):
        read_filler(tmp_path / "filler.txt")
    (tmp_path / "events.yaml").write_text("events:\n  - {id: e1, facts: {a: [x]}, templates: ['{a} and {b}']}\n")
    with pytest.raises(ConfigError, match="unknown facts"):
        read_events(tmp_path / "events.yaml")
    assert devsets_main(["stream", str(tmp_path / "events.yaml"), str(tmp_path / "out.jsonl")]) == 2


def write_articles(tmp_path: Path, n: int = 60) -> Path:
    out = tmp_path / "articles.jsonl"
    headlines = LONGFORM / "headlines.jsonl"
    assert devsets_main(["articles", str(headlines), str(LONGFORM / "filler.txt"), str(out), "--n", str(n)]) == 0
    return out


def test_eval_reports_document_level_figures_with_both_baselines(tmp_path: Path) -> None:
    data = write_articles(tmp_path)
    codebook = str(LONGFORM / "codebook.yaml")
    runner = CliRunner()
    result = runner.invoke(main, ["eval", str(data), "--codebook", codebook, "--mode", "trained", "--model", "fake"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["level"] == "document" and figures["folds"] == 5 and figures["n"] == 60
    assert set(figures["baselines"]) == {"segment_vote", "pooled_lr"}
    for block in (figures, *figures["baselines"].values()):
        assert 0.0 <= block["multilabel_macro_f1"] <= 1.0 and 0.0 <= block["multilabel_micro_f1"] <= 1.0
    segment = runner.invoke(main, ["eval", str(data), "--codebook", codebook, "--mode", "trained", "--model", "fake", "--level", "segment"])
    assert segment.exit_code == 0, segment.output
    seg = json.loads(segment.stdout.strip().splitlines()[-1])
    assert seg["level"] == "segment" and "macro_f1" in seg and "baselines" not in seg
    wrong = runner.invoke(main, ["eval", str(data), "--codebook", codebook, "--mode", "zero-shot", "--model", "fake", "--level", "document"])
    assert wrong.exit_code == 2 and "needs --mode trained" in wrong.output


def test_codebook_train_writes_a_document_head_the_processor_loads(tmp_path: Path) -> None:
    from framewatch.processing.framing.assign import build_assigner
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import FakeEmbedder

    data = write_articles(tmp_path, 40)
    codebook = str(LONGFORM / "codebook.yaml")
    out = tmp_path / "artifact"
    result = CliRunner().invoke(main, ["codebook", "train", str(data), "--codebook", codebook, "--out", str(out), "--model", "fake", "--no-finetune"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["document_head"].endswith("document-head.npz")
    watch = load_codebook(codebook).watches[0]
    assigner = build_assigner(watch, FakeEmbedder(), artifact_path=str(out))
    assert assigner.document_head is not None and assigner.document_head.frame_ids == watch.frame_ids


def test_cluster_eval_reports_the_naive_baseline_on_the_same_stream(tmp_path: Path) -> None:
    data = tmp_path / "stream.jsonl"
    assert devsets_main(["stream", str(EVENTS), str(data)]) == 0
    result = CliRunner().invoke(main, ["eval", str(data), "--codebook", str(LONGFORM / "codebook.yaml"), "--mode", "cluster", "--model", "fake"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["true_clusters"] == len(read_events(EVENTS))
    naive = figures["baseline"]["naive_single_pass_0.45"]
    assert figures["clusters"] >= 1 and naive["clusters"] >= 1 and 0.0 <= naive["nmi"] <= 1.0


def test_articles_from_gvfc_cover_every_frame(shared_dir: Path) -> None:
    gvfc = shared_dir / "data" / "gvfc"
    rows = compose_articles(load_labelled(gvfc / "gvfc_headlines.jsonl"), read_filler(LONGFORM / "filler.txt"))
    assert len(rows) == 430
    frames = {lab for r in rows for lab in r["labels"]}  # type: ignore[attr-defined]
    assert len(frames) == 9
    assert sum(len(r["labels"]) >= 2 for r in rows) > len(rows) / 2  # type: ignore[arg-type]


@pytest.mark.model
@pytest.mark.timeout(300)
def test_real_model_clusterer_beats_the_naive_single_pass(tmp_path: Path) -> None:
    data = tmp_path / "stream.jsonl"
    assert devsets_main(["stream", str(EVENTS), str(data)]) == 0
    result = CliRunner().invoke(main, ["eval", str(data), "--codebook", str(LONGFORM / "codebook.yaml"), "--mode", "cluster", "--threads", "2"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    naive = figures["baseline"]["naive_single_pass_0.45"]
    assert figures["nmi"] > naive["nmi"] and figures["ari"] > naive["ari"], figures
    assert figures["clusters"] <= 1.5 * figures["true_clusters"], figures


@pytest.mark.model
@pytest.mark.timeout(300)
def test_real_model_document_head_frames_long_articles(tmp_path: Path) -> None:
    data = write_articles(tmp_path, 60)
    result = CliRunner().invoke(main, ["eval", str(data), "--codebook", str(LONGFORM / "codebook.yaml"), "--mode", "trained", "--threads", "2"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["level"] == "document"
    assert figures["multilabel_macro_f1"] >= 0.7, figures
    # 60 short hand-written articles are too few to rank the head against the pooled LR (that
    # comparison runs on the 430 composed from GVFC, below); the segment vote it does beat
    assert figures["multilabel_macro_f1"] > figures["baselines"]["segment_vote"]["multilabel_macro_f1"], figures


@pytest.mark.model
@pytest.mark.timeout(900)
def test_real_model_document_head_beats_both_baselines_on_the_gvfc_articles(shared_dir: Path, tmp_path: Path) -> None:
    gvfc = shared_dir / "data" / "gvfc"
    data = tmp_path / "longform.jsonl"
    assert devsets_main(["articles", str(gvfc / "gvfc_headlines.jsonl"), str(LONGFORM / "filler.txt"), str(data)]) == 0
    result = CliRunner().invoke(main, ["eval", str(data), "--codebook", str(gvfc / "codebook.yaml"), "--mode", "trained", "--threads", "2"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["level"], figures["n"]) == ("document", 430)
    head, base = figures["multilabel_macro_f1"], figures["baselines"]
    # README: 0.616 against 0.595 (pooled LR) and 0.535 (segment vote), in the same run
    assert head > base["pooled_lr"]["multilabel_macro_f1"] and head > base["segment_vote"]["multilabel_macro_f1"], figures
    assert abs(head - 0.616) <= 0.02, figures
