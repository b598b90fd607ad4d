"""``bandwidth``: limit throughput to ``rate`` KB/s (KB = 1000 bytes), with carried-over debt."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Chunk, Stub, Toxic, register

# A chunk bigger than 100 ms worth of data is sent in 100 ms pieces, as the real one does.
PIECE_SECONDS = 0.1


@register
@dataclass(frozen=True)
class BandwidthToxic(Toxic):
    """Each chunk costs len/rate ms; the time debt carries over between chunks."""

    TYPE = "bandwidth"
    GO_NAME = "BandwidthToxic"
    GO_TYPES = {"rate": "int64"}

    rate: int = 0

    def problem(self) -> str | None:
        """A negative rate makes the real Toxiproxy panic as soon as data flows."""
        if self.rate < 0:
            return "rate must be 0 or more (a negative bandwidth rate crashes Toxiproxy)"
        return None

    async def pipe(self, stub: Stub) -> None:
        """Forward chunks no faster than the rate; rate 0 holds all data (as the real one)."""
        loop = asyncio.get_running_loop()
        debt = 0.0
        piece = self.rate * 100
        while (chunk := await stub.get()) is not None:
            data = chunk.data
            if self.rate == 0:
                with stub.holding(chunk):
                    await asyncio.Future()
            debt += len(data) / (self.rate * 1000)
            while len(data) > piece:
                with stub.holding(Chunk(data, chunk.received)):
                    await asyncio.sleep(PIECE_SECONDS)
                stub.send(Chunk(data[:piece], chunk.received))
                data = data[piece:]
                debt -= PIECE_SECONDS
            start = loop.time()
            with stub.holding(Chunk(data, chunk.received)):
                await asyncio.sleep(max(0.0, debt))
            # Timers overshoot; subtracting the real sleep lets later chunks catch up.
            debt -= loop.time() - start
            stub.send(Chunk(data, chunk.received))
        stub.close()
