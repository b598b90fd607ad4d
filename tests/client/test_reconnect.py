"""Reconnects: refused attempts probe at the probe delay, and a healed server is reached
within it however long the outage lasted; answers from a server grow the backoff."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from synccli.client.simulated import SimulatedClient, is_refusal
from tests.client.builders import RecordingSink, client_config
from tests.client.test_scripted import run
from tests.conftest import seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def client(url: str, **kw: Any) -> AsyncIterator[RecordingSink]:
    sink = RecordingSink()
    simulated = SimulatedClient(client_config("c001", url, seed=4, **kw), sink)
    simulated.start()
    try:
        yield sink
    finally:
        await simulated.close()


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


def test_after_a_long_refusal_the_healed_server_is_reached_within_the_probe() -> None:
    port = closed_port()
    probe = seconds(0.2)

    async def body() -> None:
        async with client(f"ws://127.0.0.1:{port}/ws", probe=probe) as sink:
            # Twelve refusals: the old backoff would be at its 5 s cap by now.
            await sink.wait_for(lambda s: len(s.of("connect_failed")) >= 12, seconds(10))
            loop = asyncio.get_running_loop()
            async with serve(hold, "127.0.0.1", port):
                healed = loop.time()
                await sink.wait_for(lambda s: bool(s.of("connect")), seconds(5))
                # The attempt in flight, then one probe delay, plus scheduling slack.
                assert loop.time() - healed < probe + seconds(0.3)

    run(body)


def test_http_errors_grow_the_backoff_instead_of_probing() -> None:
    def unavailable(ws: ServerConnection, request: object) -> Response:
        return Response(503, "Service Unavailable", Headers(), b"")

    async def body() -> None:
        async with serve(hold, "127.0.0.1", 0, process_request=unavailable) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url = f"ws://127.0.0.1:{port}/ws"
            # A probe of 1 ms would make hundreds of attempts; the backoff, from 50 ms
            # doubling, makes a handful in the same time.
            async with client(url, probe=0.001, backoff_initial=0.05) as sink:
                await sink.wait_for(lambda s: len(s.of("connect_failed")) >= 3, seconds(5))
                await asyncio.sleep(seconds(1.0))
                failed = sink.of("connect_failed")
            assert failed[0]["error"] == "HTTP 503"
            assert len(failed) < 40

    run(body)


@pytest.mark.parametrize(
    ("exc", "elapsed", "refused"),
    [
        (ConnectionRefusedError(111, "refused"), 0.001, True),
        # However late the loop saw it: the kernel refused, no server was involved.
        (ConnectionRefusedError(111, "refused"), 2.0, True),
        (ConnectionResetError(104, "reset"), 0.001, True),
        (InvalidMessage("did not receive a valid HTTP response"), 0.001, True),
        # Reset after 100 ms: a server may have done the handshake.
        (InvalidMessage("did not receive a valid HTTP response"), 0.1, False),
        (ConnectionResetError(104, "reset"), 0.1, False),
        (TimeoutError(), 0.001, False),
        (InvalidStatus(Response(503, "Service Unavailable", Headers(), b"")), 0.001, False),
    ],
)
def test_what_counts_as_a_refusal(exc: BaseException, elapsed: float, refused: bool) -> None:
    assert is_refusal(exc, elapsed) is refused
