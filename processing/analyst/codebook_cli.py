"""``framewatch codebook``: validate a codebook and train a watch's frame classifier."""

from __future__ import annotations

import json
import sys

import click

from framewatch.errors import FramewatchError


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
        raise click.ClickException(str(exc)) from exc
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
def train(
    data: str, codebook_path: str, out: str, watch_id: str | None, model_name: str | None, finetune: bool,
    epochs: int, seed: int, threads: int | None,
) -> None:
    """Fit a frame classifier on labelled JSONL DATA and save it as a versioned artifact."""
    from framewatch.processing.analyst.evaluate import load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import make_embedder
    from framewatch.processing.framing.train import TrainConfig, save_artifact, train_watch
    from framewatch.settings import Settings

    try:
        cb = load_codebook(codebook_path)
        watch = cb.watch(watch_id) if watch_id else cb.watches[0]
        name = model_name or Settings().model_name
        config = TrainConfig(finetune=finetune and not name.startswith("fake"), epochs=epochs, seed=seed, threads=threads)
        examples = load_labelled(data)
        base = make_embedder(name) if not config.finetune else None
        result = train_watch(watch, examples, config=config, model_name=name, base_embedder=base, progress=lambda m: click.echo(m, err=True))
        path = save_artifact(out, result, watch=watch, codebook_version=cb.version, model_name=name, examples=examples, config=config)
    except FramewatchError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(json.dumps({"artifact": str(path), "seconds": round(result.seconds, 1), "n": len(examples)}) + "\n")


def _register_cluster_commands() -> None:
    # promote/clusters live beside the clusterer; imported here so `framewatch codebook` lists them.
    from framewatch.processing.analyst.promote import clusters, promote

    codebook.add_command(promote)
    codebook.add_command(clusters)


_register_cluster_commands()
