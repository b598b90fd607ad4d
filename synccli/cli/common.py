"""What every command shares: turning library errors into one sentence and an exit code,
the option bundles used by several commands (decorators, as sqlite-utils' ``output_options``)
and the completion of scenario names.

Short flags mean the same in every command: ``-c`` clients, ``-d`` duration, ``-s``
scenario, ``-q`` quiet, ``-o`` output folder, ``-t`` threshold, ``-u`` server URL, ``-p``
port, ``-f`` format. Every option that reads an environment variable shows it in ``--help``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from synccli.domain.values import check_date
from synccli.errors import ProtocolError, SynccliError
from synccli.harness.scenario_fields import parse_duration

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///synccli.db"


@functools.cache
def command_error(exit_code: int) -> type[click.ClickException]:
    """The ``ClickException`` class that exits with ``exit_code`` (click reads it from the
    class), one per code."""

    class CommandError(click.ClickException):
        pass

    CommandError.exit_code = exit_code
    return CommandError


def handle_errors(func: F) -> F:
    """Report a ``SynccliError`` as ``Error: <sentence>`` with its exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SynccliError as exc:
            raise command_error(exc.exit_code)(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def valid_date(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """A click callback: ``value`` if it is a ``YYYY-MM-DD`` date, else a usage error."""
    try:
        return check_date(value)
    except ProtocolError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """``click.option`` that shows its environment variable in ``--help``."""
    attrs.setdefault("show_envvar", True)
    return click.option(*param_decls, **attrs)


def db_option(
    default: str | None = DEFAULT_DB,
    help: str = "Database URL: sqlite:///PATH, mssql+pyodbc://… or postgresql+pyodbc://…",
) -> Callable[[F], F]:
    """``--db URL`` (env ``SYNCCLI_DB``) into ``db_url``."""
    return option(
        "--db", "db_url", envvar="SYNCCLI_DB", default=default, show_default=True, help=help
    )


def threshold_option(func: F) -> F:
    """``-t/--threshold METRIC=EXPR``, repeatable, into ``thresholds``."""
    return option(
        "-t",
        "--threshold",
        "thresholds",
        multiple=True,
        metavar="METRIC=EXPR",
        help="Override a threshold, e.g. 'delivery_rate=>=0.99' or 'latency_ms.p99<500'. "
        "Repeatable.",
    )(func)


def complete_scenario(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of a scenario: the shipped names (or those in the ``--dir`` given
    before it), ``default``, and the ``*.toml`` files (and folders leading to them) that
    start with ``incomplete``."""
    from synccli.harness.scenario import DEFAULT_NAME, SCENARIO_DIR  # only when completing

    directory = Path(ctx.params.get("directory") or SCENARIO_DIR)
    names = sorted({path.stem for path in directory.glob("*.toml")} | {DEFAULT_NAME})
    items = [CompletionItem(name) for name in names if name.startswith(incomplete)]
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".")
    if base.is_dir():
        for path in sorted(base.glob(f"{stem}*")):
            shown = f"{folder}/{path.name}" if folder else path.name
            if path.is_dir():
                items.append(CompletionItem(shown + "/"))
            elif path.suffix == ".toml":
                items.append(CompletionItem(shown))
    return items


def examples(*lines: str) -> str:
    """An ``Examples:`` block for a command's help text, kept verbatim by Click (``\\b``)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class Duration(click.types.FloatParamType):
    """Seconds, bare (``15``) or with units (``30s``, ``2m``, ``1m30s``), within bounds."""

    name = "duration"

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(f"{exc}.", param, ctx)
        if not self.minimum <= seconds <= self.maximum:
            self.fail(
                f"{value} is not between {self.minimum:g} s and {self.maximum:g} s.", param, ctx
            )
        return seconds
