"""The fleet split over worker processes, for more clients than one event loop can serve.

Each worker (a ``spawn``ed process) runs a ``LocalFleet`` of every ``workers``-th client and
writes its own history part (same ``t0``: ``time.monotonic`` is system-wide), which the
parent merges into the run's history ordered by ``t`` at the end. The parent drives the
phases over a pipe; a worker reports its counters about every 0.25 s.

Parent -> worker: ``("stop_writing",)``, ``("heads", {date: (epoch, seq)} | None)``,
``("finish",)``. Worker -> parent: ``("started",)`` once its clients are started,
``("stats", counters)``, ``("stopped",)``, ``("caught_up", bool, known_heads)``,
``("done", seeds, lag_p99_ms, lag_max_ms)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from synccli.client.local import (
    LIVE,
    Counters,
    FleetConfig,
    FleetResult,
    HeadsSource,
    LocalFleet,
    drain,
    furthest,
    heads_from_wire,
    sum_counters,
    wait_run_phase,
)
from synccli.domain.values import Position
from synccli.errors import InfrastructureError
from synccli.history import HistoryWriter

STATS_EVERY_S = 0.25
JOIN_TIMEOUT_S = 10.0
GC_THRESHOLD = 200_000


def _wire_heads(heads: dict[str, Position]) -> dict[str, tuple[str, int]]:
    return {date: (p.epoch, p.seq) for date, p in heads.items()}


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, process: Any, conn: Connection, part: Path) -> None:
        self.process = process
        self.conn = conn
        self.part = part
        self.stats: Counters = {}
        self.replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        while True:
            try:
                message = await asyncio.to_thread(self.conn.recv)
            except (EOFError, OSError):
                await self.replies.put(("dead",))
                return
            if message[0] == "stats":
                self.stats = message[1]
            else:
                await self.replies.put(message)

    async def ask(self, *command: Any) -> tuple[Any, ...]:
        self.conn.send(command)
        return await self.reply()

    async def reply(self) -> tuple[Any, ...]:
        reply = await self.replies.get()
        if reply[0] == "dead":
            raise InfrastructureError(
                f"fleet worker process {self.process.pid} died (exit code {self.process.exitcode})"
            )
        return reply


async def run_workers(
    config: FleetConfig,
    history: HistoryWriter,
    stop: asyncio.Event,
    progress: Callable[[Counters], None] | None,
    target_heads: HeadsSource | None,
    before_drain: Callable[[], Awaitable[None]] | None = None,
    started: Callable[[], None] | None = None,
) -> FleetResult:
    """``run_fleet`` with ``config.workers`` processes, merging their parts into ``history``."""
    context = multiprocessing.get_context("spawn")
    workers: list[_Worker] = []
    for number in range(config.workers):
        indices = list(range(number, config.clients, config.workers))
        part = history.path.with_name(f"{history.path.name}.part{number}")
        parent_conn, child_conn = context.Pipe()
        process = context.Process(
            target=worker_main,
            args=(child_conn, config, indices, str(part), history.t0),
            name=f"synccli-fleet-{number}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        workers.append(_Worker(process, parent_conn, part))

    def counters() -> Counters:
        return sum_counters([w.stats for w in workers])

    LIVE.add(counters)
    for worker in workers:
        worker.reader = asyncio.create_task(worker.read())
    finished = False
    try:
        # Spawning and importing take seconds on a busy machine: the run phase (and the
        # fault schedule, through ``started``) begins once every worker's clients have.
        await asyncio.gather(*(w.reply() for w in workers))
        if started is not None:
            started()
        await wait_run_phase(config, stop)
        await asyncio.gather(*(w.ask("stop_writing") for w in workers))
        if before_drain is not None:
            await before_drain()
        known: dict[str, Position] = {}

        async def nudge(heads: dict[str, Position]) -> bool:
            nonlocal known
            replies = await asyncio.gather(*(w.ask("heads", _wire_heads(heads)) for w in workers))
            known = furthest([heads_from_wire(r[2]) for r in replies])
            # Without database heads the first round only learns where the clients are.
            return bool(heads) and all(r[1] for r in replies)

        drain_started = time.monotonic()
        drained = await drain(config, target_heads, lambda: known, nudge)
        drain_s = time.monotonic() - drain_started
        done = await asyncio.gather(*(w.ask("finish") for w in workers))
        finished = True
        if progress is not None:
            progress(counters())
    finally:
        LIVE.remove(counters)
        for worker in workers:
            if not finished:
                # Interrupted or failed: let each worker record its final state and exit.
                with contextlib.suppress(OSError):
                    worker.conn.send(("finish",))
            await asyncio.to_thread(worker.process.join, JOIN_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, JOIN_TIMEOUT_S)
            if worker.reader is not None:
                worker.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader
            worker.conn.close()
        history.merge_in([w.part for w in workers if w.part.exists()])
    seeds: dict[str, int] = {}
    for reply in done:
        seeds.update(reply[1])
    return FleetResult(
        drained=drained,
        clients=config.clients,
        workers=config.workers,
        seeds=dict(sorted(seeds.items())),
        counters=counters(),
        loop_lag_p99_ms=max(r[2] for r in done),
        loop_lag_max_ms=max(r[3] for r in done),
        drain_s=round(drain_s, 3),
    )


def worker_main(
    conn: Connection, config: FleetConfig, indices: list[int], part: str, t0: float
) -> None:
    """Entry point of a worker process."""
    # Hundreds of clients keep many long-lived objects; the default thresholds make the
    # collector walk them all several times a second, in pauses of 50-500 ms that show up
    # as loop lag. This process only runs the fleet, so it can collect far less often.
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    asyncio.run(_worker(conn, config, indices, Path(part), t0))


async def _worker(
    conn: Connection, config: FleetConfig, indices: list[int], part: Path, t0: float
) -> None:
    history = HistoryWriter(part, t0)
    fleet = LocalFleet(config, indices, history)
    fleet.start()
    conn.send(("started",))
    reporter = asyncio.create_task(_send_stats(conn, fleet))
    try:
        while True:
            try:
                command = await asyncio.to_thread(conn.recv)
            except (EOFError, OSError):
                # The parent is gone: record what we have and stop.
                await fleet.finish()
                return
            if command[0] == "stop_writing":
                await fleet.stop_writing()
                conn.send(("stopped",))
            elif command[0] == "heads":
                heads = heads_from_wire(command[1]) if command[1] else fleet.known_heads()
                caught_up = fleet.nudge(heads)
                conn.send(("caught_up", caught_up, _wire_heads(fleet.known_heads())))
            elif command[0] == "finish":
                await fleet.finish()
                reporter.cancel()
                history.close()
                conn.send(("stats", fleet.counters()))
                conn.send(("done", fleet.seeds(), fleet.lag.p99_ms(), fleet.lag.max_ms()))
                return
    finally:
        reporter.cancel()
        history.close()


async def _send_stats(conn: Connection, fleet: LocalFleet) -> None:
    while True:
        conn.send(("stats", fleet.counters()))
        await asyncio.sleep(STATS_EVERY_S)
