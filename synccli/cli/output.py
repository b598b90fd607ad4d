"""Writing a command's output: notes on stderr, long output streamed to stdout (a closed
pipe, as when a pager quits, ends the output quietly)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def format_option(formats: Sequence[str], help_text: str) -> Callable[[F], F]:
    """``-f/--format`` among ``formats`` (the first is the default), passed as ``fmt``."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(formats),
        default=formats[0],
        show_default=True,
        help=help_text,
    )


def note(sentence: str) -> None:
    """A remark about the output, on stderr so the output itself stays clean."""
    click.echo(sentence, err=True)


def stream(blocks: Iterable[str]) -> None:
    """Write ``blocks`` to stdout as they come, flushing each."""
    out = sys.stdout
    try:
        for block in blocks:
            out.write(block)
            out.flush()
    except BrokenPipeError:
        # The reader went away (``| head``, a pager quit): stop, and keep Python from
        # complaining about the unflushable stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
