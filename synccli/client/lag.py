"""The harness's own event-loop lag: if the clients' loop is late, latencies it measures
are wrong, so the run reports the lag (p99 target < 50 ms) next to its verdict."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

INTERVAL_S = 0.05


class LagMonitor:
    """Sleeps ``INTERVAL_S`` in a loop and records how late each wake-up is."""

    def __init__(self, flush: Callable[[], None] | None = None) -> None:
        self.samples: list[float] = []
        self._flush = flush
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(INTERVAL_S)
            self.samples.append(max(0.0, time.monotonic() - before - INTERVAL_S))
            # The same periodic wake-up keeps an idle history from holding records back.
            if self._flush is not None:
                self._flush()

    def p99_ms(self) -> float:
        return _percentile(self.samples, 0.99) * 1000

    def max_ms(self) -> float:
        return max(self.samples, default=0.0) * 1000


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
