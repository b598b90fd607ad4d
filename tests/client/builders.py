"""Builders for events, rows and server messages used by the client tests (core and I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from synccli.client.simulated import ClientConfig
from synccli.domain.values import Event, Row
from synccli.history import Apply, Record
from synccli.protocol.session import SessionConfig

DATE = "2026-11-26"
EPOCH = "e1"


def row(appointment_id: str, version: int = 1, state: str = "Scheduled", date: str = DATE) -> Row:
    return Row(appointment_id, date, f"patient {appointment_id}", state, None, version, "t")


def event(
    seq: int,
    appointment_id: str = "a1",
    version: int | None = None,
    state: str = "Present",
    epoch: str = EPOCH,
    action_id: str | None = None,
    date: str = DATE,
) -> Event:
    return Event(
        date,
        epoch,
        seq,
        row(appointment_id, version if version is not None else seq + 1, state, date),
        action_id,
        "2026-11-26T10:00:00.000Z",
    )


def kinds(records: list[Record]) -> list[str]:
    return [r.kind for r in records]


def applied(records: list[Record]) -> list[int]:
    return [r.seq for r in records if isinstance(r, Apply)]


def as_json(records: list[Record]) -> list[dict[str, Any]]:
    """The records in their on-disk form (docs/history.md)."""
    return [r.to_json() for r in records]


_SESSION_FIELDS = {f.name for f in dataclasses.fields(SessionConfig)}


def client_config(
    client_id: str, url: str, dates: tuple[str, ...] = (DATE,), **kw: Any
) -> ClientConfig:
    """A ``ClientConfig``; ``kw`` may mix session settings (``bugs``, ``gap_timeout``…)
    and connection settings (``seed``, ``token``…)."""
    session = {k: v for k, v in kw.items() if k in _SESSION_FIELDS}
    rest = {k: v for k, v in kw.items() if k not in _SESSION_FIELDS}
    return ClientConfig(SessionConfig(client_id, dates, **session), url, **rest)


class RecordingSink:
    """An in-memory history that tests can wait on (no sleeps)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def write(self, client_id: str | None, record: Record) -> None:
        self.records.append({"c": client_id, **record.to_json()})
        self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["k"] == kind]

    async def wait_for(self, predicate: Callable[[RecordingSink], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every new record."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
