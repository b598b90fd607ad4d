"""What every command shares: turning library errors into one sentence and an exit code,
and the option bundles used by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from synccli.errors import SynccliError
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


def db_option(func: F) -> F:
    """``--db URL`` (env ``SYNCCLI_DB``)."""
    return click.option(
        "--db",
        "db_url",
        envvar="SYNCCLI_DB",
        default=DEFAULT_DB,
        show_default=True,
        help="Database URL: sqlite:///PATH, mssql+pyodbc://… or postgresql+pyodbc://…",
    )(func)


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
