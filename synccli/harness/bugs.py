"""Bugs the harness can inject on purpose, to prove that the checker catches them.

Server bugs are passed to the embedded server (``synccli serve --inject-bug``); client bugs
are applied to the simulated clients. ``duplicate-sends`` and ``reorder-sends`` are legal
server behaviours that a correct client must absorb.
"""

from __future__ import annotations

from synccli.errors import ConfigError

SERVER_BUGS = frozenset(
    {"skip-events", "broadcast-before-commit", "stale-epoch", "duplicate-sends", "reorder-sends"}
)
CLIENT_BUGS = frozenset({"no-dedupe", "no-reorder-buffer", "ignore-resync"})


def split_bugs(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split bug names into (server bugs, client bugs); an unknown name is a ConfigError."""
    unknown = [name for name in names if name not in SERVER_BUGS | CLIENT_BUGS]
    if unknown:
        valid = ", ".join(sorted(SERVER_BUGS | CLIENT_BUGS))
        raise ConfigError(f"unknown bug {unknown[0]!r}; valid: {valid}")
    server = tuple(name for name in names if name in SERVER_BUGS)
    client = tuple(name for name in names if name in CLIENT_BUGS)
    return server, client
