"""The ``synccli`` command group. Each command lives in its own module and only builds a
config and calls the library. A command's module is imported only when that command runs
(or help lists it), so a quick command such as ``events`` does not pay for loading the
server, the harness and the report."""

from __future__ import annotations

import importlib

import click

from synccli.cli.common import examples
from synccli.version import __version__

# (module, attribute) of every top-level command, in help order.
COMMANDS = (
    ("synccli.cli.serve", "serve"),
    ("synccli.cli.checkin", "checkin"),
    ("synccli.cli.token", "token"),
    ("synccli.cli.db", "db"),
    ("synccli.cli.events", "events"),
    ("synccli.cli.board", "board"),
    ("synccli.cli.simulate", "simulate"),
    ("synccli.cli.report", "report"),
    ("synccli.cli.scenarios", "scenarios"),
    ("synccli.cli.proxy", "proxy"),
)


class LazyGroup(click.Group):
    """A group whose commands are ``COMMANDS``, each imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for _, name in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module, name in COMMANDS:
            if name == cmd_name:
                command = getattr(importlib.import_module(module), name)
                assert isinstance(command, click.Command)
                return command
        return None


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "synccli db seed && synccli serve",
        "synccli simulate -c 10 -d 15",
        "synccli report --gate",
        'eval "$(_SYNCCLI_COMPLETE=bash_source synccli)"    # shell completion (bash)',
    ),
)
@click.version_option(__version__, prog_name="synccli")
def cli() -> None:
    """Reliable real-time sync for appointment boards, and the harness that proves it.

    Exit codes: 0 ok/pass, 1 a threshold or invariant failed, 2 usage error,
    3 inconclusive, 4 infrastructure error. Options that read an environment variable
    show it in their command's --help; shell completion (bash, zsh, fish) is described
    in the README.
    """


def main() -> None:
    cli(prog_name="synccli")
