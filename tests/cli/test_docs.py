"""Every command and subcommand has help text, and `--help` works for each."""

from __future__ import annotations

import click
from click.testing import CliRunner

from synccli.cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


def test_every_command_has_help_text() -> None:
    paths = _commands(cli)
    assert {("serve",), ("simulate",), ("report",), ("db", "init"), ("proxy",)} <= set(paths)
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        command: click.Command = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        assert command.help and "Not built" not in command.help, path
