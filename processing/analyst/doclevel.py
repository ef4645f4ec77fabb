"""Document-level evaluation: the document head against the segment vote and a pooled
logistic regression, on the same folds and on chunk vectors embedded once for all folds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from framewatch.processing.analyst.evaluate import EvalOptions, fold_of, multilabel_f1
from framewatch.processing.framing.assign import TRAINED, HeadScorer
from framewatch.processing.framing.codebook import Watch
from framewatch.processing.framing.documents import (
    ChunkCache,
    fit_document_head,
    label_matrix,
    pool,
)
from framewatch.processing.framing.embed import Embedder
from framewatch.processing.framing.train import LabelledText


def evaluate_documents(
    examples: Sequence[LabelledText], watch: Watch, embedder: Embedder, options: EvalOptions,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Multi-label figures of the document head and, on the same folds and chunk vectors, of
    the segment vote and the pooled-LR baseline (``baselines``).

    - document head: :func:`framing.documents.fit_document_head` (thresholds by inner CV);
    - segment vote: the segment-level softmax head (as ``fit_head`` on frozen vectors, the
      frame descriptions as extra examples) trained on the training documents' chunks, each
      chunk once per label of its document; a document gets every frame one of its chunks got
      (the live record's frame shares);
    - pooled LR: the mean chunk vector, one-vs-rest logistic regression, a 0.5 cut.
    """
    from threadpoolctl import threadpool_limits

    from framewatch.processing.framing.assign import FrameAssigner, frame_shares
    from framewatch.processing.framing.train import LinearHead, fit_head

    frames = watch.frame_ids
    cache = ChunkCache(embedder, options.document.chunk_tokens)
    started = time.monotonic()
    docs = cache.documents([ex.text for ex in examples])
    embed_seconds = time.monotonic() - started
    progress(f"embedded {len(cache)} distinct chunks of {len(examples)} documents once, in {embed_seconds:.0f}s")
    prompts = embedder.embed([f"{f.label}: {f.description}" for f in watch.frames])
    folds = sorted({fold_of(ex) for ex in examples})
    predicted: dict[str, list[tuple[str, ...]]] = {name: [()] * len(examples) for name in ("document", "segment_vote", "pooled_lr")}
    with threadpool_limits(1):  # small fits: one BLAS thread each is far faster on a busy CPU
        for k in folds:
            test = [i for i, ex in enumerate(examples) if fold_of(ex) == k]
            train = [i for i, ex in enumerate(examples) if fold_of(ex) != k and ex.labels]
            head = fit_document_head([docs[i] for i in train], [examples[i].labels for i in train], frames, replace(options.document, seed=options.seed))
            for i, d in zip(test, head.decide([docs[i] for i in test]), strict=True):
                predicted["document"][i] = d.labels
            baseline = _pooled_lr([docs[i] for i in train], [examples[i].labels for i in train], frames)
            for i in test:
                predicted["pooled_lr"][i] = baseline(docs[i])
            rows = [(v, lab) for i in train for v in docs[i] for lab in examples[i].labels]
            seg_head: LinearHead = fit_head(
                np.vstack([np.stack([v for v, _ in rows]), prompts]), [lab for _, lab in rows] + list(frames), frames, c=10.0,
            )
            assigner = FrameAssigner(watch, HeadScorer(seg_head), method=TRAINED, embedder=embedder, config=options.assign)
            for i in test:
                predicted["segment_vote"][i] = tuple(frame_shares(assigner.assign(docs[i])))
            progress(f"fold {k}: {len(train)} train, {len(test)} test")
    truth = [ex.labels for ex in examples]
    figures = {name: multilabel_f1(truth, pred, frames) for name, pred in predicted.items()}
    ml_macro, ml_micro = figures.pop("document")
    return {
        "multilabel_macro_f1": round(ml_macro, 4),
        "multilabel_micro_f1": round(ml_micro, 4),
        "baselines": {name: {"multilabel_macro_f1": round(a, 4), "multilabel_micro_f1": round(b, 4)} for name, (a, b) in figures.items()},
        "folds": len(folds),
        "chunks": len(cache),
        "embed_seconds": round(embed_seconds, 1),
        "pooling": options.document.pooling,
        "chunk_tokens": options.document.chunk_tokens,
    }


def _pooled_lr(docs: Sequence[np.ndarray], label_sets: Sequence[Sequence[str]], frames: Sequence[str]) -> Callable[[np.ndarray], tuple[str, ...]]:
    """The simple baseline a practitioner writes in a few lines: the mean chunk vector,
    standardised, one-vs-rest logistic regression (sklearn's defaults), cut at 0.5. (Without the
    scaling, the mean of unit vectors barely varies and plain LR never fires: macro-F1 near 0.)"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([pool(d, "mean") for d in docs])
    y = label_matrix(label_sets, frames)
    models = [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y[:, j]) if 0 < y[:, j].sum() < len(y) else None
        for j in range(len(frames))
    ]

    def predict(doc: np.ndarray) -> tuple[str, ...]:
        row = pool(doc, "mean")[None, :]
        return tuple(f for f, m in zip(frames, models, strict=True) if m is not None and m.predict_proba(row)[0, 1] >= 0.5)

    return predict
