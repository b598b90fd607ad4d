"""The registry of bugs that can be injected on purpose, to prove the checker can fail.

Every bug name is defined here once, with the side it runs on and what it does; the
server's and the client's injection policies, the CLI's choices and every validation read
this table. ``duplicate-sends`` and ``reorder-sends`` are legal server behaviours that a
correct client must absorb; the others are real bugs the gate must catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from synccli.errors import ConfigError

Side = Literal["server", "client"]


@dataclass(frozen=True)
class Bug:
    """One injectable bug: its name, where it runs, and one sentence on what it does."""

    name: str
    side: Side
    summary: str


BUGS: dict[str, Bug] = {
    bug.name: bug
    for bug in (
        Bug("skip-events", "server", "every 7th sequence number of a date is never sent"),
        Bug(
            "broadcast-before-commit",
            "server",
            "every 5th write is broadcast, then rolled back (a phantom)",
        ),
        Bug("stale-epoch", "server", "a date's log is reset after its 20th write"),
        Bug("duplicate-sends", "server", "live events are sent twice (legal)"),
        Bug("reorder-sends", "server", "live events are shuffled in windows of 3 (legal)"),
        Bug("no-dedupe", "client", "a duplicate event is applied again"),
        Bug("no-reorder-buffer", "client", "events are applied in arrival order"),
        Bug("ignore-resync", "client", "an epoch change is ignored"),
    )
}

SERVER_BUGS = frozenset(name for name, bug in BUGS.items() if bug.side == "server")
CLIENT_BUGS = frozenset(name for name, bug in BUGS.items() if bug.side == "client")


def check_bugs(names: tuple[str, ...] | frozenset[str], side: Side | None = None) -> None:
    """Raise ConfigError naming the first unknown bug (or one of the wrong side)."""
    valid = sorted(name for name, bug in BUGS.items() if side is None or bug.side == side)
    for name in names:
        if name not in valid:
            where = f"{side} " if side else ""
            raise ConfigError(f"unknown {where}bug {name!r}; valid: {', '.join(valid)}")


def split_bugs(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split bug names into (server bugs, client bugs); an unknown name is a ConfigError."""
    check_bugs(names)
    server = tuple(name for name in names if BUGS[name].side == "server")
    client = tuple(name for name in names if BUGS[name].side == "client")
    return server, client
