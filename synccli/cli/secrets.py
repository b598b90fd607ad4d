"""Secrets on the command line: ``--NAME``, ``--NAME-file`` or an environment variable.

A secret given as an argument is visible to every user of the machine (``ps``), so each one
can also come from a file (``--token-file``) or the environment. Click ignores an empty
environment variable; here an empty secret from any source is an error, never "no secret":
``SYNCCLI_TOKEN=""`` must not silently turn auth off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from synccli.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Secret:
    """A resolved secret and whether it came from the command line (visible in ``ps``)."""

    value: str | None
    on_command_line: bool = False


def secret_options(name: str, env: str, what: str) -> Callable[[F], F]:
    """``--NAME VALUE`` and ``--NAME-file PATH`` (the environment variable ``env`` is read by
    ``resolve_secret``, so that an empty one is an error)."""
    dest = name.replace("-", "_")

    def decorate(func: F) -> F:
        func = click.option(
            f"--{name}-file",
            f"{dest}_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Read the {what} from this file.",
        )(func)
        return click.option(
            f"--{name}",
            dest,
            default=None,
            help=f"The {what} (visible in ps: prefer --{name}-file or ${env}).",
        )(func)

    return decorate


def resolve_secret(value: str | None, path: Path | None, env: str, what: str) -> Secret:
    """The secret from the option, else the file, else ``env``; empty is a ``ConfigError``."""
    if value is not None:
        return Secret(_non_empty(value, what, "given"), on_command_line=True)
    if path is not None:
        try:
            text = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
        return Secret(_non_empty(text, what, f"in {path}"))
    if env in os.environ:
        return Secret(_non_empty(os.environ[env], what, f"in ${env}"))
    return Secret(None)


def _non_empty(value: str, what: str, where: str) -> str:
    if not value.strip():
        raise ConfigError(
            f"the {what} {where} is empty; give a real one or leave it out (an empty "
            "secret never turns authentication off)"
        )
    return value


def read_pem(path: Path | None, what: str) -> str | None:
    """The text of a PEM file option, or None."""
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
