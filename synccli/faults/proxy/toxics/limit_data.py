"""``limit_data``: pass ``bytes`` bytes through this link, then close it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synccli.faults.proxy.toxics.base import Chunk, Stub, Toxic, register


@dataclass
class LimitState:
    """Bytes already sent on this link; survives updates of the toxic."""

    transmitted: int = 0


@register
@dataclass(frozen=True)
class LimitDataToxic(Toxic):
    """Truncate the chunk that crosses the limit, then close (FIN)."""

    TYPE = "limit_data"
    GO_NAME = "LimitDataToxic"
    GO_TYPES = {"bytes": "int64"}

    bytes: int = 0

    def problem(self) -> str | None:
        """A negative limit is meaningless; refuse it rather than guess."""
        if self.bytes < 0:
            return "bytes must be 0 or more"
        return None

    def new_state(self) -> Any:
        """A fresh byte counter for a new link."""
        return LimitState()

    async def pipe(self, stub: Stub) -> None:
        """Forward up to the limit, counting per link."""
        state: LimitState = stub.state
        while (chunk := await stub.get()) is not None:
            remaining = max(0, self.bytes - state.transmitted)
            data = chunk.data[:remaining]
            if data:
                stub.send(Chunk(data, chunk.received))
                state.transmitted += len(data)
            if self.bytes - state.transmitted <= 0:
                break
        stub.close()
