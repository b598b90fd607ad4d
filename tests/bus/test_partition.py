"""A node whose Redis link is cut (an embedded proxy between it and Redis) keeps serving,
says degraded, and catches up; the other nodes get its writes from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from synccli.faults.proxy import start_in_thread
from synccli.faults.toxiproxy import ToxiproxyFaults
from tests.bus.helpers import (
    collectors,
    head,
    health,
    nodes,
    redis,
    require_redis,
    toggle,
    wait_status,
)
from tests.server.helpers import ServerProcess, aio


@asynccontextmanager
async def link(upstream: str) -> AsyncIterator[tuple[ToxiproxyFaults, str]]:
    """An embedded proxy to ``upstream``; yields its driver and its redis:// URL."""
    handle = start_in_thread("127.0.0.1", 0, seed=1)
    faults = ToxiproxyFaults(handle.url, prefix="bus")
    try:
        (listen,) = await asyncio.to_thread(faults.create_proxies, upstream, 1)
        yield faults, f"redis://{listen}/0"
    finally:
        await asyncio.to_thread(faults.destroy)
        handle.stop()


async def all_writes(servers: list[ServerProcess], count: int) -> None:
    await asyncio.gather(*(toggle(n, i + 1, count) for i, n in enumerate(servers)))


@aio
async def test_a_node_cut_off_from_redis_keeps_serving_and_catches_up(tmp_path: Path) -> None:
    require_redis()
    async with redis(tmp_path) as bus, link(f"127.0.0.1:{bus.port}") as (faults, via_proxy):
        with nodes(tmp_path, [bus.url, bus.url, via_proxy]) as servers:
            cut = servers[2]
            async with collectors(servers) as seen:
                await all_writes(servers, 2)
                # The link refuses and drops connections.
                await asyncio.to_thread(faults.set_enabled, [0], False)
                await wait_status(cut, "degraded")
                assert (await health(cut))["bus"]["up"] is False
                assert (await health(servers[0]))["status"] == "ok"
                await all_writes(servers, 4)
                await toggle(cut, 3, 2)  # the last writes come from the cut-off node
                for collector in seen:
                    await collector.wait_for(head(tmp_path))
                await asyncio.to_thread(faults.set_enabled, [0], True)
                await wait_status(cut, "ok")
                # A silent link: bytes are held, nothing is reset; the keepalive notices.
                await asyncio.to_thread(
                    faults.add_toxic, [0], "timeout", "downstream", {"timeout": 0}
                )
                await wait_status(cut, "degraded")
                await all_writes(servers, 2)
                await asyncio.to_thread(faults.heal)
                await wait_status(cut, "ok")
                await all_writes(servers, 2)
                final = head(tmp_path)
                assert final == 6 + 12 + 2 + 6 + 6
                for collector in seen:
                    await collector.wait_for(final)
                    collector.check(final)
