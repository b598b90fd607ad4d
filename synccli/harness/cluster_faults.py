"""A cluster's faults: ``node_kill``, ``node_pause``, ``bus_kill``, ``bus_partition``.

Each apply returns its heal. A bus fault waits (bounded) until the nodes say it acted
(``/healthz`` degraded) and its heal until they say they recovered by themselves: the count
of degraded nodes is the fault's evidence, and a bus that does not come back is a failed
heal, not a silent pass.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from synccli.errors import FaultError
from synccli.harness.cluster import Cluster
from synccli.harness.scenario import FaultSpec
from synccli.history import Record, ServerLifecycle


class Recorder(Protocol):
    def write(self, client_id: str | None, record: Record) -> None: ...


#: How long the nodes get to notice a bus fault, and to recover from it.
NOTICE_S = 10.0

Heal = Callable[[], Awaitable[dict[str, int] | None]]


def pick_node(spec: FaultSpec, cluster: Cluster, seed: int, index: int) -> int:
    """The index of the fault's ``node`` (counted from 1), or a seeded choice when it is 0."""
    node = int(spec.attrs.get("node", 0))
    if node > len(cluster.nodes):
        raise FaultError(f"node {node} does not exist: the cluster has {len(cluster.nodes)}")
    if node == 0:
        return random.Random(f"{seed}:node:{index}").randrange(len(cluster.nodes))
    return node - 1


async def apply(spec: FaultSpec, cluster: Any, seed: int, index: int, history: Recorder) -> Heal:
    """Apply a cluster fault; returns its heal."""
    if not isinstance(cluster, Cluster):
        raise FaultError(f"fault {spec.kind!r} needs a cluster: run with --nodes 2 or more")
    if spec.kind == "bus_kill":
        return await _bus_kill(cluster)
    node = pick_node(spec, cluster, seed, index)
    if spec.kind == "node_kill":
        return await _node_kill(cluster, node, history)
    if spec.kind == "node_pause":
        return await _node_pause(cluster, node, history)
    return await _bus_partition(cluster, node, str(spec.attrs.get("mode", "down")))


async def _node_kill(cluster: Cluster, node: int, history: Recorder) -> Heal:
    server = cluster.node(node)
    pid = server.pid
    await asyncio.to_thread(server.kill)
    history.write(None, ServerLifecycle("kill", pid, node=node))

    async def restart() -> None:
        await server.start()
        history.write(None, ServerLifecycle("restart", server.pid, node=node))

    return restart


async def _node_pause(cluster: Cluster, node: int, history: Recorder) -> Heal:
    server = cluster.node(node)
    server.pause(True)
    history.write(None, ServerLifecycle("pause", server.pid, node=node))

    async def resume() -> None:
        server.pause(False)
        history.write(None, ServerLifecycle("resume", server.pid, node=node))

    return resume


async def _bus_kill(cluster: Cluster) -> Heal:
    await asyncio.to_thread(cluster.redis.kill)
    degraded = await _wait_bus(cluster, range(len(cluster.nodes)), up=False)

    async def restart() -> dict[str, int]:
        await cluster.redis.start()
        await _wait_bus(cluster, range(len(cluster.nodes)), up=True)
        return {"nodes_degraded": degraded}

    return restart


async def _bus_partition(cluster: Cluster, node: int, mode: str) -> Heal:
    links = cluster.links
    if links is None:
        raise FaultError("bus_partition needs the nodes' bus links (scheduled before start)")
    if mode == "down":
        await asyncio.to_thread(links.set_enabled, [node], False)
    else:
        for stream in ("upstream", "downstream"):
            await asyncio.to_thread(links.add_toxic, [node], "timeout", stream, {"timeout": 0})
    degraded = await _wait_bus(cluster, [node], up=False)

    async def mend() -> dict[str, int]:
        await asyncio.to_thread(links.heal)
        await _wait_bus(cluster, [node], up=True)
        return {"nodes_degraded": degraded}

    return mend


async def _wait_bus(cluster: Cluster, nodes: Any, up: bool) -> int:
    """Wait until every node in ``nodes`` that answers reports its bus ``up`` (bounded);
    returns how many did. Not reaching it is a ``FaultError`` when waiting for recovery."""
    wanted = list(nodes)
    deadline = time.monotonic() + NOTICE_S
    while True:
        states = await asyncio.gather(*(asyncio.to_thread(cluster.node(i).health) for i in wanted))
        reached = sum(1 for s in states if s is not None and s.get("bus", {}).get("up") is up)
        answering = sum(1 for s in states if s is not None)
        if reached == answering or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    if up and reached < answering:
        raise FaultError(
            f"{answering - reached} node(s) did not reconnect to the bus within {NOTICE_S:.0f} s"
        )
    return reached
