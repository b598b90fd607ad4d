"""``latency``: hold each chunk until its receive time + latency ± jitter (ms)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Chunk, Stub, Toxic, register


@register
@dataclass(frozen=True)
class LatencyToxic(Toxic):
    """Delay every chunk; the jitter is drawn per chunk from [-jitter, +jitter)."""

    TYPE = "latency"
    GO_NAME = "LatencyToxic"
    GO_TYPES = {"latency": "int64", "jitter": "int64"}

    latency: int = 0
    jitter: int = 0

    async def pipe(self, stub: Stub) -> None:
        """Forward chunks in order, each no earlier than its due time."""
        loop = asyncio.get_running_loop()
        while (chunk := await stub.get()) is not None:
            delay = self.latency
            if self.jitter > 0:
                delay += stub.rng.randrange(-self.jitter, self.jitter)
            # Measured from the receive time, so back-to-back chunks do not pile up delay;
            # the stamp moves to the due time so a second latency toxic adds its own.
            due = chunk.received + delay / 1000
            with stub.holding(chunk):
                await asyncio.sleep(max(0.0, due - loop.time()))
            stub.send(Chunk(chunk.data, due))
        stub.close()
