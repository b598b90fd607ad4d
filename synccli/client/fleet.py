"""A fleet of simulated clients: run, stop writing, drain, record the final states.

``run_fleet`` runs ``clients`` ``SimulatedClient``s in this asyncio process, or split over
``workers`` processes (``synccli.client.workers``) when one event loop cannot keep up
(1000 clients on two cores). The phases:

1. run: every client subscribes to every date; the first ``writers`` clients write at
   ``rate / writers`` writes per second each, until ``duration_s`` passes or ``stop`` is set;
2. drain: writers stop; until ``drain_timeout_s`` passes, the heads (from the database via
   ``target_heads``, else the furthest position any client reached) are polled and passed to
   every client as a heartbeat would, until every client has applied up to them;
3. finish: each client records its ``final`` state per date and closes (1000).

Client ``i`` connects to ``urls[i % len(urls)]`` and draws from ``random.Random`` seeded
with ``client_seed(seed, i)``; the seeds are recorded (``client`` records and the result).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from synccli.client.local import (
    LIVE,
    Counters,
    FleetConfig,
    FleetResult,
    HeadsSource,
    LocalFleet,
    drain,
    wait_run_phase,
)
from synccli.client.workers import run_workers
from synccli.history import HistoryWriter

__all__ = ["FleetConfig", "FleetResult", "live_counters", "run_fleet"]


def live_counters() -> Counters:
    """Counters of every fleet running in this process, for a progress line."""
    return LIVE.total()


async def run_fleet(
    config: FleetConfig,
    history: HistoryWriter,
    stop: asyncio.Event,
    progress: Callable[[Counters], None] | None = None,
    target_heads: HeadsSource | None = None,
    before_drain: Callable[[], Awaitable[None]] | None = None,
    started: Callable[[], None] | None = None,
) -> FleetResult:
    """Run the fleet through its three phases, recording into ``history``.

    ``progress``, if given, is called with the live counters about every 0.5 s.
    ``before_drain``, if given, is awaited once the writers have stopped and before the
    drain starts: the place to heal faults so that the clients can catch up.
    ``started``, if given, is called once every client has been started (with workers: once
    every worker process is up), when the run phase begins: the clock of a fault schedule."""
    if config.workers > 1:
        return await run_workers(
            config, history, stop, progress, target_heads, before_drain, started
        )
    fleet = LocalFleet(config, list(range(config.clients)), history)
    LIVE.add(fleet.counters)
    reporter = asyncio.create_task(_report(fleet.counters, progress))
    finished = False
    try:
        fleet.start()
        if started is not None:
            started()
        await wait_run_phase(config, stop)
        await fleet.stop_writing()
        if before_drain is not None:
            await before_drain()
        drain_started = time.monotonic()
        drained = await drain(config, target_heads, fleet.known_heads, fleet.nudge)
        drain_s = time.monotonic() - drain_started
        await fleet.finish()
        finished = True
    finally:
        reporter.cancel()
        LIVE.remove(fleet.counters)
        if not finished:
            # Cancelled or failed: still record what every client holds and close them.
            await fleet.finish()
    return FleetResult(
        drained=drained,
        clients=config.clients,
        workers=1,
        seeds=fleet.seeds(),
        counters=fleet.counters(),
        loop_lag_p99_ms=fleet.lag.p99_ms(),
        loop_lag_max_ms=fleet.lag.max_ms(),
        drain_s=round(drain_s, 3),
    )


async def _report(
    source: Callable[[], Counters], progress: Callable[[Counters], None] | None
) -> None:
    if progress is None:
        return
    while True:
        progress(source())
        await asyncio.sleep(0.5)
