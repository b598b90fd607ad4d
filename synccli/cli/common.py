"""What every command shares: turning library errors into one sentence and an exit code,
and the option bundles used by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from synccli.errors import SynccliError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///synccli.db"


class CommandError(click.ClickException):
    """A ``ClickException`` that keeps the exit code of the library error behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def handle_errors(func: F) -> F:
    """Report a ``SynccliError`` as ``Error: <sentence>`` with its exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SynccliError as exc:
            raise CommandError(str(exc), exc.exit_code) from None

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
