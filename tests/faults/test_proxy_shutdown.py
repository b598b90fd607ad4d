"""Closing the embedded proxy with many connections in every state (dialling upstream, just
accepted, proxying) ends every task it started: nothing is left for the garbage collector
to destroy, and asyncio logs nothing."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import types
from typing import Any, cast

import pytest

from synccli.faults.proxy import start_in_process
from synccli.faults.proxy.envelope import parse_new_toxic
from synccli.faults.proxy.link import Link
from synccli.faults.proxy.proxy import Proxy
from tests.conftest import seconds

CONNECTIONS = 300
#: The coroutines of a proxied connection's tasks.
_PROXY_TASKS = {"_run", "Link._read", "Link._write", "Proxy._accept"}


def _coro_name(task: asyncio.Task[Any]) -> str:
    """The qualified name of the coroutine ``task`` runs (every task here runs a native
    coroutine, which ``Task.get_coro``'s annotation does not say)."""
    return cast("types.CoroutineType[Any, Any, Any]", task.get_coro()).__qualname__


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
    # Nothing of the proxy may still be pending once stop returns: a process that closes
    # its loop right after would destroy it.
    left = [t for t in asyncio.all_tasks() if _coro_name(t) in _PROXY_TASKS]
    assert not [t for t in left if not t.done()], left
    for _, client in [(reader, writer), *clients]:
        client.transport.abort()
    # Let the loop run the aborted transports' callbacks, then collect what is unreachable.
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    return len(echoed)


@pytest.mark.parametrize("toxic", [None, "latency"])
def test_stopping_a_proxy_with_many_connections_leaves_no_pending_task(
    caplog: pytest.LogCaptureFixture, toxic: str | None
) -> None:
    async def scenario() -> int:
        upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        proxy = Proxy("p", "127.0.0.1:0", f"127.0.0.1:{port}", random.Random(1))
        if toxic is not None:
            # A toxic gives every link a stage task of its own, which must end too.
            body = json.dumps({"type": toxic, "attributes": {"latency": 1}}).encode()
            await proxy.add_toxic(parse_new_toxic(body, set()))
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


def test_a_toxic_added_while_the_link_is_cancelled_starts_no_stage() -> None:
    """``add`` waits for the old last stage to stop; a ``cancel`` in that moment (the
    connection closing) must not be followed by new stage tasks that nobody cancels."""

    async def scenario() -> list[asyncio.Task[None]]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            rng = random.Random(1)
            first = parse_new_toxic(b'{"type": "latency", "attributes": {"latency": 1}}', set())
            link = Link([first], rng, reader, writer, writer)
            link.start()
            second = parse_new_toxic(b'{"type": "latency", "name": "more"}', {first.name})
            adding = asyncio.create_task(link.add(second))
            await asyncio.sleep(0)  # add is now waiting for the old stage to stop
            link.cancel()
            await adding
            # A stage nobody cancelled would never end: bounded, so that fails, not hangs.
            await asyncio.wait_for(link.stopped(), seconds(5))
            return [t for t in asyncio.all_tasks() if _coro_name(t) == "_run"]
        finally:
            writer.transport.abort()
            server.close()
            await server.wait_closed()

    left = asyncio.run(scenario())
    assert not [t for t in left if not t.done()], left
