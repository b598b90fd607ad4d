"""With the bus up, an idle cluster reads nothing from the database; a node that falls
silent (SIGSTOP) is polled for until it is heard again; a channel reset on one node reaches
the subscribers of the others through the beat, not a poll."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from websockets.asyncio.client import connect

from tests.bus.helpers import (
    collectors,
    head,
    http_get,
    metrics,
    nodes,
    redis,
    require_redis,
    toggle,
)
from tests.conftest import seconds
from tests.server.helpers import DATE, ServerProcess, aio

#: The poll while a peer is silent: short, so that a window of a second sees several.
FAST_SAFETY_POLL = ("--bus-safety-poll", "0.1")


async def gauge(servers: list[ServerProcess], name: str) -> list[float]:
    return [(await metrics(n))[name] for n in servers]


async def queries(servers: list[ServerProcess]) -> list[float]:
    return await gauge(servers, "synccli_relay_db_queries_total")


async def until(servers: list[ServerProcess], name: str, value: float) -> None:
    """Wait until metric ``name`` reads ``value`` on every one of ``servers`` (the metrics
    endpoint pushes nothing)."""
    async with asyncio.timeout(seconds(10)):
        while any(found != value for found in await gauge(servers, name)):
            await asyncio.sleep(0.05)


@aio
async def test_an_idle_cluster_reads_nothing_and_polls_only_for_a_silent_peer(
    tmp_path: Path,
) -> None:
    require_redis()
    async with redis(tmp_path) as bus:
        with nodes(tmp_path, [bus.url] * 3, *FAST_SAFETY_POLL) as servers:
            watchers, paused = servers[:2], servers[2]
            async with collectors(servers) as seen:
                await toggle(servers[0], 1, 2)
                for collector in seen:
                    await collector.wait_for(head(tmp_path))
                await until(servers, "synccli_bus_peers", 2)
                # Idle, subscribers on every node: a window with no read at all (the old
                # constant poll read once per period, ten times in this window).
                before = await queries(servers)
                await asyncio.sleep(seconds(1))
                assert await queries(servers) == before

                os.kill(paused.proc.pid, signal.SIGSTOP)
                try:
                    await until(watchers, "synccli_bus_peers_silent", 1)
                    polled = await queries(watchers)
                    await asyncio.sleep(seconds(1))
                    assert all(a > b for a, b in zip(await queries(watchers), polled, strict=True))
                finally:
                    os.kill(paused.proc.pid, signal.SIGCONT)
                await until(servers, "synccli_bus_peers_silent", 0)
                # Heard again (one pass each), then quiet again.
                await asyncio.sleep(seconds(0.5))
                before = await queries(servers)
                await asyncio.sleep(seconds(1))
                assert await queries(servers) == before
                # And the cluster still delivers.
                await toggle(paused, 2, 2)
                for collector in seen:
                    await collector.wait_for(head(tmp_path))
                    collector.check(head(tmp_path))


@aio
async def test_a_channel_reset_on_one_node_reaches_the_others_without_a_poll(
    tmp_path: Path,
) -> None:
    require_redis()
    async with redis(tmp_path) as bus:
        options = ("--bus-safety-poll", "600", "--fault-hooks")
        with nodes(tmp_path, [bus.url] * 2, *options) as (resetter, other):
            await toggle(resetter, 1, 2)
            async with connect(other.url, compression=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "date": DATE}))
                async with asyncio.timeout(seconds(10)):
                    while json.loads(await ws.recv())["type"] != "subscribed":
                        pass
                reset = f"/_admin/reset-channel?date={DATE}"
                answer = json.loads(await asyncio.to_thread(http_get, resetter, reset))
                assert answer["date"] == DATE
                async with asyncio.timeout(seconds(10)):
                    while True:
                        message = json.loads(await ws.recv())
                        if message["type"] == "resync_required":
                            break
                assert message["date"] == DATE
