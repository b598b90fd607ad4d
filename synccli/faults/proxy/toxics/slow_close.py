"""``slow_close``: pass data through, but delay the close by ``delay`` ms."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Stub, Toxic, register


@register
@dataclass(frozen=True)
class SlowCloseToxic(Toxic):
    """The destination sees EOF ``delay`` ms after the source closed."""

    TYPE = "slow_close"
    GO_NAME = "SlowCloseToxic"
    GO_TYPES = {"delay": "int64"}

    delay: int = 0

    async def pipe(self, stub: Stub) -> None:
        """Forward chunks; on the end marker, wait, then close."""
        while (chunk := await stub.get()) is not None:
            stub.send(chunk)
        try:
            await asyncio.sleep(max(0.0, self.delay / 1000))
        except asyncio.CancelledError:
            # Interrupted (toxic updated or removed): the close is still owed downstream.
            stub.input.unget(None)
            raise
        stub.close()
