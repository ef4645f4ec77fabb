"""Frame assignment: score segment vectors against a watch's frames and pick frames.

Three scorers, built by :func:`build_assigner` from the strongest method available:

- **zero-shot**: cosine to a prototype per frame, the mean embedding of a few phrasings of
  "label: description" (optionally self-trained on unlabelled texts, :meth:`PrototypeScorer.adapted`);
- **few-shot**: a softmax head fitted on the codebook's examples plus the descriptions
  (examples also serve as nearest-neighbour explanations);
- **trained**: the head (and tuned encoder) of an artifact from ``framewatch codebook train``.

A frame is given only when the best score reaches ``min_score``, beats the runner-up by
``min_margin`` and, where ``min_relevance`` is set, the passage lies within that cosine of one
of the frames' anchors (their prompts and examples): a softmax head always spreads its
probability over the frames, so only the distance to the anchors can say "none of these" (a
"This." or "lol" reply). ``labels`` adds every frame scoring at least ``label_ratio`` of the best
(and ``min_score``), so a passage can carry several frames or none. Thresholds live on different
scales per method; :func:`calibrate` picks them on labelled passages, and a codebook watch can
carry the picked ones (``decision:``, see codebook.py), which :func:`build_assigner` applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from framewatch.errors import ConfigError
from framewatch.processing.framing.codebook import Watch
from framewatch.processing.framing.embed import Embedder, normalise_rows

ZERO_SHOT = "zero-shot"
FEW_SHOT = "few-shot"
TRAINED = "trained"


@dataclass(frozen=True, slots=True)
class Assignment:
    """The frame(s) one segment got, with scores for the explanation."""

    frame: str | None
    labels: tuple[str, ...]
    score: float
    margin: float
    top: tuple[tuple[str, float], ...]
    nearest_examples: tuple[str, ...] = ()
    relevance: float | None = None  # cosine to the nearest frame anchor (None: no anchors)


@dataclass(frozen=True, slots=True)
class AssignConfig:
    """Decision thresholds; scores are cosines (zero-shot) or probabilities (other methods)."""

    min_score: float = 0.0
    min_margin: float = 0.0
    label_ratio: float = 0.5
    top_k: int = 3
    n_examples: int = 2
    min_relevance: float | None = None  # cosine to the nearest anchor needed for a frame; None: no gate


def accepts(best: float, margin: float, relevance: float | None, config: AssignConfig) -> bool:
    """The decision rule: whether a passage whose best frame scored *best* gets that frame."""
    if config.min_relevance is not None and relevance is not None and relevance < config.min_relevance:
        return False
    return best >= config.min_score and margin >= config.min_margin


# Sensible defaults per method (cosines and probabilities live on different scales).
DEFAULT_CONFIGS = {
    ZERO_SHOT: AssignConfig(min_score=0.15, min_margin=0.0, label_ratio=0.9),
    FEW_SHOT: AssignConfig(min_score=0.2, min_margin=0.0, label_ratio=0.5),
    TRAINED: AssignConfig(min_score=0.2, min_margin=0.0, label_ratio=0.5),
}


class FrameScorer(Protocol):
    """Scores unit vectors against frames: (n, n_frames) array, higher is closer."""

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Score matrix for *vectors*."""
        ...


# Zero-shot prototypes average these phrasings of a frame (a small prompt ensemble: one plain,
# one that frames it as a story, as most texts are); on GVFC the average is within 0.02 of the
# best single template and depends less on one wording (see QUALITY.md).
ZERO_SHOT_TEMPLATES = ("{label}: {description}", "A news story about {label}: {description}")


def frame_prompts(watch: Watch) -> list[str]:
    """One text per frame, "label: description" (the anchor added to few-shot and training data)."""
    return [f"{f.label}: {f.description}" for f in watch.frames]


def zero_shot_prototypes(watch: Watch, embedder: Embedder, templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> np.ndarray:
    """Unit prototype per frame: the mean of its embedded *templates* (filled with label, description)."""
    if not watch.frames:
        return np.zeros((0, 1), dtype=np.float32)
    per_template = [
        embedder.embed([t.format(label=f.label, description=f.description) for f in watch.frames]) for t in templates
    ]
    return normalise_rows(np.mean(per_template, axis=0))


class PrototypeScorer:
    """Cosine similarity to one unit prototype per frame."""

    def __init__(self, prototypes: np.ndarray) -> None:
        self.prototypes = normalise_rows(prototypes)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosines (n, n_frames)."""
        if not len(self.prototypes):
            return np.zeros((len(vectors), 0), dtype=np.float32)
        return np.asarray(vectors, dtype=np.float32) @ self.prototypes.T

    def adapted(self, unlabelled: np.ndarray, *, weight: float = 1.0) -> PrototypeScorer:
        """One step of self-training on unlabelled vectors: each prototype moves toward the
        mean of the vectors it wins (prototype kept with *weight*). Needs no labels."""
        if len(unlabelled) == 0:
            return self
        winners = self.scores(unlabelled).argmax(axis=1)
        moved = []
        for j, proto in enumerate(self.prototypes):
            members = unlabelled[winners == j]
            moved.append(weight * proto + (members.mean(axis=0) if len(members) else 0.0))
        return PrototypeScorer(np.array(moved))


class HeadScorer:
    """Probabilities of a linear softmax head (few-shot or trained)."""

    def __init__(self, head: object) -> None:
        self.head = head

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Probabilities (n, n_frames)."""
        return np.asarray(self.head.predict_proba(vectors))  # type: ignore[attr-defined]


class FrameAssigner:
    """Turns segment vectors into Assignments for one watch."""

    def __init__(
        self,
        watch: Watch,
        scorer: FrameScorer,
        *,
        method: str,
        embedder: Embedder,
        config: AssignConfig | None = None,
        example_texts: Sequence[str] = (),
        example_frames: Sequence[str] = (),
        example_vectors: np.ndarray | None = None,
        anchor_vectors: np.ndarray | None = None,
        document_head: object | None = None,
    ) -> None:
        self.watch = watch
        self.document_head = document_head  # documents.DocumentHead of a trained artifact, if it has one
        self.frame_ids = watch.frame_ids
        self.scorer = scorer
        self.method = method
        self.embedder = embedder
        self.config = config or DEFAULT_CONFIGS.get(method, AssignConfig())
        self.example_texts = tuple(example_texts)
        self.example_frames = np.array(example_frames, dtype=object)
        self.example_vectors = example_vectors
        self.anchor_vectors = anchor_vectors if anchor_vectors is not None and len(anchor_vectors) else None
        self.model_ref: str | None = None  # a trained head's name, for the records it decides

    @property
    def model_id(self) -> str:
        """Model whose vectors :meth:`assign` expects."""
        return self.embedder.model_id

    def assign_texts(self, texts: Sequence[str]) -> list[Assignment]:
        """Embed *texts* with this assigner's embedder and assign them."""
        return self.assign(self.embedder.embed(texts))

    def assign(self, vectors: np.ndarray) -> list[Assignment]:
        """One Assignment per row of *vectors* (vectors from :attr:`embedder`)."""
        if len(vectors) == 0:
            return []
        scores = self.scorer.scores(vectors)
        relevance = self.relevance(vectors)
        return [
            self._decide(vectors[i], scores[i], None if relevance is None else float(relevance[i]))
            for i in range(len(scores))
        ]

    def relevance(self, vectors: np.ndarray) -> np.ndarray | None:
        """Cosine of each row to its nearest anchor (frame prompt or example); None without anchors."""
        if self.anchor_vectors is None or len(vectors) == 0:
            return None
        return np.asarray((np.asarray(vectors, dtype=np.float32) @ self.anchor_vectors.T).max(axis=1))

    def _decide(self, vector: np.ndarray, row: np.ndarray, relevance: float | None = None) -> Assignment:
        cfg = self.config
        if not len(row):  # a watch without frames: everything is left to emergent clustering
            return Assignment(None, (), 0.0, 0.0, (), ())
        order = np.argsort(-row, kind="stable")
        best = float(row[order[0]])
        second = float(row[order[1]]) if len(order) > 1 else float("-inf")
        margin = best - second if len(order) > 1 else best
        confident = accepts(best, margin, relevance, cfg)
        frame = self.frame_ids[order[0]] if confident else None
        labels: tuple[str, ...] = ()
        if best >= cfg.min_score:
            cut = max(cfg.min_score, cfg.label_ratio * best) if best > 0 else best
            labels = tuple(self.frame_ids[j] for j in order if row[j] >= cut)
            if frame is None:
                labels = ()
        top = tuple((self.frame_ids[j], round(float(row[j]), 4)) for j in order[: cfg.top_k])
        rel = None if relevance is None else round(relevance, 4)
        return Assignment(frame, labels, best, margin, top, self._nearest(vector, frame), rel)

    def _nearest(self, vector: np.ndarray, frame: str | None) -> tuple[str, ...]:
        if frame is None or self.example_vectors is None or not len(self.example_texts):
            return ()
        mask = self.example_frames == frame
        if not mask.any():
            return ()
        idx = np.flatnonzero(mask)
        sims = self.example_vectors[idx] @ vector
        best = idx[np.argsort(-sims, kind="stable")[: self.config.n_examples]]
        return tuple(self.example_texts[i] for i in best)


# --- building ---------------------------------------------------------------------------------


def watch_config(watch: Watch, method: str) -> AssignConfig:
    """The method's default thresholds, overridden by the watch's calibrated ones (``decision:``)."""
    return replace(DEFAULT_CONFIGS.get(method, AssignConfig()), **watch.thresholds_for(method))


def zero_shot_assigner(watch: Watch, embedder: Embedder, config: AssignConfig | None = None) -> FrameAssigner:
    """Assigner from frame labels and descriptions only (the prototypes are also its anchors)."""
    prototypes = zero_shot_prototypes(watch, embedder)
    return FrameAssigner(
        watch, PrototypeScorer(prototypes), method=ZERO_SHOT, embedder=embedder,
        config=config or watch_config(watch, ZERO_SHOT), anchor_vectors=prototypes if watch.frames else None,
    )


def few_shot_assigner(
    watch: Watch,
    embedder: Embedder,
    examples: Sequence[tuple[str, str]] | None = None,
    config: AssignConfig | None = None,
    *,
    head_c: float = 10.0,
) -> FrameAssigner:
    """Assigner from (text, frame) examples (default: the codebook's) plus the descriptions:
    a softmax head on the embeddings. Frames without examples still have their description."""
    from framewatch.processing.framing.train import fit_head

    if examples is None:
        examples = [(text, f.id) for f in watch.frames for text in f.examples]
    texts = [t for t, _ in examples] + frame_prompts(watch)
    frames = [f for _, f in examples] + list(watch.frame_ids)
    vectors = embedder.embed(texts)
    head = fit_head(vectors, frames, watch.frame_ids, c=head_c, balanced=True)
    n = len(examples)
    return FrameAssigner(
        watch, HeadScorer(head), method=FEW_SHOT, embedder=embedder, config=config or watch_config(watch, FEW_SHOT),
        example_texts=texts[:n], example_frames=frames[:n], example_vectors=vectors[:n], anchor_vectors=vectors,
    )


def trained_assigner(watch: Watch, artifact_path: str, embedder: Embedder | None = None, config: AssignConfig | None = None) -> FrameAssigner:
    """Assigner from a trained artifact (refuses one made for other frames)."""
    from framewatch.processing.framing.documents import HEAD_FILE, DocumentHead
    from framewatch.processing.framing.train import load_artifact

    artifact = load_artifact(artifact_path, watch, base_embedder=embedder)
    document_head = None
    if (artifact.path / HEAD_FILE).exists():
        document_head = DocumentHead.load(artifact.path / HEAD_FILE, watch.frame_ids)
        base = embedder.model_id if embedder is not None else artifact.manifest.get("base_model")
        if document_head.model_id and document_head.model_id != base:
            raise ConfigError(f"{artifact.path / HEAD_FILE}: document head needs model {document_head.model_id!r}, got {base!r}")
    cfg = config or replace(watch_config(watch, TRAINED), label_ratio=artifact.label_ratio)
    ex_vectors = artifact.embedder.embed(artifact.example_texts) if artifact.example_texts else None
    assigner = FrameAssigner(
        watch, HeadScorer(artifact.head), method=TRAINED, embedder=artifact.embedder, config=cfg,
        example_texts=artifact.example_texts, example_frames=artifact.example_labels, example_vectors=ex_vectors,
        anchor_vectors=ex_vectors, document_head=document_head,
    )
    # the record names the trained head that decided, not only the encoder (a promotion changes it)
    assigner.model_ref = f"{artifact.embedder.model_id}+head:{artifact.manifest.get('training_data_hash', '?')[:8]}"
    return assigner


def build_assigner(
    watch: Watch, embedder: Embedder, *, artifact_path: str | None = None, config: AssignConfig | None = None
) -> FrameAssigner:
    """The strongest assigner the inputs allow: trained > few-shot > zero-shot."""
    if artifact_path:
        return trained_assigner(watch, artifact_path, embedder, config)
    if len(watch.frames) >= 2 and any(f.examples for f in watch.frames):
        # a softmax head needs two frames; one frame is scored by cosine to its description
        return few_shot_assigner(watch, embedder, config=config)
    return zero_shot_assigner(watch, embedder, config)


def semantic_match(watch: Watch, vectors: np.ndarray, embedder: Embedder) -> np.ndarray:
    """Which rows belong to *watch* by its match description (all True without one)."""
    if watch.match is None or watch.match.description is None:
        return np.ones(len(vectors), dtype=bool)
    target = embedder.embed([watch.match.description])[0]
    return np.asarray(vectors, dtype=np.float32) @ target >= watch.match.threshold


# --- calibration ------------------------------------------------------------------------------


def decision_errors(truth: Sequence[str | None], predicted: Sequence[str | None]) -> dict[str, int]:
    """The three ways a frame decision goes wrong, counted: a framed passage left ``unframed`` or
    ``misframed``, an unframed one given a frame (``false_frame``); with ``framed``/``unframed``
    totals of the truth."""
    out = {"framed": 0, "unframed_true": 0, "unframed": 0, "misframed": 0, "false_frame": 0}
    for t, p in zip(truth, predicted, strict=True):
        if t is None:
            out["unframed_true"] += 1
            out["false_frame"] += p is not None
        else:
            out["framed"] += 1
            out["unframed"] += p is None
            out["misframed"] += p is not None and p != t
    return out


def balanced_error(counts: Mapping[str, int]) -> float:
    """Mean of the framed passages' error rate (unframed + misframed) and the unframed passages'
    (false frames), so the share of chit-chat in a sample does not pick the thresholds."""
    framed = (counts["unframed"] + counts["misframed"]) / counts["framed"] if counts["framed"] else 0.0
    none = counts["false_frame"] / counts["unframed_true"] if counts["unframed_true"] else 0.0
    return (framed + none) / 2


def _steps(low: float, high: float, step: float = 0.02) -> tuple[float, ...]:
    return tuple(round(low + i * step, 4) for i in range(round((high - low) / step) + 1))


def calibrate(assigner: FrameAssigner, vectors: np.ndarray, truth: Sequence[str | None]) -> AssignConfig:
    """Thresholds (``min_score``, ``min_margin``, ``min_relevance``) that minimise
    :func:`balanced_error` of *assigner* on labelled *vectors* (truth None: no frame), searched on
    a 0.02 grid over the method's scale. Ties go to the median candidate in grid order (away from
    the plateau's edges). Calibrate on one split and measure on another: the grid fits any sample."""
    if len(vectors) == 0 or not assigner.frame_ids:
        return assigner.config
    scores = assigner.scorer.scores(vectors)
    relevance = assigner.relevance(vectors)
    rows = []
    for i, row in enumerate(scores):
        ordered = np.sort(row)[::-1]
        margin = float(ordered[0] - ordered[1]) if len(ordered) > 1 else float(ordered[0])
        rel = None if relevance is None else float(relevance[i])
        rows.append((assigner.frame_ids[int(np.argmax(row))], float(ordered[0]), margin, rel))
    cosine = assigner.method == ZERO_SHOT  # cosines; other methods score probabilities
    score_grid = _steps(0.0, 0.6) if cosine else _steps(0.0, 0.9)
    # zero-shot's anchors are its prototypes, so relevance would repeat min_score
    relevance_grid: tuple[float | None, ...] = (None,) if cosine or relevance is None else (None, *_steps(0.0, 0.6))
    best: list[AssignConfig] = []
    best_error = float("inf")
    for rel_cut, score_cut, margin_cut in itertools.product(relevance_grid, score_grid, _steps(0.0, 0.2)):
        cfg = replace(assigner.config, min_score=score_cut, min_margin=margin_cut, min_relevance=rel_cut)
        predicted = [top if accepts(b, m, r, cfg) else None for top, b, m, r in rows]
        error = balanced_error(decision_errors(truth, predicted))
        if error < best_error - 1e-12:
            best, best_error = [cfg], error
        elif abs(error - best_error) <= 1e-12:
            best.append(cfg)
    return best[len(best) // 2]


def thresholds_yaml(config: AssignConfig) -> dict[str, float]:
    """The calibrated thresholds as a codebook ``decision:`` entry for one method."""
    out = {"min_score": config.min_score, "min_margin": config.min_margin}
    if config.min_relevance is not None:
        out["min_relevance"] = config.min_relevance
    return out


# --- item level -------------------------------------------------------------------------------


def frame_shares(assignments: Iterable[Assignment], weights: Sequence[float] | None = None) -> dict[str, float]:
    """Share of each frame among an item's framed segments (optionally weighted, e.g. by
    length); segments without a frame do not count. Shares sum to 1 (or the dict is empty)."""
    totals: dict[str, float] = {}
    for i, a in enumerate(assignments):
        if a.frame is not None:
            totals[a.frame] = totals.get(a.frame, 0.0) + (weights[i] if weights is not None else 1.0)
    whole = sum(totals.values())
    return {f: v / whole for f, v in sorted(totals.items())} if whole > 0 else {}


def dominant_frame(shares: dict[str, float]) -> str | None:
    """The frame with the largest share (ties: alphabetical first); None when nothing framed."""
    if not shares:
        return None
    return min(shares, key=lambda f: (-shares[f], f))
