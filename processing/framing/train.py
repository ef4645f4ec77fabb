"""Training: fit a frame classifier for one watch and save it as a versioned artifact.

The recipe is SetFit-style: a short supervised-contrastive fine-tune of the sentence encoder
(texts sharing a frame pulled together, others pushed apart, in-batch), then a linear softmax
head on the tuned embeddings concatenated with the frozen encoder's (the frozen half keeps the
general similarity the short tune may forget, so the head overfits less). The frame
descriptions join the training texts as one extra example each, which anchors rare frames.
Everything runs on CPU in minutes.

An artifact is a folder: ``manifest.json`` (artifact version, codebook version, watch id and
fingerprint, model ids, frame ids, training-data hash, metrics), ``head.npz`` and, when the
encoder was tuned, ``encoder/`` (a sentence-transformers folder; ``with_frozen`` in the manifest
says the head also reads the base model's vectors). The processor loads it with
:func:`load_artifact`, which refuses an artifact made for other frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from framewatch.errors import ConfigError
from framewatch.processing.framing.codebook import Watch
from framewatch.processing.framing.embed import (
    DEFAULT_MODEL,
    Embedder,
    SentenceTransformerEmbedder,
    embedding_dimension,
    load_sentence_transformer,
    normalise_rows,
)

log = logging.getLogger(__name__)

ARTIFACT_VERSION = 1
MANIFEST = "manifest.json"
HEAD = "head.npz"
ENCODER = "encoder"
EXAMPLES = "examples.json"
EXAMPLES_PER_FRAME = 8


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Knobs of one training run."""

    finetune: bool = True
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 5e-5
    temperature: float = 0.1
    ce_weight: float = 1.0  # weight of a cross-entropy head trained with the contrastive loss (0: contrastive only)
    with_frozen: bool = True  # after fine-tuning, the head reads [tuned, frozen] vectors
    head_c: float | None = None  # None: 1.0 per encoder after fine-tuning (tight clusters), 10.0 on a frozen one
    balanced: bool = True
    label_ratio: float = 0.5
    seed: int = 0
    max_seconds: float = 540.0
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One training or evaluation example; ``labels[0]`` is the primary frame."""

    id: str
    text: str
    labels: tuple[str, ...]
    fold: int | None = None
    published_at: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class LinearHead:
    """Softmax regression over frames: probabilities = softmax(X @ coef.T + intercept)."""

    frame_ids: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """Frame probabilities for each row of *vectors*."""
        z = np.asarray(vectors, dtype=np.float64) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TrainedArtifact:
    """A loaded artifact: its manifest, head and the embedder its head expects."""

    path: Path
    manifest: dict[str, Any]
    head: LinearHead
    embedder: Embedder
    label_ratio: float = 0.5
    example_texts: tuple[str, ...] = field(default=())
    example_labels: tuple[str, ...] = field(default=())


def watch_fingerprint(watch: Watch) -> str:
    """Short hash of what a trained head depends on: the watch's frame ids, labels, descriptions."""
    parts = [watch.id] + [f"{f.id}\x1f{f.label}\x1f{f.description}" for f in watch.frames]
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()[:12]


def data_hash(examples: Sequence[LabelledText]) -> str:
    """Short hash of the training data (ids, texts and labels in order)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.text, list(ex.labels)], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


class ConcatEmbedder:
    """Several embedders side by side: each one's unit vectors, concatenated and renormalised."""

    def __init__(self, parts: Sequence[Embedder], model_id: str) -> None:
        self.parts = tuple(parts)
        self.model_id = model_id
        self.dim = sum(p.dim for p in self.parts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows of the concatenated vectors."""
        return normalise_rows(np.hstack([p.embed(texts) for p in self.parts]))


def frozen_embedder(model_name: str, base_embedder: Embedder | None) -> Embedder:
    """The untuned *model_name*: *base_embedder* when it is that model (and caches), else a fresh one."""
    if base_embedder is not None and base_embedder.model_id == model_name:
        return base_embedder
    return SentenceTransformerEmbedder(model_name)


# --- fitting ----------------------------------------------------------------------------------


def fit_head(vectors: np.ndarray, primary: Sequence[str], frame_ids: Sequence[str], *, c: float = 10.0, balanced: bool = True) -> LinearHead:
    """Fit a multinomial logistic regression on *vectors*; frames absent from the data get a
    very low intercept so they are never predicted."""
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(primary), key=list(frame_ids).index)
    if len(present) < 2:
        raise ConfigError(f"training needs at least two frames with examples, got {present}")
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
    clf.fit(vectors, list(primary))
    weights, biases = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # binary: one row w for class 1; softmax over (-w/2, +w/2) is the same model
        weights = np.vstack([-weights[0] / 2, weights[0] / 2])
        biases = np.array([-biases[0] / 2, biases[0] / 2])
    dim = vectors.shape[1]
    coef = np.zeros((len(frame_ids), dim))
    intercept = np.full(len(frame_ids), -1e3)
    for row, frame in enumerate(clf.classes_):
        j = list(frame_ids).index(frame)
        coef[j] = weights[row]
        intercept[j] = biases[row]
    return LinearHead(tuple(frame_ids), coef, intercept)


def _supcon_loss(emb: Any, targets: Any, temperature: float) -> Any:
    """Supervised contrastive loss: positives are other texts sharing a frame with the anchor."""
    import torch

    emb = torch.nn.functional.normalize(emb, dim=-1)
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    positives = ((targets @ targets.T) > 0) & ~eye
    logits = (emb @ emb.T / temperature).masked_fill(eye, -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    counts = positives.sum(1)
    has = counts > 0
    if not bool(has.any()):
        return None
    per_anchor = (log_prob * positives).sum(1)[has] / counts[has]
    return -per_anchor.mean()


def contrastive_finetune(
    model: Any,
    texts: Sequence[str],
    label_sets: Sequence[Sequence[str]],
    frame_ids: Sequence[str],
    config: TrainConfig,
    progress: Callable[[str], None] = log.info,
) -> dict[str, float]:
    """Tune a SentenceTransformer in place with in-batch supervised contrastive loss."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    index = {f: j for j, f in enumerate(frame_ids)}
    targets = np.zeros((len(texts), len(frame_ids)), dtype=np.float32)
    for i, labels in enumerate(label_sets):
        for label in labels:
            targets[i, index[label]] = 1.0
    # a throwaway softmax layer on the embedding, trained alongside the contrastive loss: the
    # cross-entropy pulls each frame's texts towards a direction that separates it from every
    # other frame, where in-batch contrast only sees the frames a batch happens to hold
    classifier = torch.nn.Linear(embedding_dimension(model), len(frame_ids)) if config.ce_weight > 0 else None
    params = list(model.parameters()) + (list(classifier.parameters()) if classifier is not None else [])
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate)
    primary = torch.tensor([index[labels[0]] for labels in label_sets])
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    started = time.monotonic()
    steps, last_loss = 0, float("nan")
    model.train()
    try:
        for epoch in range(config.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                if len(batch) < 2:
                    continue
                features = preprocess([texts[i] for i in batch])
                emb = model(features)["sentence_embedding"]
                loss = _supcon_loss(emb, torch.from_numpy(targets[batch]), config.temperature)
                if classifier is not None:
                    # on the normalised embedding scaled like a cosine softmax (temperature)
                    logits = classifier(torch.nn.functional.normalize(emb, dim=-1)) / config.temperature
                    ce = torch.nn.functional.cross_entropy(logits, primary[batch])
                    loss = config.ce_weight * ce if loss is None else loss + config.ce_weight * ce
                if loss is None:
                    continue
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps += 1
                last_loss = float(loss.detach())
                if time.monotonic() - started > config.max_seconds:
                    progress(f"fine-tune stopped at the time limit after {steps} steps")
                    return {"steps": steps, "loss": last_loss, "seconds": time.monotonic() - started}
            progress(f"epoch {epoch + 1}/{config.epochs}: loss {last_loss:.3f} ({time.monotonic() - started:.0f}s)")
    finally:
        model.eval()
    return {"steps": steps, "loss": last_loss, "seconds": time.monotonic() - started}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_watch` produced, before or after saving."""

    head: LinearHead
    embedder: Embedder
    model: Any
    finetune_stats: dict[str, float]
    seconds: float


def train_watch(
    watch: Watch,
    examples: Sequence[LabelledText],
    *,
    config: TrainConfig = TrainConfig(),
    model_name: str = DEFAULT_MODEL,
    base_embedder: Embedder | None = None,
    progress: Callable[[str], None] = log.info,
) -> TrainResult:
    """Fit encoder (optionally) and head on *examples* for *watch*'s frames.

    Without fine-tuning, *base_embedder* (any Embedder, e.g. the fake one in tests) gives the
    features; with it, a fresh copy of *model_name* is tuned.
    """
    started = time.monotonic()
    frame_ids = watch.frame_ids
    unknown = sorted({lab for ex in examples for lab in ex.labels} - set(frame_ids))
    if unknown:
        raise ConfigError(f"training data has labels not in watch {watch.id!r}: {unknown}")
    labelled = [ex for ex in examples if ex.labels]
    texts = [ex.text for ex in labelled] + [f"{f.label}: {f.description}" for f in watch.frames]
    label_sets = [ex.labels for ex in labelled] + [(f.id,) for f in watch.frames]
    for f in watch.frames:
        texts.extend(f.examples)
        label_sets.extend([(f.id,)] * len(f.examples))
    stats: dict[str, float] = {}
    model = None
    if config.finetune:
        model = load_sentence_transformer(model_name)
        progress(f"fine-tuning {model_name} on {len(texts)} texts")
        stats = contrastive_finetune(model, texts, label_sets, frame_ids, config, progress)
        embedder: Embedder = SentenceTransformerEmbedder(model_name, model=model)
        if config.with_frozen:
            embedder = ConcatEmbedder([embedder, frozen_embedder(model_name, base_embedder)], model_name)
    else:
        embedder = base_embedder if base_embedder is not None else SentenceTransformerEmbedder(model_name)
    vectors = embedder.embed(texts)
    parts = len(embedder.parts) if isinstance(embedder, ConcatEmbedder) else 1
    # renormalising k concatenated unit vectors scales each by 1/sqrt(k); C * k keeps the penalty per part
    c = config.head_c if config.head_c is not None else (1.0 * parts if config.finetune else 10.0)
    head = fit_head(vectors, [labels[0] for labels in label_sets], frame_ids, c=c, balanced=config.balanced)
    return TrainResult(head, embedder, model, stats, time.monotonic() - started)


# --- artifacts --------------------------------------------------------------------------------


def save_artifact(
    out: str | Path,
    result: TrainResult,
    *,
    watch: Watch,
    codebook_version: str,
    model_name: str,
    examples: Sequence[LabelledText],
    config: TrainConfig,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact folder *out* and return its path."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / HEAD, coef=result.head.coef, intercept=result.head.intercept)
    if result.model is not None:
        result.model.save(str(path / ENCODER))
    manifest = {
        "artifact_version": ARTIFACT_VERSION,
        "codebook_version": codebook_version,
        "watch_id": watch.id,
        "watch_fingerprint": watch_fingerprint(watch),
        "frame_ids": list(watch.frame_ids),
        "base_model": model_name,
        "model_id": result.embedder.model_id,
        "encoder": ENCODER if result.model is not None else None,
        "with_frozen": isinstance(result.embedder, ConcatEmbedder),
        "training_data_hash": data_hash(examples),
        "n_examples": len(examples),
        "config": asdict(config),
        "metrics": {**(metrics or {}), "train_seconds": round(result.seconds, 1), **result.finetune_stats},
        "created_at": datetime.now(UTC).isoformat(),
    }
    kept: dict[str, list[str]] = {f: [] for f in watch.frame_ids}
    for ex in examples:  # a few examples per frame, for explanations
        if ex.labels and len(kept[ex.labels[0]]) < EXAMPLES_PER_FRAME:
            kept[ex.labels[0]].append(ex.text)
    (path / EXAMPLES).write_text(json.dumps(kept, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check an artifact's manifest."""
    p = Path(path) / MANIFEST
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not a framewatch artifact: {exc}") from exc
    if manifest.get("artifact_version") != ARTIFACT_VERSION:
        raise ConfigError(f"{p}: artifact_version {manifest.get('artifact_version')!r} is not supported (want {ARTIFACT_VERSION})")
    return dict(manifest)


def load_artifact(path: str | Path, watch: Watch, *, base_embedder: Embedder | None = None) -> TrainedArtifact:
    """Load an artifact for *watch*; refuse one trained for other frames or frame texts.

    A head trained on a frozen encoder uses *base_embedder* (which must have the manifest's
    model id); a tuned encoder is loaded from the artifact.
    """
    p = Path(path)
    manifest = read_manifest(p)
    where = f"{p / MANIFEST}"
    if manifest.get("watch_id") != watch.id:
        raise ConfigError(f"{where}: artifact is for watch {manifest.get('watch_id')!r}, not {watch.id!r}")
    if tuple(manifest.get("frame_ids", ())) != watch.frame_ids:
        raise ConfigError(
            f"{where}: artifact frames {manifest.get('frame_ids')} do not match the codebook's "
            f"{list(watch.frame_ids)}; retrain with `framewatch codebook train`"
        )
    if manifest.get("watch_fingerprint") != watch_fingerprint(watch):
        raise ConfigError(
            f"{where}: the codebook's frame labels or descriptions changed since training "
            f"(codebook version at training {manifest.get('codebook_version')}); retrain"
        )
    with np.load(p / HEAD) as head_file:
        head = LinearHead(watch.frame_ids, head_file["coef"], head_file["intercept"])
    if manifest.get("encoder"):
        embedder: Embedder = SentenceTransformerEmbedder(
            manifest["model_id"], model=load_sentence_transformer(str(p / manifest["encoder"]))
        )
        if manifest.get("with_frozen"):
            embedder = ConcatEmbedder([embedder, frozen_embedder(manifest["base_model"], base_embedder)], manifest["model_id"])
    else:
        if base_embedder is None:
            embedder = SentenceTransformerEmbedder(manifest["model_id"])
        elif base_embedder.model_id != manifest["model_id"]:
            raise ConfigError(f"{where}: head needs model {manifest['model_id']!r}, got {base_embedder.model_id!r}")
        else:
            embedder = base_embedder
    if embedder.dim != head.coef.shape[1]:
        raise ConfigError(f"{where}: head expects {head.coef.shape[1]}-d vectors, model gives {embedder.dim}")
    ratio = float(manifest.get("config", {}).get("label_ratio", 0.5))
    texts: list[str] = []
    labels: list[str] = []
    if (p / EXAMPLES).exists():
        kept = json.loads((p / EXAMPLES).read_text(encoding="utf-8"))
        for frame in watch.frame_ids:
            texts.extend(kept.get(frame, []))
            labels.extend([frame] * len(kept.get(frame, [])))
    return TrainedArtifact(p, manifest, head, embedder, ratio, tuple(texts), tuple(labels))
