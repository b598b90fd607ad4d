"""The wall clock, read only at the edges (server, clients, harness); the protocol core and
the domain take time as an argument."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
