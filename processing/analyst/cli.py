"""The analyst's offline commands: ``framewatch eval``, ``analyze`` and ``codebook``
(validate, train, clusters, promote).

None of them touches Kafka. Progress goes to stderr, results to stdout (JSON lines, or one JSON
object for ``eval``); a user mistake ends in one ``error:`` line and exit code 2, a feed that
cannot be read in exit code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from framewatch.errors import ConfigError, FramewatchError
from framewatch.service import EXIT_RUNTIME, fail, load_settings


def _progress(message: str) -> None:
    click.echo(message, err=True)


def processor_state_dir() -> Path:
    """The processor's state folder under FRAMEWATCH_STATE_DIR (where its clusters live)."""
    from framewatch.processing.framing.cli import state_dir_of

    return state_dir_of(load_settings())


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--codebook", "codebook_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Codebook YAML.")
@click.option("--watch", "watch_id", default=None, help="Watch to evaluate (default: the codebook's only/first watch).")
@click.option("--mode", type=click.Choice(["zero-shot", "few-shot", "trained", "cluster"]), default="zero-shot", show_default=True)
@click.option("--shots", type=int, default=16, show_default=True, help="Few-shot: examples per frame from the training folds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of example sampling and training.")
@click.option("--model", "model_name", default=None, help="sentence-transformers model (default FRAMEWATCH_MODEL_NAME); 'fake' for a dry run.")
@click.option("--adapt/--no-adapt", default=True, show_default=True, help="Zero-shot: self-train prototypes on the training folds' texts (no labels used).")
@click.option("--finetune/--no-finetune", default=None, help="Contrastive fine-tune of the encoder (default: on for trained and few-shot).")
@click.option("--epochs", type=int, default=None, help="Fine-tune epochs (default 4).")
@click.option("--learning-rate", type=float, default=None, help="Fine-tune learning rate (default 5e-5).")
@click.option("--with-frozen/--tuned-only", default=True, show_default=True, help="After fine-tuning, the head also reads the frozen encoder's vectors.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16", "int8"]), default=None, help="Precision of the base encoder's inference (default FRAMEWATCH_MODEL_PRECISION, auto).")
@click.option("--level", type=click.Choice(["auto", "document", "segment"]), default="auto", show_default=True,
              help="Decide per document (a head on pooled chunk vectors; frozen encoder) or per segment; auto: document for trained runs on long multi-label data.")
def eval_cmd(
    data: str, codebook_path: str, watch_id: str | None, mode: str, shots: int, seed: int, model_name: str | None,
    adapt: bool, finetune: bool | None, epochs: int | None, learning_rate: float | None, with_frozen: bool,
    threads: int | None, precision: str | None, level: str,
) -> None:
    """Evaluate frame assignment on DATA (JSONL: id, text, labels, optional fold) with cross-validation."""
    from dataclasses import replace

    from framewatch.processing.analyst.evaluate import EvalOptions, evaluate, load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder
    from framewatch.processing.framing.train import TrainConfig

    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        codebook = load_codebook(codebook_path)
        watch = codebook.watch(watch_id) if watch_id else codebook.watches[0]
        settings = load_settings()
        name = model_name or settings.model_name
        train = TrainConfig(finetune=mode in ("trained", "few-shot") if finetune is None else finetune, threads=threads, seed=seed, with_frozen=with_frozen)
        if epochs is not None:
            train = replace(train, epochs=epochs)
        if learning_rate is not None:
            train = replace(train, learning_rate=learning_rate)
        if name.startswith("fake"):
            train = replace(train, finetune=False)
        examples = load_labelled(data)
        _progress(f"{len(examples)} examples, watch {watch.id!r}, mode {mode}, model {name}")
        embedder = make_embedder(name, precision=precision or settings.model_precision)
        options = EvalOptions(mode=mode, shots=shots, seed=seed, adapt=adapt, train=train, model_name=name, level=level)
        result = evaluate(examples, watch, embedder, options, _progress)
    except FramewatchError as exc:
        fail(str(exc))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


@click.command("analyze")
@click.argument("feed")
@click.option("--codebook", "codebook_path", required=True, type=click.Path(dir_okay=False), help="Codebook YAML.")
@click.option("--embedder", "embedder_name", default=None, hidden=True, help="Model name override (`fake` for tests).")
def analyze(feed: str, codebook_path: str, embedder_name: str | None) -> None:
    """Frame the entries of FEED (a file path or URL) and print one JSON line per (item, watch).

    Each line names the item (id, url, title, author, published_at, kind) before its frames.
    """
    from framewatch.processing.analyst.analyze import AnalyzeError, analyze_feed, summary_line

    try:
        framed = analyze_feed(feed, codebook_path, load_settings(), embedder_name)
    except ConfigError as exc:
        fail(str(exc))
    except AnalyzeError as exc:
        fail(f"cannot read feed {feed}: {exc}", EXIT_RUNTIME)
    for record, item in framed:
        click.echo(json.dumps(summary_line(record, item), ensure_ascii=False))


@click.group("codebook")
def codebook() -> None:
    """Work with codebooks (watches and their frames)."""


@codebook.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
def validate(path: str) -> None:
    """Check a codebook file; print its watches and version, or the error (file:line: field)."""
    from framewatch.processing.framing.codebook import load_codebook

    try:
        cb = load_codebook(path)
    except FramewatchError as exc:
        fail(str(exc))
    for w in cb.watches:
        shots = sum(len(f.examples) for f in w.frames)
        click.echo(f"{w.id}: {len(w.frames)} frames, {shots} examples, match={'yes' if w.match else 'all items'}")
    click.echo(f"ok: {path} version {cb.version}")


@codebook.command("train")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--codebook", "codebook_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Codebook YAML.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact folder to write.")
@click.option("--watch", "watch_id", default=None, help="Watch to train (default: the first).")
@click.option("--model", "model_name", default=None, help="Base sentence-transformers model (default FRAMEWATCH_MODEL_NAME).")
@click.option("--finetune/--no-finetune", default=True, show_default=True, help="Contrastive fine-tune of the encoder before the head.")
@click.option("--epochs", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--level", type=click.Choice(["auto", "document", "segment"]), default="auto", show_default=True,
              help="Also fit a document head (document-head.npz) on the frozen encoder; auto: when DATA is long and multi-label.")
@click.option("--codebook-examples/--no-codebook-examples", "with_examples", default=True, show_default=True,
              help="Train on the codebook's frame examples too, beside DATA.")
def train(
    data: str, codebook_path: str, out: str, watch_id: str | None, model_name: str | None, finetune: bool,
    epochs: int, seed: int, threads: int | None, level: str, with_examples: bool,
) -> None:
    """Fit a frame classifier on labelled JSONL DATA (e.g. the analysts' labels from
    ``GET /api/v1/labels/export``) and the codebook's examples, and save it as a versioned artifact.
    Written over the artifact a processor runs with, it is used from the next micro-batch on."""
    from framewatch.processing.analyst.compare import codebook_examples
    from framewatch.processing.analyst.evaluate import load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder
    from framewatch.processing.framing.train import TrainConfig, save_artifact, train_watch

    try:
        cb = load_codebook(codebook_path)
        watch = cb.watch(watch_id) if watch_id else cb.watches[0]
        name = model_name or load_settings().model_name
        config = TrainConfig(finetune=finetune and not name.startswith("fake"), epochs=epochs, seed=seed, threads=threads)
        labelled = load_labelled(data)
        # "none" answers (no labels) teach no frame; the codebook's own examples join the labels
        examples = [e for e in labelled if e.labels] + (codebook_examples(watch) if with_examples else [])
        base = make_embedder(name) if not config.finetune else None
        result = train_watch(watch, examples, config=config, model_name=name, base_embedder=base, progress=lambda m: click.echo(m, err=True))
        path = save_artifact(out, result, watch=watch, codebook_version=cb.version, model_name=name, examples=examples, config=config)
        document = train_document_head(path, watch, examples, base or make_embedder(name), level, seed)
    except FramewatchError as exc:
        fail(str(exc))
    sys.stdout.write(json.dumps({"artifact": str(path), "seconds": round(result.seconds, 1), "n": len(examples),
                                 "without_frame": len(labelled) - sum(1 for e in labelled if e.labels),
                                 "document_head": document}) + "\n")


def train_document_head(path: Path, watch: Any, examples: list[Any], embedder: Any, level: str, seed: int) -> str | None:
    """Fit and save the artifact's document head when *level* asks for one; its file, or None."""
    from dataclasses import replace

    from framewatch.processing.analyst.evaluate import EvalOptions, resolve_level
    from framewatch.processing.framing.documents import (
        DOCUMENT,
        ChunkCache,
        DocumentConfig,
        fit_document_head,
    )

    options = EvalOptions(mode="trained", level=level)
    if resolve_level(examples, options) != DOCUMENT:
        return None
    labelled = [ex for ex in examples if ex.labels]
    config = replace(DocumentConfig(), seed=seed)
    docs = ChunkCache(embedder, config.chunk_tokens).documents([ex.text for ex in labelled])
    head = fit_document_head(docs, [ex.labels for ex in labelled], watch.frame_ids, config, model_id=embedder.model_id)
    _progress(f"document head on {len(labelled)} documents, thresholds {dict(zip(watch.frame_ids, head.thresholds.round(2).tolist(), strict=True))}")
    return str(head.save(Path(path)))


@codebook.command("promote")
@click.argument("watch_id", metavar="WATCH")
@click.argument("cluster_id", metavar="CLUSTER_ID")
@click.option("--codebook", "codebook_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Codebook YAML to edit.")
@click.option("--id", "frame_id", required=True, help="Id of the new frame.")
@click.option("--label", required=True, help="Human label of the new frame.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Processor state folder (default: FRAMEWATCH_STATE_DIR/processing).")
def promote(watch_id: str, cluster_id: str, codebook_path: Path, frame_id: str, label: str, state_dir: Path | None) -> None:
    """Name emergent cluster CLUSTER_ID of WATCH as a new frame in the codebook."""
    from framewatch.processing.analyst.promote import promote_cluster

    state_dir = state_dir or processor_state_dir()
    try:
        promote_cluster(codebook_path, state_dir, watch_id, cluster_id, frame_id, label)
    except (ConfigError, ValueError, OSError) as exc:
        fail(str(exc))
    click.echo(f"added frame {frame_id!r} to watch {watch_id!r} in {codebook_path} from {cluster_id}")


@codebook.command("clusters")
@click.argument("watch_id", metavar="WATCH")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Processor state folder (default: FRAMEWATCH_STATE_DIR/processing).")
@click.option("--min-size", type=int, default=2, show_default=True, help="Smallest cluster listed.")
def clusters(watch_id: str, state_dir: Path | None, min_size: int) -> None:
    """List WATCH's emergent framings (id, keyword label, size, representative passages) as JSON lines."""
    from framewatch.processing.framing.cluster import OnlineClusterer

    state_dir = state_dir or processor_state_dir()
    for s in OnlineClusterer.load(state_dir / "clusters" / watch_id).summaries(min_size):
        click.echo(json.dumps({
            "id": s.id, "label": s.label, "size": s.size, "weight": s.weight,
            "first_seen": s.first_seen.isoformat(), "last_seen": s.last_seen.isoformat(),
            "representatives": list(s.representatives),
        }, ensure_ascii=False))
