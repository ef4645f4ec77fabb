"""``framewatch eval``: measure frame assignment (or clustering) on labelled JSONL.

Progress goes to stderr; the last line on stdout is one JSON object with the figures.
"""

from __future__ import annotations

import json
import sys

import click

from framewatch.errors import FramewatchError


def _progress(message: str) -> None:
    click.echo(message, err=True)


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
def eval_cmd(
    data: str, codebook_path: str, watch_id: str | None, mode: str, shots: int, seed: int, model_name: str | None,
    adapt: bool, finetune: bool | None, epochs: int | None, learning_rate: float | None, with_frozen: bool,
    threads: int | None, precision: str | None,
) -> None:
    """Evaluate frame assignment on DATA (JSONL: id, text, labels, optional fold) with cross-validation."""
    from dataclasses import replace

    from framewatch.processing.analyst.evaluate import EvalOptions, evaluate, load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder
    from framewatch.processing.framing.train import TrainConfig
    from framewatch.settings import Settings

    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        codebook = load_codebook(codebook_path)
        watch = codebook.watch(watch_id) if watch_id else codebook.watches[0]
        name = model_name or Settings().model_name
        train = TrainConfig(finetune=mode in ("trained", "few-shot") if finetune is None else finetune, threads=threads, seed=seed, with_frozen=with_frozen)
        if epochs is not None:
            train = replace(train, epochs=epochs)
        if learning_rate is not None:
            train = replace(train, learning_rate=learning_rate)
        if name.startswith("fake"):
            train = replace(train, finetune=False)
        examples = load_labelled(data)
        _progress(f"{len(examples)} examples, watch {watch.id!r}, mode {mode}, model {name}")
        embedder = make_embedder(name, precision=precision or Settings().model_precision)
        options = EvalOptions(mode=mode, shots=shots, seed=seed, adapt=adapt, train=train, model_name=name)
        result = evaluate(examples, watch, embedder, options, _progress)
    except FramewatchError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
