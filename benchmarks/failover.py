"""Time to recover after ``node_kill``, for ``nodes.py``: HAProxy in front of the nodes,
reconnecting clients (the harness's own ``SimulatedClient``) behind it, writes running.

Each kill SIGKILLs the non-writer node that serves the most clients (the writers write on
node 1 directly, so the write rate never stops), waits until that node's clients have
recovered (bounded), restarts the node and waits until HAProxy has it back up. A kill for
which no client sits on nodes 2…N within ``SETTLE_S`` (HAProxy put them all on node 1) is
not made, and not counted.

**Recovered**, for one client of the killed node: it applied an event committed *after* the
SIGKILL. A client's channel applies events gap-free in sequence order (the checker proves
it in every harness run), so at that moment it holds every event committed before the kill,
on a live node, in the live stream again. Its time to recover is from the SIGKILL to that
apply. This is the catch-up the report's ``recovery_ms`` measures (the time until the
events committed before a point have reached the client), taken from the kill rather than
from the heal: failover must not wait for the restart. With writes at R per second it
includes up to 1/R of waiting for the next event; a client that never applies one within
``RECOVERY_LIMIT_S`` counts as that limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from synccli.client.simulated import ClientConfig, SimulatedClient
from synccli.domain.values import parse_iso_ms
from synccli.harness.cluster import HaproxyProcess, node_name
from synccli.harness.server_process import ServerProcess, free_port
from synccli.history import records as rec
from synccli.protocol.session import SessionConfig

RECOVERY_LIMIT_S = 10.0
#: Until every client connected, or some client sits on a node that may be killed.
SETTLE_S = 10.0
#: After a restart, until HAProxy has the node up again (``rise 2`` at 100 ms).
UP_LIMIT_S = 5.0


@dataclass
class Sink:
    """What the clients record, reduced to what recovery needs: each client's node, and per
    client the times (wall clock) at which it applied events committed at which times."""

    node_of: dict[str, str | None] = field(default_factory=dict)
    #: client → [(received, committed)], appends only.
    applied: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def write(self, client_id: str | None, record: rec.Record) -> None:
        if client_id is None:
            return
        if isinstance(record, rec.Connect):
            self.node_of[client_id] = record.node
        elif isinstance(record, rec.Disconnect):
            self.node_of[client_id] = None
        elif isinstance(record, rec.Apply) and record.committed_at is not None:
            committed = parse_iso_ms(record.committed_at).timestamp()
            self.applied.setdefault(client_id, []).append((time.time(), committed))


def recovered_at(applied: Sequence[tuple[float, float]], killed_at: float) -> float | None:
    """When the first event committed after ``killed_at`` was applied, if one was."""
    return next((received for received, committed in applied if committed > killed_at), None)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _wait_up(node: ServerProcess) -> None:
    """Until the restarted ``node`` answers its health check, and HAProxy has had the time
    to mark it up (bounded)."""
    deadline = time.monotonic() + UP_LIMIT_S
    while time.monotonic() < deadline and await asyncio.to_thread(node.health) is None:
        await asyncio.sleep(0.05)
    # Two good checks 100 ms apart mark it up (``rise 2``, ``fastinter``).
    await asyncio.sleep(0.5)


@dataclass
class KillResult:
    """Recovery times in milliseconds (one per client of a killed node, every kill)."""

    recoveries_ms: list[float]
    kills: int
    never: int

    def row(self) -> list[object]:
        """``[kills, clients moved, never recovered, p50 ms, p99 ms]``."""
        counts = [self.kills, len(self.recoveries_ms), self.never]
        if not self.recoveries_ms:
            return [*counts, None, None]
        return [
            *counts,
            round(percentile(self.recoveries_ms, 0.5)),
            round(percentile(self.recoveries_ms, 0.99)),
        ]


async def measure_kills(
    nodes: list[ServerProcess],
    workdir: Path,
    date: str,
    clients: int,
    kills: int,
    down_s: float,
) -> KillResult:
    """Start HAProxy over ``nodes`` and ``clients`` clients through it, then kill
    ``kills`` times (writes must be running on ``nodes[0]``)."""
    balancer = HaproxyProcess(
        workdir / "haproxy.log", port=free_port(), config_path=workdir / "haproxy.cfg"
    )
    sink = Sink()
    fleet: list[SimulatedClient] = []
    recoveries: list[float] = []
    never = 0
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(balancer.stop)
        await balancer.start([(n.host, n.port) for n in nodes])
        for index in range(clients):
            config = ClientConfig(
                SessionConfig(f"k{index}", (date,)),
                f"ws://{balancer.address}/ws",
                seed=index,
            )
            client = SimulatedClient(config, sink)
            fleet.append(client)
            client.start()
        for client in fleet:
            stack.push_async_callback(client.close)
        await _until(lambda: all(c.connected for c in fleet), SETTLE_S)
        done = 0
        for _ in range(kills):
            # Some client on a node that may be killed (not node 1, the writers' own).
            await _until(lambda: bool(_spread(sink, len(nodes))), SETTLE_S)
            counts = _spread(sink, len(nodes))
            if not counts:
                continue
            done += 1
            victim_name = max(counts, key=lambda n: counts[n])
            victim = nodes[int(victim_name.removeprefix("node")) - 1]
            mine = [c for c, n in sink.node_of.items() if n == victim_name]
            killed_at = time.time()
            await asyncio.to_thread(victim.kill)
            deadline = time.monotonic() + RECOVERY_LIMIT_S
            pending = set(mine)
            while pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                for client_id in list(pending):
                    at = recovered_at(sink.applied.get(client_id, ()), killed_at)
                    if at is not None:
                        recoveries.append((at - killed_at) * 1000)
                        pending.discard(client_id)
            never += len(pending)
            recoveries.extend([RECOVERY_LIMIT_S * 1000] * len(pending))
            await asyncio.sleep(max(0.0, killed_at + down_s - time.time()))
            await victim.start()
            await _wait_up(victim)
            # Trim what is no longer needed: only applies after the next kill count.
            for applied in sink.applied.values():
                applied.clear()
    return KillResult(recoveries, done, never)


def _spread(sink: Sink, count: int) -> dict[str, int]:
    """How many clients each node but node 1 has, for those that have any."""
    killable = {node_name(i) for i in range(1, count)}
    spread: dict[str, int] = {}
    for name in sink.node_of.values():
        if name in killable:
            spread[name] = spread.get(name, 0) + 1
    return spread


async def _until(condition: Callable[[], bool], limit_s: float) -> None:
    """Until ``condition()`` holds, at most ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
