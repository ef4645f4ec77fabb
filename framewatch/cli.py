"""The ``framewatch`` command. Subcommands live beside the code they run and load lazily,
so ``framewatch ingest`` never pays for importing torch."""

from __future__ import annotations

import importlib
import logging
import sys

import click

# name -> "module:attribute" of a click command
COMMANDS = {
    "up": "framewatch.stack:up",
    "kafka": "framewatch.stack:kafka",
    "ingest": "framewatch.ingest.cli:ingest",
    "aggregate": "framewatch.processing.trends.cli:aggregate",
    "notify": "framewatch.processing.alerts.cli:notify",
    "sink": "framewatch.processing.sink.cli:sink",
    "serve": "framewatch.processing.serve.cli:serve",
    "dashboards": "framewatch.dashboards.cli:dashboards",
    "process": "framewatch.processing.framing.cli:process",
    "analyze": "framewatch.processing.analyst.cli:analyze",
    "eval": "framewatch.processing.analyst.cli:eval_cmd",
    "codebook": "framewatch.processing.analyst.cli:codebook",
    "dead-letters": "framewatch.dead_letters.cli:dead_letters",
    "shifts": "framewatch.processing.changes.cli:shifts",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


@click.group(cls=LazyGroup)
@click.option("--log-level", default=None, help="Python log level (default FRAMEWATCH_LOG_LEVEL or INFO).")
@click.version_option(package_name="framewatch")
def main(log_level: str | None) -> None:
    """framewatch: how news and forum coverage frames an issue, and how that shifts."""
    from framewatch.service import load_settings

    level = log_level or load_settings().log_level
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python logs every connection at INFO; keep its warnings, drop the chatter.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    # httpx/httpcore log every request's full URL at INFO/DEBUG: a Slack webhook URL or a feed
    # URL with a token in it is a secret. Even at --log-level debug they stay at WARNING.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
