"""The server's event loop: asyncio's (the default), or uvloop (the ``fast`` extra).

uvloop's transports write and read in C, and at fan-out the loop and its socket writes are
most of a delivery's cost; ``benchmarks/fanout.py`` runs both (``full``, ``full-uvloop``)
in the same run. Nothing in the server depends on which loop runs it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

from synccli.errors import ConfigError

#: ``--event-loop`` values: ``auto`` takes uvloop when it is importable.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def check_event_loop(choice: str) -> None:
    """Refuse an unknown loop, or uvloop where it is not installed."""
    if choice not in EVENT_LOOPS:
        raise ConfigError(
            f"the event loop must be one of {', '.join(EVENT_LOOPS)} (got {choice!r})"
        )
    if choice == "uvloop" and not uvloop_available():
        raise ConfigError(
            "uvloop is not installed: pip install 'synccli[fast]', or --event-loop asyncio"
        )


def resolve(choice: str) -> str:
    """The loop ``choice`` runs on: ``asyncio`` or ``uvloop``."""
    if choice == "auto":
        return "uvloop" if uvloop_available() else "asyncio"
    return choice


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner`` makes its loop with (None: asyncio's default)."""
    if resolve(choice) != "uvloop":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
