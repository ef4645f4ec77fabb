"""Frame assignment: score segment vectors against a watch's frames and pick frames.

Three scorers, built by :func:`build_assigner` from the strongest method available:

- **zero-shot**: cosine to a prototype per frame, the mean embedding of a few phrasings of
  "label: description" (optionally self-trained on unlabelled texts, :meth:`PrototypeScorer.adapted`);
- **few-shot**: a softmax head fitted on the codebook's examples plus the descriptions
  (examples also serve as nearest-neighbour explanations);
- **trained**: the head (and tuned encoder) of an artifact from ``framewatch codebook train``.

A frame is given only when the best score reaches ``min_score`` and beats the runner-up by
``min_margin``; ``labels`` adds every frame scoring at least ``label_ratio`` of the best (and
``min_score``), so a passage can carry several frames or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


@dataclass(frozen=True, slots=True)
class AssignConfig:
    """Decision thresholds; scores are cosines (zero-shot) or probabilities (other methods)."""

    min_score: float = 0.0
    min_margin: float = 0.0
    label_ratio: float = 0.5
    top_k: int = 3
    n_examples: int = 2


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
    ) -> None:
        self.watch = watch
        self.frame_ids = watch.frame_ids
        self.scorer = scorer
        self.method = method
        self.embedder = embedder
        self.config = config or DEFAULT_CONFIGS.get(method, AssignConfig())
        self.example_texts = tuple(example_texts)
        self.example_frames = np.array(example_frames, dtype=object)
        self.example_vectors = example_vectors

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
        return [self._decide(vectors[i], scores[i]) for i in range(len(scores))]

    def _decide(self, vector: np.ndarray, row: np.ndarray) -> Assignment:
        cfg = self.config
        if not len(row):  # a watch without frames: everything is left to emergent clustering
            return Assignment(None, (), 0.0, 0.0, (), ())
        order = np.argsort(-row, kind="stable")
        best = float(row[order[0]])
        second = float(row[order[1]]) if len(order) > 1 else float("-inf")
        margin = best - second if len(order) > 1 else best
        confident = best >= cfg.min_score and margin >= cfg.min_margin
        frame = self.frame_ids[order[0]] if confident else None
        labels: tuple[str, ...] = ()
        if best >= cfg.min_score:
            cut = max(cfg.min_score, cfg.label_ratio * best) if best > 0 else best
            labels = tuple(self.frame_ids[j] for j in order if row[j] >= cut)
            if frame is None:
                labels = ()
        top = tuple((self.frame_ids[j], round(float(row[j]), 4)) for j in order[: cfg.top_k])
        return Assignment(frame, labels, best, margin, top, self._nearest(vector, frame))

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


def zero_shot_assigner(watch: Watch, embedder: Embedder, config: AssignConfig | None = None) -> FrameAssigner:
    """Assigner from frame labels and descriptions only."""
    return FrameAssigner(watch, PrototypeScorer(zero_shot_prototypes(watch, embedder)), method=ZERO_SHOT, embedder=embedder, config=config)


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
        watch, HeadScorer(head), method=FEW_SHOT, embedder=embedder, config=config,
        example_texts=texts[:n], example_frames=frames[:n], example_vectors=vectors[:n],
    )


def trained_assigner(watch: Watch, artifact_path: str, embedder: Embedder | None = None, config: AssignConfig | None = None) -> FrameAssigner:
    """Assigner from a trained artifact (refuses one made for other frames)."""
    from framewatch.processing.framing.train import load_artifact

    artifact = load_artifact(artifact_path, watch, base_embedder=embedder)
    cfg = config or AssignConfig(
        min_score=DEFAULT_CONFIGS[TRAINED].min_score, label_ratio=artifact.label_ratio
    )
    ex_vectors = artifact.embedder.embed(artifact.example_texts) if artifact.example_texts else None
    return FrameAssigner(
        watch, HeadScorer(artifact.head), method=TRAINED, embedder=artifact.embedder, config=cfg,
        example_texts=artifact.example_texts, example_frames=artifact.example_labels, example_vectors=ex_vectors,
    )


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
