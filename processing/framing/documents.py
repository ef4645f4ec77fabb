"""Document-level multi-label framing: a head on pooled chunk vectors, thresholds per frame.

Segment decisions voted into a document lose to a classifier that sees the whole document
(issue #15): a frame that fills one paragraph of ten wins no vote but still marks the article.
So a document is cut into chunks of the live segments' size (segment.py), each chunk embedded
once, the chunk vectors pooled (the mean; ``mean+max`` measured lower on the long-article set),
the pooled features standardised (a frame moves a filler-dominated mean only a little, so raw
cosine features sit too close together for a regularised fit), and a one-vs-rest logistic
regression gives each frame a probability. Each frame's threshold is the one that maximised its
F1 on out-of-fold probabilities of an inner cross-validation over the training documents, so a
rare frame is not silenced by a 0.5 cut fitted to common ones.

The head saves as one ``.npz`` (``document-head.npz`` beside a trained artifact's manifest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framewatch.contracts import FrameScore, RawItem
from framewatch.errors import ConfigError
from framewatch.processing.framing.codebook import Watch, share_level
from framewatch.processing.framing.embed import Embedder, text_hash
from framewatch.processing.framing.segment import segment_text

HEAD_FILE = "document-head.npz"
MEAN = "mean"
MEAN_MAX = "mean+max"
POOLINGS = (MEAN, MEAN_MAX)
DOCUMENT = "document"
SEGMENT = "segment"
LEVELS = (DOCUMENT, SEGMENT)
CHUNK_TOKENS = 200  # the live segments' size (segment.py), so the processor's cached vectors serve


@dataclass(frozen=True, slots=True)
class DocumentConfig:
    """Knobs of the document head."""

    chunk_tokens: int = CHUNK_TOKENS
    pooling: str = MEAN
    c: float = 0.1  # on standardised features
    inner_folds: int = 4
    seed: int = 0
    threshold_grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def chunk_document(text: str, chunk_tokens: int = CHUNK_TOKENS) -> list[str]:
    """The chunks of a document that each fit the model window (at least one: the text)."""
    chunks = [s.text for s in segment_text(text, max_tokens=chunk_tokens, min_chars=min(200, 6 * chunk_tokens // 4))]
    return chunks or [text.strip() or text]


class ChunkCache:
    """Chunk vectors by text hash, so cross-validation embeds every chunk once for all folds."""

    def __init__(self, embedder: Embedder, chunk_tokens: int = CHUNK_TOKENS) -> None:
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self._vectors: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Chunk vectors (n_chunks, dim) of each text; new chunks are embedded in one call."""
        chunked = [chunk_document(t, self.chunk_tokens) for t in texts]
        return self.chunks(chunked)

    def chunks(self, chunked: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Vectors of already-chunked documents."""
        missing = list(dict.fromkeys(c for doc in chunked for c in doc if text_hash(c) not in self._vectors))
        if missing:
            matrix = np.asarray(self.embedder.embed(missing), dtype=np.float32)
            self._vectors.update(zip((text_hash(c) for c in missing), matrix, strict=True))
        return [np.stack([self._vectors[text_hash(c)] for c in doc]) for doc in chunked]


def pool(chunk_vectors: np.ndarray, pooling: str = MEAN_MAX) -> np.ndarray:
    """One feature vector for a document from its chunk vectors."""
    vectors = np.asarray(chunk_vectors, dtype=np.float32)
    if vectors.ndim != 2 or not len(vectors):
        raise ValueError("a document needs at least one chunk vector")
    mean = vectors.mean(axis=0)
    if pooling == MEAN:
        return mean
    if pooling == MEAN_MAX:
        return np.concatenate([mean, vectors.max(axis=0)])
    raise ConfigError(f"unknown pooling {pooling!r} (choose from {list(POOLINGS)})")


def label_matrix(label_sets: Sequence[Sequence[str]], frame_ids: Sequence[str]) -> np.ndarray:
    """Binary (n, n_frames) matrix of label sets."""
    index = {f: j for j, f in enumerate(frame_ids)}
    y = np.zeros((len(label_sets), len(frame_ids)), dtype=np.int8)
    for i, labels in enumerate(label_sets):
        for label in labels:
            if label not in index:
                raise ConfigError(f"label {label!r} is not a frame of the watch {list(frame_ids)}")
            y[i, index[label]] = 1
    return y


@dataclass(frozen=True)
class DocumentHead:
    """One-vs-rest logistic regression on pooled chunk vectors, one threshold per frame."""

    frame_ids: tuple[str, ...]
    coef: np.ndarray  # (n_frames, n_features)
    intercept: np.ndarray  # (n_frames,)
    thresholds: np.ndarray  # (n_frames,); above 1: the frame is never given (no training positive)
    center: np.ndarray  # (n_features,) training mean and standard deviation: features are
    scale: np.ndarray  # standardised, as a frame's signal is a small move of a filler-dominated mean
    pooling: str = MEAN
    chunk_tokens: int = CHUNK_TOKENS
    model_id: str = ""  # the (frozen) encoder whose chunk vectors it reads

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Per-frame probabilities (n, n_frames) of pooled feature rows."""
        x = (np.asarray(features, dtype=np.float64) - self.center) / self.scale
        z = x @ self.coef.T + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def features(self, documents: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled feature rows of documents given as chunk-vector matrices."""
        return np.stack([pool(d, self.pooling) for d in documents])

    def decide(self, documents: Sequence[np.ndarray]) -> list[DocumentDecision]:
        """Frames of each document (chunk-vector matrices): those at or above their threshold."""
        if not documents:
            return []
        probs = self.probabilities(self.features(documents))
        return [self._decision(row) for row in probs]

    def _decision(self, row: np.ndarray) -> DocumentDecision:
        order = np.argsort(-row, kind="stable")
        labels = tuple(self.frame_ids[j] for j in order if row[j] >= self.thresholds[j])
        scores = tuple((self.frame_ids[j], round(float(row[j]), 6)) for j in order)
        return DocumentDecision(labels, scores)

    def save(self, path: str | Path) -> Path:
        """Write the head as ``.npz`` (a folder gets ``document-head.npz``)."""
        p = Path(path)
        if p.is_dir():
            p = p / HEAD_FILE
        np.savez(p, coef=self.coef, intercept=self.intercept, thresholds=self.thresholds,
                 center=self.center, scale=self.scale, frame_ids=np.array(self.frame_ids), pooling=np.array(self.pooling),
                 chunk_tokens=np.array(self.chunk_tokens), model_id=np.array(self.model_id))
        return p

    @classmethod
    def load(cls, path: str | Path, frame_ids: Sequence[str]) -> DocumentHead:
        """Read a saved head; refuse one fitted for other frames."""
        p = Path(path)
        if p.is_dir():
            p = p / HEAD_FILE
        try:
            with np.load(p) as f:
                saved = tuple(str(x) for x in f["frame_ids"])
                head = cls(saved, f["coef"], f["intercept"], f["thresholds"], f["center"], f["scale"], str(f["pooling"]),
                           int(f["chunk_tokens"]), str(f["model_id"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{p}: not a document head: {exc}") from exc
        if saved != tuple(frame_ids):
            raise ConfigError(f"{p}: document head frames {list(saved)} do not match the codebook's {list(frame_ids)}; retrain")
        return head


@dataclass(frozen=True, slots=True)
class DocumentDecision:
    """The frames one document got, with every frame's probability (highest first)."""

    labels: tuple[str, ...]
    scores: tuple[tuple[str, float], ...]


def _fit_ovr(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame balanced logistic regressions; a frame with one class only gets a constant."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    # one BLAS thread: these fits are small, and a thread pool per fit on a busy CPU is ~20x slower
    with threadpool_limits(1):
        for j in range(y.shape[1]):
            positives = int(y[:, j].sum())
            if positives in (0, len(y)):
                intercept[j] = -50.0 if positives == 0 else 50.0
                continue
            clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            clf.fit(x, y[:, j])
            coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
    return coef, intercept


def best_threshold(probs: np.ndarray, truth: np.ndarray, grid: Sequence[float]) -> float:
    """The grid threshold with the best F1 of ``probs >= t`` against binary *truth*; ties go to
    the median candidate (away from a plateau's edges). Above 1 when there is no positive."""
    if not truth.any():
        return 1.01
    scores = []
    for t in grid:
        pred = probs >= t
        tp = int((pred & (truth == 1)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (pred.sum() + truth.sum()))
    top = max(scores)
    ties = [t for t, s in zip(grid, scores, strict=True) if s >= top - 1e-12]
    return float(ties[len(ties) // 2])


def fit_document_head(
    documents: Sequence[np.ndarray],
    label_sets: Sequence[Sequence[str]],
    frame_ids: Sequence[str],
    config: DocumentConfig = DocumentConfig(),
    model_id: str = "",
) -> DocumentHead:
    """Fit the head on chunk-vector matrices and label sets; thresholds from inner CV."""
    if len(documents) < 2:
        raise ConfigError(f"a document head needs at least two labelled documents, got {len(documents)}")
    raw = np.stack([pool(d, config.pooling) for d in documents]).astype(np.float64)
    center, scale = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
    x = (raw - center) / scale
    y = label_matrix(label_sets, frame_ids)
    oof = np.zeros(y.shape, dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    folds = rng.permutation(len(x)) % max(2, min(config.inner_folds, len(x)))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        coef, intercept = _fit_ovr(x[train], y[train], config.c)
        oof[test] = 1.0 / (1.0 + np.exp(-np.clip(x[test] @ coef.T + intercept, -50, 50)))
    thresholds = np.array([best_threshold(oof[:, j], y[:, j], config.threshold_grid) for j in range(y.shape[1])])
    coef, intercept = _fit_ovr(x, y, config.c)
    return DocumentHead(tuple(frame_ids), coef, intercept, thresholds, center, scale, config.pooling, config.chunk_tokens, model_id)


def decide_document(head: DocumentHead, embedder: Embedder, text: str) -> DocumentDecision:
    """The document decision for one item's text, chunked as the head was trained (the live
    processor's embedder caches by text, so chunks that equal its segments cost nothing)."""
    chunks = chunk_document(text, head.chunk_tokens)
    return head.decide([np.asarray(embedder.embed(chunks), dtype=np.float32)])[0]


def document_text(item: RawItem, max_chars: int) -> str:
    """What the document head reads of an item: its body (the title when it has none), capped."""
    body = (item.text or "").strip()
    return (body or (item.title or "").strip())[:max_chars]


def document_fields(
    head: DocumentHead | None, embedder: Embedder, watch: Watch, item: RawItem,
    segment_shares: Mapping[str, float], max_chars: int,
) -> dict[str, Any]:
    """The framed record's level fields: ``frame``/``frame_shares`` from the level that counts
    for share of voice (:func:`codebook.share_level`), ``shares_level``, and the document
    decision (``document_frames``, ``document_scores``) whenever a head exists."""
    shares = dict(segment_shares)
    dominant = min(shares, key=lambda f: (-shares[f], f)) if shares else None
    if head is None:
        return {"frame": dominant, "frame_shares": shares, "shares_level": SEGMENT}
    decision = decide_document(head, embedder, document_text(item, max_chars))
    level = share_level(watch, item.kind, True)
    if level == DOCUMENT:
        # equal shares: the head says which frames an article carries, not how much of it
        shares = {f: round(1.0 / len(decision.labels), 6) for f in sorted(decision.labels)}
        dominant = decision.labels[0] if decision.labels else None
    return {
        "frame": dominant, "frame_shares": shares, "shares_level": level, "document_frames": decision.labels,
        "document_scores": tuple(FrameScore(f, p) for f, p in decision.scores),
    }
