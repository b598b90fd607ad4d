"""A proxy: a listener, its upstream, its toxics (one chain per stream) and its connections."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

from synccli.faults.proxy import address
from synccli.faults.proxy.envelope import DIRECTIONS, DOWNSTREAM, UPSTREAM, ApiError, ToxicEnvelope
from synccli.faults.proxy.link import Link
from synccli.faults.proxy.toxics import Toxic


class Connection:
    """One accepted client, its upstream socket and its two links."""

    def __init__(
        self,
        proxy: Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._writers = (client[1], upstream[1])
        self.links = {
            UPSTREAM: Link(proxy.chains[UPSTREAM], proxy.rng, client[0], client[1], upstream[1]),
            DOWNSTREAM: Link(
                proxy.chains[DOWNSTREAM], proxy.rng, upstream[0], upstream[1], client[1]
            ),
        }

    async def run(self) -> None:
        """Proxy until both directions have finished."""
        for link in self.links.values():
            link.start()
        for link in self.links.values():
            await link.done.wait()

    def cancel(self) -> None:
        """Stop the tasks of both links (stages may still hold data nobody will read)."""
        for link in self.links.values():
            link.cancel()

    async def stopped(self) -> None:
        """Wait for both links' tasks to end (after ``cancel``)."""
        await asyncio.gather(*(link.stopped() for link in self.links.values()))

    def abort(self) -> None:
        """Close both sockets and stop both links at once."""
        self.cancel()
        for writer in self._writers:
            writer.transport.abort()


class Proxy:
    """Everything the API knows about one proxy; toxic changes reach open connections."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.chains: dict[str, list[ToxicEnvelope]] = {UPSTREAM: [], DOWNSTREAM: []}
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        # Bumped by every stop, so a connection still dialling upstream learns it is stale.
        self._generation = 0
        self._dialling: set[asyncio.StreamWriter] = set()
        # The tasks serving accepted clients: asyncio's stream server forgets a task once its
        # socket is closed, so a stop must end them itself or they are destroyed pending.
        self._serving: set[asyncio.Task[None]] = set()

    def to_json(self) -> dict[str, Any]:
        """The proxy as the API shows it, toxics included."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},
            "toxics": self.toxics_json(),
        }

    def toxics_json(self) -> list[dict[str, Any]]:
        """Upstream toxics first, then downstream, each in creation order."""
        return [env.to_json() for direction in DIRECTIONS for env in self.chains[direction]]

    def find(self, name: str) -> ToxicEnvelope | None:
        """The toxic called ``name`` (names are unique across both streams)."""
        for direction in DIRECTIONS:
            for envelope in self.chains[direction]:
                if envelope.name == name:
                    return envelope
        return None

    async def start(self) -> None:
        """Listen (no-op if already enabled); ``ApiError`` 500 if the bind fails."""
        if self.enabled:
            return
        sock = address.bind(self.listen)
        # Go listens with the kernel's somaxconn; asyncio would set its own 100 again.
        self._server = await asyncio.start_server(self._accept, sock=sock, backlog=socket.SOMAXCONN)
        self.listen = address.bound_address(sock)
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every connection (the proxy is "down")."""
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._generation += 1
        for writer in list(self._dialling):
            writer.transport.abort()
        for connection in list(self._connections):
            connection.abort()
        self._connections.clear()
        serving = list(self._serving)
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Apply a PATCH: new addresses restart the proxy; ``enabled`` starts or stops it."""
        moved = await address.resolve(listen) != await address.resolve(self.listen)
        if moved or upstream != self.upstream:
            await self.stop()
            self.listen = listen
            self.upstream = upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled and self.enabled:
            await self.stop()

    async def add_toxic(self, envelope: ToxicEnvelope) -> None:
        """Append a toxic to its stream and to every open connection."""
        self.chains[envelope.direction].append(envelope)
        await asyncio.gather(*(c.links[envelope.direction].add(envelope) for c in self._live()))

    async def update_toxic(self, envelope: ToxicEnvelope, toxic: Toxic, toxicity: float) -> None:
        """Change a toxic's attributes/toxicity; its stage restarts on every open connection."""
        envelope.toxic = toxic
        envelope.toxicity = toxicity
        index = self.chains[envelope.direction].index(envelope)
        await asyncio.gather(
            *(c.links[envelope.direction].update(index, envelope) for c in self._live())
        )

    async def remove_toxic(self, envelope: ToxicEnvelope) -> None:
        """Remove a toxic from its stream and from every open connection."""
        chain = self.chains[envelope.direction]
        index = chain.index(envelope)
        del chain[index]
        await asyncio.gather(*(c.links[envelope.direction].remove(index) for c in self._live()))

    async def remove_all_toxics(self) -> None:
        """Remove every toxic of both streams, one by one (as ``/reset`` does)."""
        for direction in DIRECTIONS:
            while self.chains[direction]:
                await self.remove_toxic(self.chains[direction][0])

    def _live(self) -> list[Connection]:
        return list(self._connections)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        try:
            await self._proxy(reader, writer)
        except asyncio.CancelledError:
            # Cancelled by ``stop`` (which awaits it): ending normally keeps asyncio's stream
            # callback from logging the cancellation as an error.
            writer.transport.abort()
        finally:
            self._serving.discard(task)

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        self._dialling.add(writer)
        try:
            host, port = address.split_host_port(self.upstream)
            upstream = await asyncio.open_connection(host, port)
        except (OSError, ApiError):
            # The client's connect already succeeded; it sees the close straight away.
            writer.transport.abort()
            return
        finally:
            self._dialling.discard(writer)
        if generation != self._generation:
            writer.transport.abort()
            upstream[1].transport.abort()
            return
        connection = Connection(self, (reader, writer), upstream)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            connection.cancel()
            await connection.stopped()
