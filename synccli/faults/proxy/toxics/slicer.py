"""``slicer``: cut each chunk into pieces of about ``average_size`` bytes, ``delay`` µs apart."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Chunk, Stub, Toxic, register


@register
@dataclass(frozen=True)
class SlicerToxic(Toxic):
    """Same bytes, different segmentation and timing."""

    TYPE = "slicer"
    GO_NAME = "SlicerToxic"
    GO_TYPES = {"average_size": "int", "size_variation": "int", "delay": "int"}

    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def problem(self) -> str | None:
        """Sizes for which the real splitting recursion never ends or slices out of range."""
        if self.average_size < 1:
            return "average_size must be at least 1 (0 makes Toxiproxy's slicer recurse forever)"
        if self.size_variation < 0:
            return "size_variation must not be negative"
        if self.size_variation >= self.average_size:
            return "size_variation must be smaller than average_size"
        return None

    def cut(self, size: int, rng: random.Random) -> list[tuple[int, int]]:
        """(start, end) of each piece: recursive halving, each split shifted by ±variation."""
        pieces: list[tuple[int, int]] = []
        todo = [(0, size)]
        while todo:
            start, end = todo.pop()
            if (end - start) - self.average_size <= self.size_variation:
                pieces.append((start, end))
                continue
            mid = start + (end - start) // 2
            if self.size_variation > 0:
                mid += rng.randrange(2 * self.size_variation) - self.size_variation
            # Right half first on the stack, so pieces come out left to right.
            todo.append((mid, end))
            todo.append((start, mid))
        return pieces

    async def pipe(self, stub: Stub) -> None:
        """Forward each chunk as several pieces, sleeping ``delay`` µs after each."""
        pause = max(0.0, self.delay / 1e6)
        while (chunk := await stub.get()) is not None:
            data = chunk.data
            for start, end in self.cut(len(data), stub.rng):
                stub.send(Chunk(data[start:end], chunk.received))
                if end == len(data):
                    await asyncio.sleep(pause)
                    continue
                # Interrupted during the pause: the rest of the chunk is sent on at once.
                with stub.holding(Chunk(data[end:], chunk.received)):
                    await asyncio.sleep(pause)
        stub.close()
