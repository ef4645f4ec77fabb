"""The labelling loop on GVFC headlines: does answering the queue teach the model faster than
labelling passages picked at random?

A simulated analyst starts from a few-shot codebook (``--shots`` examples a frame from the
training folds), answers the queue with the gold primary frame in batches of ``--batch`` passages
from the training folds, and the head is retrained after each batch (the project's ``fit_head``
on the real MiniLM vectors, with the codebook's frame descriptions as one example each, as
``framewatch codebook train`` does without fine-tuning). The queue's order (``--order``) is by
default the API's (:func:`balanced_order`: the least sure passages in turns over the frames, the
least labelled frame first); ``--order oracle`` bounds what any order could do. Beside it, the
same loop and learner with batches picked at random. Each fold is held out in turn; the figure is
the held-out macro-F1, mean over the 5 folds x ``--seeds`` start sets, after each batch, up to
``--labels``.

Prints one line per batch, then one JSON object on the last line with ``labels``, ``queue_f1``,
``random_f1`` and ``queue_labels_to_reach_random`` (labels the queue needs to reach random's
figure at ``--labels``); with ``--chart PATH`` it also draws the two curves (PNG).
Needs ../shared/data/gvfc (not shipped with the project).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: tiny fits, where BLAS threads only contend
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GVFC = ROOT.parent / "shared" / "data" / "gvfc"

from framewatch.processing.analyst.evaluate import fold_of, load_labelled, primary_f1  # noqa: E402
from framewatch.processing.framing.codebook import load_codebook  # noqa: E402
from framewatch.processing.framing.embed import load_sentence_transformer  # noqa: E402
from framewatch.processing.framing.train import LinearHead, fit_head  # noqa: E402
from framewatch.processing.workbench.queue import CONTENDERS, balanced_order  # noqa: E402
from framewatch.settings import Settings  # noqa: E402


def vectors_of(texts: list[str], model_name: str) -> np.ndarray:
    """The texts' normalised MiniLM vectors, cached on disk by content (the model is the cost)."""
    digest = hashlib.sha256(("\n".join(texts) + model_name).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch")) / f"bench-al-{digest}.npy"
    if cache.is_file():
        return np.asarray(np.load(cache))
    model = load_sentence_transformer(model_name)
    vecs = np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True), dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def margins(head_proba: np.ndarray) -> np.ndarray:
    """Gap between each row's two most likely frames (the queue's order: smallest first)."""
    top2 = np.sort(head_proba, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def spread_out(vectors: np.ndarray, order: list[int] | np.ndarray, batch: int, shortlist: int) -> list[int]:
    """*batch* of the first ``shortlist * batch`` rows of *order*, spread out (farthest-first by
    cosine), so one batch does not spend 25 labels on near-copies of one confusing story."""
    candidates = np.asarray(order)[: shortlist * batch]
    picked = [int(candidates[0])]
    nearest = vectors[candidates] @ vectors[picked[0]]
    while len(picked) < min(batch, len(candidates)):
        k = int(np.argmin(nearest))
        picked.append(int(candidates[k]))
        nearest = np.maximum(nearest, vectors[candidates] @ vectors[candidates[k]])
    return picked


ORDERS = ("balanced", "balanced-spread", "spread", "margin", "oracle")
ORACLE_CANDIDATES = 60  # random batches the oracle weighs each round, beside the API order's


def queue_batch(order: str, vectors: np.ndarray, proba: np.ndarray, labelled: list[str], frames: list[str],
                batch: int) -> list[int] | np.ndarray:
    """The pool rows the queue offers next: *order* is ``balanced`` (the API's first *batch*),
    ``balanced-spread`` (the API's order, spread over its first 2 * batch), ``spread`` (the least
    margin first, spread over 4 * batch) or ``margin`` (the least margin first, the API's old order)."""
    margin = margins(proba)
    if order.startswith("balanced"):
        tops = [[frames[j] for j in row] for row in np.argsort(-proba, axis=1, kind="stable")[:, :CONTENDERS]]
        ranked = balanced_order(margin.tolist(), tops, {f: labelled.count(f) for f in frames})
        return ranked[:batch] if order == "balanced" else spread_out(vectors, ranked, batch, 2)
    ranked_by_margin = np.argsort(margin, kind="stable")
    return spread_out(vectors, ranked_by_margin, batch, 4) if order == "spread" else ranked_by_margin[:batch]


def run_loop(x: np.ndarray, y: list[str], frames: list[str], train: np.ndarray, test: np.ndarray, start: list[int],
             batch: int, budget: int, strategy: str, rng: np.random.Generator, order: str = "balanced",
             codebook: tuple[np.ndarray, list[str]] | None = None, val: np.ndarray | None = None) -> list[float]:
    """Held-out macro-F1 after 0, batch, 2*batch, ... *budget* labels; *codebook* (vectors, frames)
    joins every training set (the frame descriptions).

    The ``oracle`` order is a bound, not a queue: each round it weighs ``ORACLE_CANDIDATES`` random
    batches and the API order's, with their gold labels, and keeps the one that most raises macro-F1
    on *val* (a training fold kept out of its pool; never the held-out fold)."""
    labelled = list(start)
    kept_out = set(start) | (set(val.tolist()) if strategy == "queue" and order == "oracle" and val is not None else set())
    pool = [i for i in train if i not in kept_out]
    extra_x, extra_y = codebook if codebook is not None else (np.zeros((0, x.shape[1]), dtype=x.dtype), [])

    def fit(rows: list[int]) -> LinearHead:
        return fit_head(np.vstack([x[rows], extra_x]), [y[i] for i in rows] + extra_y, frames)

    def f1_on(head: LinearHead, rows: np.ndarray) -> float:
        return primary_f1([y[i] for i in rows], [frames[j] for j in head.predict_proba(x[rows]).argmax(axis=1)], frames)[0]

    scores = []
    while True:
        head = fit(labelled)
        scores.append(f1_on(head, test))
        if len(labelled) - len(start) >= budget or not pool:
            return scores
        chosen: list[int] | np.ndarray
        if strategy == "queue" and order == "oracle" and val is not None:
            api = queue_batch("balanced", x[pool], head.predict_proba(x[pool]), [y[i] for i in labelled], frames, batch)
            candidates = [list(api)] + [list(rng.choice(len(pool), size=min(batch, len(pool)), replace=False))
                                        for _ in range(ORACLE_CANDIDATES)]
            chosen = max(candidates, key=lambda c: f1_on(fit(labelled + [pool[k] for k in c]), val))
        elif strategy == "queue":
            chosen = queue_batch(order, x[pool], head.predict_proba(x[pool]), [y[i] for i in labelled], frames, batch)
        else:
            chosen = rng.choice(len(pool), size=min(batch, len(pool)), replace=False)
        picked = {pool[k] for k in chosen}
        labelled += sorted(picked)
        pool = [i for i in pool if i not in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=int, default=2, help="codebook examples a frame to start from")
    parser.add_argument("--batch", type=int, default=25, help="labels per batch (the model retrains after each)")
    parser.add_argument("--labels", type=int, default=200, help="labels answered in all")
    parser.add_argument("--seeds", type=int, default=10,
                        help="start sets and random runs a fold (orders differ by ~0.01, the noise of 3 seeds)")
    parser.add_argument("--chart", type=Path, default=None, help="write the two curves as PNG here")
    parser.add_argument("--order", choices=ORDERS, default="balanced",
                        help="queue batches: the API's order (default) or spread out, by margin spread out or strictly, "
                             "or the oracle (a bound: the best of random batches by gold labels on a training fold)")
    parser.add_argument("--no-descriptions", action="store_true", help="train on the labels alone, without the frame descriptions")
    args = parser.parse_args()
    if not (GVFC / "gvfc_headlines.jsonl").is_file():
        sys.exit(f"active_learning: GVFC not found at {GVFC} (it lives in ../shared, outside the project)")
    examples = [e for e in load_labelled(GVFC / "gvfc_headlines.jsonl") if e.labels]
    frames = sorted({e.labels[0] for e in examples})
    y = [e.labels[0] for e in examples]
    t0 = time.perf_counter()
    x = vectors_of([e.text for e in examples], Settings().model_name)
    print(f"{len(examples)} headlines, {len(frames)} frames, vectors in {time.perf_counter() - t0:.1f} s")
    watch = load_codebook(GVFC / "codebook.yaml").watches[0]
    described = [f for f in watch.frames if f.id in frames]
    codebook = None if args.no_descriptions else (
        vectors_of([f"{f.label}: {f.description}" for f in described], Settings().model_name), [f.id for f in described])
    folds = np.array([fold_of(e) for e in examples])
    curves: dict[str, list[list[float]]] = {"queue": [], "random": []}
    for seed in range(args.seeds):
        for fold in sorted(set(folds)):
            rng = np.random.default_rng(seed * 100 + int(fold))
            train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            others = sorted(set(folds) - {fold})  # the oracle's validation fold is one of these
            start = []
            for f in frames:  # the few-shot codebook: *shots* training examples a frame
                pool = [i for i in train if y[i] == f]
                start += [int(i) for i in rng.choice(pool, size=min(args.shots, len(pool)), replace=False)]
            for strategy in curves:
                curves[strategy].append(run_loop(x, y, frames, train, test, start, args.batch, args.labels, strategy,
                                                 np.random.default_rng(seed * 100 + int(fold) + 1), args.order, codebook,
                                                 np.flatnonzero(folds == others[seed % len(others)])))
    steps = list(range(0, args.labels + 1, args.batch))
    mean = {s: [statistics.fmean(run[k] for run in runs) for k in range(len(steps))] for s, runs in curves.items()}
    for k, n in enumerate(steps):
        print(f"{n:4d} labels   queue macro-F1 {mean['queue'][k]:.3f}   random {mean['random'][k]:.3f}")
    target = mean["random"][-1]
    reach = next((n for n, f in zip(steps, mean["queue"], strict=True) if f >= target), None)
    print(f"the queue reaches random's {args.labels}-label figure ({target:.3f}) with "
          f"{reach if reach is not None else 'more than ' + str(args.labels)} labels")
    if args.chart is not None:
        draw(steps, mean, args.chart)
        print(f"chart: {args.chart}")
    print(json.dumps({"labels": steps, "queue_f1": [round(v, 4) for v in mean["queue"]],
                      "random_f1": [round(v, 4) for v in mean["random"]], "queue_labels_to_reach_random": reach,
                      "runs": len(curves["queue"]), "order": args.order}))


def draw(steps: list[int], mean: dict[str, list[float]], path: Path) -> None:
    """Both curves as a PNG (Altair + vl-convert, data inline)."""
    import altair as alt
    import vl_convert as vlc

    rows = [{"labels": n, "macro-F1": v, "picked": name} for name, vals in mean.items() for n, v in zip(steps, vals, strict=True)]
    chart = alt.Chart(alt.Data(values=rows), width=420, height=220,
                      title="GVFC held-out macro-F1 as the analyst labels").mark_line(point=True).encode(
        x=alt.X("labels:Q", title="labels answered"), y=alt.Y("macro-F1:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("picked:N", title="passages picked"))
    path.write_bytes(bytes(vlc.vegalite_to_png(chart.to_dict(), scale=2, allowed_base_urls=[])))


if __name__ == "__main__":
    main()
