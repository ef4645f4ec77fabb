"""The labelling loop on GVFC headlines: does answering the queue (the least sure passages first)
teach the model faster than labelling passages picked at random?

A simulated analyst starts from a few-shot codebook (``--shots`` examples a frame from the
training folds), answers the queue with the gold primary frame in batches of ``--batch`` passages
from the training folds, and the head is retrained after each batch (the project's ``fit_head``
on the real MiniLM vectors, as ``framewatch codebook train`` does). The queue's order is the API's
(the smallest margin between the two most likely frames first), each batch spread over the least
sure passages so it is not spent on near-copies of one story. Beside it, the same
loop with batches picked at random (``--seeds`` runs, median). Each fold is held out in turn; the
figure is the held-out macro-F1 over the 5 folds, after each batch, up to ``--labels``.

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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GVFC = ROOT.parent / "shared" / "data" / "gvfc"

from framewatch.processing.analyst.evaluate import fold_of, load_labelled, primary_f1  # noqa: E402
from framewatch.processing.framing.embed import load_sentence_transformer  # noqa: E402
from framewatch.processing.framing.train import fit_head  # noqa: E402
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


def diverse_uncertain(vectors: np.ndarray, margin: np.ndarray, batch: int, shortlist: int = 4) -> list[int]:
    """*batch* of the ``shortlist * batch`` least sure rows, spread out (farthest-first by cosine),
    so one batch does not spend 25 labels on near-copies of one confusing story."""
    candidates = np.argsort(margin, kind="stable")[: shortlist * batch]
    picked = [int(candidates[0])]
    nearest = vectors[candidates] @ vectors[picked[0]]
    while len(picked) < min(batch, len(candidates)):
        k = int(np.argmin(nearest))
        picked.append(int(candidates[k]))
        nearest = np.maximum(nearest, vectors[candidates] @ vectors[candidates[k]])
    return picked


def run_loop(x: np.ndarray, y: list[str], frames: list[str], train: np.ndarray, test: np.ndarray, start: list[int],
             batch: int, budget: int, strategy: str, rng: np.random.Generator, order: str = "spread") -> list[float]:
    """Held-out macro-F1 after 0, batch, 2*batch, ... *budget* labels."""
    labelled = list(start)
    pool = [i for i in train if i not in set(start)]
    scores = []
    while True:
        head = fit_head(x[labelled], [y[i] for i in labelled], frames)
        pred = [frames[j] for j in head.predict_proba(x[test]).argmax(axis=1)]
        scores.append(primary_f1([y[i] for i in test], pred, frames)[0])
        if len(labelled) - len(start) >= budget or not pool:
            return scores
        if strategy == "queue":
            margin = margins(head.predict_proba(x[pool]))
            chosen = (diverse_uncertain(x[pool], margin, batch) if order == "spread"
                      else np.argsort(margin, kind="stable")[:batch])
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
    parser.add_argument("--seeds", type=int, default=3, help="runs of the random baseline (and start sets)")
    parser.add_argument("--chart", type=Path, default=None, help="write the two curves as PNG here")
    parser.add_argument("--order", choices=("spread", "margin"), default="spread",
                        help="queue batches: the least sure spread out (default), or strictly by margin as the API lists them")
    args = parser.parse_args()
    if not (GVFC / "gvfc_headlines.jsonl").is_file():
        sys.exit(f"active_learning: GVFC not found at {GVFC} (it lives in ../shared, outside the project)")
    examples = [e for e in load_labelled(GVFC / "gvfc_headlines.jsonl") if e.labels]
    frames = sorted({e.labels[0] for e in examples})
    y = [e.labels[0] for e in examples]
    t0 = time.perf_counter()
    x = vectors_of([e.text for e in examples], Settings().model_name)
    print(f"{len(examples)} headlines, {len(frames)} frames, vectors in {time.perf_counter() - t0:.1f} s")
    folds = np.array([fold_of(e) for e in examples])
    curves: dict[str, list[list[float]]] = {"queue": [], "random": []}
    for seed in range(args.seeds):
        for fold in sorted(set(folds)):
            rng = np.random.default_rng(seed * 100 + int(fold))
            train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            start = []
            for f in frames:  # the few-shot codebook: *shots* training examples a frame
                pool = [i for i in train if y[i] == f]
                start += [int(i) for i in rng.choice(pool, size=min(args.shots, len(pool)), replace=False)]
            for strategy in curves:
                curves[strategy].append(run_loop(x, y, frames, train, test, start, args.batch, args.labels, strategy,
                                                 np.random.default_rng(seed * 100 + int(fold) + 1), args.order))
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
                      "runs": len(curves["queue"])}))


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
