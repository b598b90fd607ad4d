"""Builders for events, rows and server messages used by the client tests (core and I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from synccli.domain.values import Event, Row

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


def kinds(records: list[dict[str, object]]) -> list[object]:
    return [r["k"] for r in records]


def applied(records: list[dict[str, object]]) -> list[object]:
    return [r["seq"] for r in records if r["k"] == "apply"]


class RecordingSink:
    """An in-memory history that tests can wait on (no sleeps)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def record_dict(self, client_id: str | None, record: dict[str, Any]) -> None:
        self.records.append({"c": client_id, **record})
        self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["k"] == kind]

    async def wait_for(self, predicate: Callable[[RecordingSink], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every new record."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
