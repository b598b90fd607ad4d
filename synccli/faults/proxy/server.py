"""``EmbeddedToxiproxy``: the API server and its proxies on one asyncio loop, and a helper
that runs it on a background thread with a loop of its own."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from synccli.errors import InfrastructureError
from synccli.faults.proxy.api import ToxiproxyApi
from synccli.faults.proxy.httpserver import RequestIds, serve_connection


class EmbeddedToxiproxy:
    """A Toxiproxy-compatible server (API v2.12) in pure asyncio.

    ``seed`` fixes the dice (toxicity rolls, jitter, slicer splits) for reproducible runs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, *, seed: int | None = None):
        self.host = host
        self._requested_port = port
        self.seed = seed
        self.api = ToxiproxyApi(random.Random(seed))
        self._ids = RequestIds()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._closed = False

    @property
    def port(self) -> int:
        """The API's bound port (after ``start``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the API."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the API port; ``InfrastructureError`` if it cannot be bound."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self._requested_port, reuse_address=True
            )
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise InfrastructureError(
                f"cannot listen on {self.host}:{self._requested_port} ({reason}): "
                "choose another --port or stop the process using it"
            ) from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            await serve_connection(reader, writer, self.api.handle, self._ids)
        finally:
            self._clients.discard(writer)

    async def close(self) -> None:
        """Stop the API and close every proxy and connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends their handlers; cancelling the handler tasks instead makes
        # asyncio's stream callback log the CancelledError (Python 3.11).
        for writer in list(self._clients):
            writer.transport.abort()
        await self.api.close()
        if self._server is not None:
            await self._server.wait_closed()


@dataclass
class ProxyThread:
    """An ``EmbeddedToxiproxy`` running on its own thread and loop; ``stop()`` is idempotent."""

    proxy: EmbeddedToxiproxy
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        """The API's bound port."""
        return self.proxy.port

    @property
    def url(self) -> str:
        """``http://host:port`` of the API."""
        return self.proxy.url

    def stop(self, timeout: float = 10.0) -> None:
        """Close every proxy and connection, stop the loop and join the thread."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop)
            future.result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


def start_in_thread(
    host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None
) -> ProxyThread:
    """Start an ``EmbeddedToxiproxy`` on a daemon thread; returns once the API is bound.

    Raises ``InfrastructureError`` if the port cannot be bound.
    """
    proxy = EmbeddedToxiproxy(host, port, seed=seed)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(proxy.start())
        except BaseException as exc:  # handed to the starting thread
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            # As asyncio.run does: let cancelled link tasks finish instead of destroying them.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=f"synccli-proxy-{port}", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    return ProxyThread(proxy, loop, thread)


async def serve_forever(
    host: str, port: int, seed: int | None, stop: asyncio.Event, on_ready: Callable[[str], None]
) -> None:
    """Run until ``stop`` is set; ``on_ready(url)`` once the API is listening."""
    proxy = EmbeddedToxiproxy(host, port, seed=seed)
    await proxy.start()
    try:
        on_ready(proxy.url)
        await stop.wait()
    finally:
        await proxy.close()
