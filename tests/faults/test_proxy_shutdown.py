"""Closing the embedded proxy with many connections in every state (dialling upstream, just
accepted, proxying) ends every task it started: nothing is left for the garbage collector
to destroy, and asyncio logs nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import random

import pytest

from synccli.faults.proxy import start_in_process
from synccli.faults.proxy.proxy import Proxy
from tests.conftest import seconds

CONNECTIONS = 300


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _open_many_then_stop(proxy: Proxy, host: str, port: int, wait: int) -> int:
    """Echo through one client, open ``CONNECTIONS`` more at once and stop the proxy ``wait``
    loop turns later, while they are still being accepted; returns the echoed bytes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"ping")
    async with asyncio.timeout(seconds(5)):
        echoed = await reader.readexactly(4)
    clients = await asyncio.gather(
        *(asyncio.open_connection(host, port) for _ in range(CONNECTIONS))
    )
    for _ in range(wait):
        await asyncio.sleep(0)
    await proxy.stop()
    for _, client in [(reader, writer), *clients]:
        client.transport.abort()
    # Let the loop run the aborted transports' callbacks, then collect what is unreachable.
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    return len(echoed)


def test_stopping_a_proxy_with_many_connections_leaves_no_pending_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> int:
        upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        proxy = Proxy("p", "127.0.0.1:0", f"127.0.0.1:{port}", random.Random(1))
        await proxy.start()  # binds a free port; each round below listens on it again
        await proxy.stop()
        host, listen_port = proxy.listen.rsplit(":", 1)
        try:
            echoed = 0
            for wait in range(4):
                await proxy.start()
                echoed += await _open_many_then_stop(proxy, host, int(listen_port), wait)
            return echoed
        finally:
            upstream.close()
            await upstream.wait_closed()

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        echoed = asyncio.run(scenario())
        gc.collect()
    assert echoed == 4 * 4
    logged = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not [m for m in logged if "destroyed" in m or "Exception in callback" in m], logged


def test_the_proxy_process_starts_serves_its_api_and_stops_by_its_pid() -> None:
    import urllib.request

    handle = start_in_process("127.0.0.1", 0, seed=3)
    try:
        with urllib.request.urlopen(handle.url + "/version", timeout=seconds(10)) as answer:
            assert b"2.12" in answer.read()
        assert handle.pid != 0 and handle.process.is_alive()
    finally:
        handle.stop()
    assert handle.process.exitcode == 0
    handle.stop()  # idempotent
