"""``timeout``: drop all data; close the link after ``timeout`` ms without data (0 = never)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Stub, Toxic, register


@register
@dataclass(frozen=True)
class TimeoutToxic(Toxic):
    """An idle timeout that swallows everything it sees."""

    TYPE = "timeout"
    GO_NAME = "TimeoutToxic"
    GO_TYPES = {"timeout": "int64"}

    timeout: int = 0

    async def pipe(self, stub: Stub) -> None:
        """Discard chunks; close when idle for ``timeout`` ms or when the source closes."""
        limit = self.timeout / 1000 if self.timeout > 0 else None
        while True:
            try:
                async with asyncio.timeout(limit):
                    chunk = await stub.get()
            except TimeoutError:
                break
            if chunk is None:
                break
        stub.close()

    def cleanup(self, stub: Stub) -> None:
        """Removing a timeout toxic closes the connections it was attached to (as the real one)."""
        stub.close()
