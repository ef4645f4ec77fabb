"""The model in use against a candidate trained on the analysts' labels, before promotion.

Both are scored on the same stratified folds of the labels, per frame (precision, recall, F1,
support, as ``framewatch eval`` counts them: the primary label is the truth, an unframed answer a
miss, "none" answers left out). The model in use (a trained artifact, or the codebook's few- or
zero-shot assigner) is scored as it stands; the candidate is trained afresh for each fold on the
other folds plus the codebook's examples, as ``framewatch codebook train`` trains it. The
candidate that would be promoted is then trained on every label. :func:`promote_artifact` writes
it over the folder the processor reads, each file through a temporary name and a rename, the
manifest last, so the processor's ModelReloader never loads a half-written model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framewatch.errors import ConfigError
from framewatch.processing.framing.assign import TRAINED, FrameAssigner, HeadScorer, watch_config
from framewatch.processing.framing.codebook import Watch
from framewatch.processing.framing.documents import HEAD_FILE
from framewatch.processing.framing.embed import Embedder
from framewatch.processing.framing.train import (
    ENCODER,
    EXAMPLES,
    HEAD,
    MANIFEST,
    LabelledText,
    TrainConfig,
    read_manifest,
    save_artifact,
    train_watch,
)

DEFAULT_FOLDS = 5
MIN_LABELS = 10  # fewer, and a fold holds one or two passages: the figures would be noise
HEAD_ONLY = TrainConfig(finetune=False)  # a head on the processor's own encoder: seconds, not minutes

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class FrameScore:
    """One frame's figures on the labels."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class ModelScores:
    """One model's cross-validated figures: per frame and macro-F1 over the watch's frames."""

    model_id: str
    method: str
    per_frame: dict[str, FrameScore]
    macro_f1: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """The model in use and the candidate on the same folds of the same labels."""

    watch_id: str
    frames: tuple[str, ...]
    labels: int  # labelled passages scored
    without_frame: int  # "none" answers: no frame to learn or score
    folds: int
    current: ModelScores
    candidate: ModelScores

    @property
    def macro_delta(self) -> float:
        """Candidate's macro-F1 minus the model in use's."""
        return self.candidate.macro_f1 - self.current.macro_f1

    def rows(self) -> list[dict[str, Any]]:
        """Per frame: both models' figures and the candidate's deltas."""
        out = []
        for f in self.frames:
            cur, cand = self.current.per_frame[f], self.candidate.per_frame[f]
            out.append({"frame": f, "support": cur.support, "current": cur, "candidate": cand,
                        "delta": {k: getattr(cand, k) - getattr(cur, k) for k in ("precision", "recall", "f1")}})
        return out


def codebook_examples(watch: Watch) -> list[LabelledText]:
    """The watch's frame examples as training rows (ids ``codebook:<frame>:<n>``)."""
    return [LabelledText(f"codebook:{f.id}:{i}", text, (f.id,)) for f in watch.frames for i, text in enumerate(f.examples)]


def stratified_folds(examples: Sequence[LabelledText], k: int) -> list[int]:
    """Fold of each labelled example: each frame's examples, ordered by a hash of their id, dealt
    round-robin over *k* folds, so every fold holds each frame in proportion and the folds do not
    depend on the order the labels were read in."""
    by_frame: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_frame.setdefault(ex.labels[0], []).append(i)
    folds = [0] * len(examples)
    dealt = 0
    for frame in sorted(by_frame):
        ordered = sorted(by_frame[frame], key=lambda i: hashlib.sha256(examples[i].id.encode("utf-8")).hexdigest())
        for j, i in enumerate(ordered):
            folds[i] = (dealt + j) % k  # go on where the last frame stopped: folds stay equal in size
        dealt += len(ordered)
    return folds


def frame_scores(true: Sequence[str], pred: Sequence[str | None], frames: Sequence[str]) -> tuple[dict[str, FrameScore], float]:
    """Per-frame figures of single-label predictions and their macro-F1 (None predicts no frame)."""
    out = {}
    for f in frames:
        tp = sum(1 for t, p in zip(true, pred, strict=True) if t == f and p == f)
        predicted, support = sum(1 for p in pred if p == f), sum(1 for t in true if t == f)
        f1 = 0.0 if tp == 0 else 2 * tp / (predicted + support)
        out[f] = FrameScore(tp / predicted if predicted else 0.0, tp / support if support else 0.0, f1, support)
    return out, sum(s.f1 for s in out.values()) / len(frames)


def model_ref(assigner: FrameAssigner) -> str:
    """What framed records name as the assigner's model (a trained head's name, else the encoder)."""
    return assigner.model_ref or assigner.model_id


def candidate_assigner(watch: Watch, embedder: Embedder, train: Sequence[LabelledText], config: TrainConfig = HEAD_ONLY) -> FrameAssigner:
    """A candidate trained on *train* plus the codebook's examples, configured as the processor
    would load its artifact."""
    result = train_watch(watch, [*train, *codebook_examples(watch)], config=config, model_name=embedder.model_id,
                         base_embedder=embedder, progress=lambda _m: None)
    cfg = replace(watch_config(watch, TRAINED), label_ratio=config.label_ratio)
    return FrameAssigner(watch, HeadScorer(result.head), method=TRAINED, embedder=result.embedder, config=cfg)


def labelled_for(watch: Watch, examples: Sequence[LabelledText]) -> list[LabelledText]:
    """The examples with a frame, checked against the watch's frames and counted."""
    unknown = sorted({lab for ex in examples for lab in ex.labels} - set(watch.frame_ids))
    if unknown:
        raise ConfigError(f"the labels name frames watch {watch.id!r} does not have: {unknown}")
    labelled = [ex for ex in examples if ex.labels]
    if len(labelled) < MIN_LABELS:
        raise ConfigError(f"{len(labelled)} labelled passages for watch {watch.id!r}: a comparison needs at least {MIN_LABELS}")
    return labelled


def compare_models(
    examples: Sequence[LabelledText], watch: Watch, embedder: Embedder, current: FrameAssigner, *,
    folds: int = DEFAULT_FOLDS, candidate_id: str = "", progress: Progress = lambda _s, _d, _t: None,
) -> Comparison:
    """Cross-validate the model in use (*current*, as it stands) and a candidate (retrained per
    fold) on the same stratified folds of *examples*."""
    labelled = labelled_for(watch, examples)
    fold_of = stratified_folds(labelled, folds)
    true = [ex.labels[0] for ex in labelled]
    progress("scoring the model in use", 0, folds)
    now = [a.frame for a in current.assign_texts([ex.text for ex in labelled])]
    new: list[str | None] = [None] * len(labelled)
    for k in range(folds):
        progress("training the candidate", k, folds)
        test = [i for i, f in enumerate(fold_of) if f == k]
        assigner = candidate_assigner(watch, embedder, [ex for ex, f in zip(labelled, fold_of, strict=True) if f != k])
        for i, a in zip(test, assigner.assign_texts([labelled[i].text for i in test]), strict=True):
            new[i] = a.frame
    cur_frames, cur_macro = frame_scores(true, now, watch.frame_ids)
    new_frames, new_macro = frame_scores(true, new, watch.frame_ids)
    return Comparison(watch.id, watch.frame_ids, len(labelled), len(examples) - len(labelled), folds,
                      ModelScores(model_ref(current), current.method, cur_frames, cur_macro),
                      ModelScores(candidate_id, TRAINED, new_frames, new_macro))


def train_candidate(examples: Sequence[LabelledText], watch: Watch, embedder: Embedder, out: Path, *,
                    codebook_version: str, config: TrainConfig = HEAD_ONLY) -> str:
    """Train the candidate on every label plus the codebook's examples, save it as the artifact
    folder *out* (replaced), and return the model id its records will carry."""
    labelled = labelled_for(watch, examples)
    data = [*labelled, *codebook_examples(watch)]
    result = train_watch(watch, data, config=config, model_name=embedder.model_id, base_embedder=embedder,
                         progress=lambda _m: None)
    shutil.rmtree(out, ignore_errors=True)
    save_artifact(out, result, watch=watch, codebook_version=codebook_version, model_name=embedder.model_id,
                  examples=data, config=config)
    return artifact_model_id(read_manifest(out))


def artifact_model_id(manifest: dict[str, Any]) -> str:
    """The model id records framed by an artifact carry (as ``assign.trained_assigner`` names it)."""
    return f"{manifest['model_id']}+head:{str(manifest.get('training_data_hash', '?'))[:8]}"


def _replace_file(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)  # atomic: a reader sees the old file or the new one, never half of one


def promote_artifact(candidate: Path, live: Path) -> dict[str, Any]:
    """Write the artifact *candidate* over the folder *live* (manifest last); its manifest."""
    manifest = read_manifest(candidate)
    live.mkdir(parents=True, exist_ok=True)
    if (candidate / ENCODER).is_dir():
        staged, old = live / f".{ENCODER}.new", live / f".{ENCODER}.old"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        shutil.copytree(candidate / ENCODER, staged)
        if (live / ENCODER).exists():
            os.replace(live / ENCODER, old)
        os.replace(staged, live / ENCODER)
        shutil.rmtree(old, ignore_errors=True)
    for name in (HEAD, EXAMPLES, HEAD_FILE):
        if (candidate / name).exists():
            _replace_file(candidate / name, live / name)
        elif name == HEAD_FILE:
            (live / name).unlink(missing_ok=True)  # the replaced model's document head is not the candidate's
    _replace_file(candidate / MANIFEST, live / MANIFEST)
    if not (candidate / ENCODER).exists():
        shutil.rmtree(live / ENCODER, ignore_errors=True)  # the new manifest names no encoder
    return manifest
