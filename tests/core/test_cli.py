"""The framewatch command: every subcommand imports and explains itself."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from framewatch.cli import COMMANDS, main


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("sub", ["validate", "train", "promote", "clusters"])
def test_codebook_subcommands(sub: str) -> None:
    result = CliRunner().invoke(main, ["codebook", sub, "--help"])
    assert result.exit_code == 0, result.output
