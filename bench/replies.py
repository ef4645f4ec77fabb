"""Short forum replies: how often the frame decision leaves a clear reply unframed or misframed,
and how often it frames a reply that carries no frame, zero-shot and few-shot, before and after
calibrating the decision thresholds, with the real model.

Data: ``tests/fixtures/replies/`` (76 labelled replies of one to three sentences, 54 framed and
22 without a frame, split in two folds; four few-shot examples per frame kept apart in
``shots.yaml``). The label judges the reply's own words; its quote is given apart, as the
ingester gives it.

Rules compared in the same run, on the same vectors:

- before: the current defaults (``assign.DEFAULT_CONFIGS``);
- after: thresholds from :func:`assign.calibrate` (``min_score``, ``min_margin`` and, few-shot,
  ``min_relevance``, the cosine to the nearest frame anchor) fitted on one fold and measured on
  the other, both ways round (2-fold cross-validation): no reply is scored by thresholds fitted
  on it.

Two levels: ``assigner`` is ``FrameAssigner.assign``, the call the frame stage makes;
``pipeline`` runs each reply as a forum post (text plus its quote) through ``FrameStage`` with
its default settings, whose novelty rule may then drop a frame for emergent clustering;
``pipeline-keep`` is the stage with that rule off (``novelty_max=0``).

Run: ``HF_HUB_OFFLINE=1 python bench/replies.py``. Prints a table, the calibrated thresholds
as a codebook ``decision:`` block, and one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.broker import cpu_name  # noqa: E402
from framewatch.contracts import Quote, RawItem  # noqa: E402
from framewatch.processing.framing.assign import (  # noqa: E402
    DEFAULT_CONFIGS,
    FEW_SHOT,
    ZERO_SHOT,
    AssignConfig,
    FrameAssigner,
    balanced_error,
    calibrate,
    decision_errors,
    few_shot_assigner,
    thresholds_yaml,
    zero_shot_assigner,
)
from framewatch.processing.framing.codebook import Codebook, Watch, load_codebook  # noqa: E402
from framewatch.processing.framing.embed import Embedder, make_embedder  # noqa: E402
from framewatch.processing.framing.stage import FrameStage, StageConfig  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "replies"
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
FOLDS = (0, 1)


def load_fixture(folder: Path = FIXTURES) -> tuple[Codebook, list[dict[str, Any]], dict[str, list[str]]]:
    """The codebook, the labelled replies and the few-shot examples per frame."""
    codebook = load_codebook(folder / "codebook.yaml")
    replies = yaml.safe_load((folder / "replies.yaml").read_text(encoding="utf-8"))["replies"]
    shots = yaml.safe_load((folder / "shots.yaml").read_text(encoding="utf-8"))["shots"]
    return codebook, replies, shots


def truth_of(reply: dict[str, Any]) -> str | None:
    """The reply's frame, None for a reply that carries none."""
    return reply["labels"][0] if reply["labels"] else None


def with_shots(watch: Watch, shots: dict[str, list[str]]) -> Watch:
    """The watch as a codebook with these examples would define it (few-shot in the pipeline)."""
    return replace(watch, frames=tuple(replace(f, examples=tuple(shots.get(f.id, ()))) for f in watch.frames))


def forum_post(reply: dict[str, Any]) -> RawItem:
    """A reply as the ingester hands it over: own words in ``text``, the quote apart."""
    quotes = (Quote(reply["quote"], author="someone"),) if reply.get("quote") else ()
    return RawItem(
        item_id=reply["id"], source_id="forum", feed_url="https://forum.example/t/1.rss", kind="forum_post",
        url=f"https://forum.example/t/1/{reply['id']}", title="Re: China's social credit system", author="poster",
        published_at=T0, fetched_at=T0, text=reply["text"], quotes=quotes, thread_id="1",
    )


def assigner_for(mode: str, watch: Watch, embedder: Embedder, config: AssignConfig) -> FrameAssigner:
    """The assigner the pipeline builds for *watch* in *mode*, with *config*."""
    if mode == ZERO_SHOT:
        return zero_shot_assigner(watch, embedder, config)
    return few_shot_assigner(watch, embedder, config=config)


def pipeline_frames(
    watch: Watch, codebook: Codebook, assigner: FrameAssigner, embedder: Embedder, replies: list[dict[str, Any]],
    config: StageConfig,
) -> list[str | None]:
    """Each reply's segment frame through FrameStage (one segment each: they are short)."""
    stage = FrameStage(replace(codebook, watches=(watch,)), embedder, config=config, assigners={watch.id: assigner})
    records, _, failures = stage.frame_items([(None, forum_post(r)) for r in replies])
    assert not failures and len(records) == len(replies)
    return [rec.segments[0].frame if rec.segments else None for rec in records]


def measure(mode: str, codebook: Codebook, watch: Watch, embedder: Embedder, replies: list[dict[str, Any]]) -> dict[str, Any]:
    """Error counts per level and rule, pooled over both report folds, and the thresholds fitted."""
    base = assigner_for(mode, watch, embedder, DEFAULT_CONFIGS[mode])
    counts: dict[str, dict[str, int]] = {}
    fitted: dict[str, dict[str, float]] = {}
    for report in FOLDS:
        fit = [r for r in replies if r["fold"] != report]
        held = [r for r in replies if r["fold"] == report]
        tuned = calibrate(base, embedder.embed([r["text"] for r in fit]), [truth_of(r) for r in fit])
        fitted[f"fold{1 - report}"] = thresholds_yaml(tuned)
        after = assigner_for(mode, watch, embedder, tuned)
        truth = [truth_of(r) for r in held]
        vectors = embedder.embed([r["text"] for r in held])
        runs = {
            ("assigner", "before"): [a.frame for a in base.assign(vectors)],
            ("assigner", "after"): [a.frame for a in after.assign(vectors)],
        }
        for level, stage_config in (("pipeline", StageConfig()), ("pipeline-keep", StageConfig(novelty_max=0.0))):
            for rule, assigner in (("before", base), ("after", after)):
                runs[(level, rule)] = pipeline_frames(watch, codebook, assigner, embedder, held, stage_config)
        for (level, rule), predicted in runs.items():
            total = counts.setdefault(f"{level}/{rule}", dict.fromkeys(decision_errors([], []), 0))
            for key, value in decision_errors(truth, predicted).items():
                total[key] += value
    return {"counts": counts, "thresholds": fitted}


def rates(c: dict[str, int]) -> dict[str, float]:
    """The figures reported: shares of framed replies left unframed / misframed, of unframed
    replies given a frame, and the balanced error."""
    return {
        "unframed": round(c["unframed"] / c["framed"], 3),
        "misframed": round(c["misframed"] / c["framed"], 3),
        "clear_error": round((c["unframed"] + c["misframed"]) / c["framed"], 3),
        "false_frame": round(c["false_frame"] / c["unframed_true"], 3),
        "balanced_error": round(balanced_error(c), 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32", help="model precision (auto, float32, bfloat16, int8)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    codebook, replies, shots = load_fixture()
    embedder = make_embedder(precision=args.precision)
    plain = codebook.watches[0]
    results = {
        ZERO_SHOT: measure(ZERO_SHOT, codebook, plain, embedder, replies),
        FEW_SHOT: measure(FEW_SHOT, codebook, with_shots(plain, shots), embedder, replies),
    }
    framed = sum(1 for r in replies if r["labels"])
    print(f"{len(replies)} replies ({framed} framed, {len(replies) - framed} without a frame), 2-fold CV; "
          f"model {embedder.model_id} ({args.precision}); CPU {cpu_name()}")
    print(f"{'mode':<10} {'level':<14} {'rule':<7} {'unframed':>9} {'misframed':>10} {'clear err':>10} {'false frame':>12} {'balanced':>9}")
    out: dict[str, Any] = {}
    for mode, result in results.items():
        for key, c in result["counts"].items():
            level, rule = key.split("/")
            r = rates(c)
            out.setdefault(mode, {}).setdefault(level, {})[rule] = r
            print(f"{mode:<10} {level:<14} {rule:<7} {c['unframed']:>3}/{c['framed']:<5} {c['misframed']:>4}/{c['framed']:<5}"
                  f" {r['clear_error']:>10.3f} {c['false_frame']:>5}/{c['unframed_true']:<6} {r['balanced_error']:>9.3f}")
        out[mode]["thresholds"] = result["thresholds"]
    print("\nthresholds fitted on each fold, as a codebook `decision:` block (fold 0's):")
    print(yaml.safe_dump({"decision": {m: results[m]["thresholds"]["fold0"] for m in results}}, sort_keys=False).rstrip())
    out["replies"] = len(replies)
    out["split"] = "2-fold cross-validation: thresholds fitted on one fold, counted on the other, pooled"
    out["model"] = embedder.model_id
    out["precision"] = args.precision
    out["cpu"] = cpu_name()
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
