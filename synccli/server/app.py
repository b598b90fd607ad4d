"""``SyncServer``: start → serve → close, plus the relay and the pruner.

Startup opens the store, creates or migrates the schema and binds. ``close`` stops accepting,
closes every connection with 1001, waits a bounded time, cancels the rest and closes the
store; it is idempotent. Nothing committed is lost on any stop: it is in the database.

Two tasks share events between nodes (``synccli.bus``): the relay catches the hub up with
the database log (other processes' writes, gaps, epoch changes; its last poll is the health of
the database), and the bus, when one is configured, delivers other nodes' commits at once.
Readiness is probed by ``/readyz`` (``http``).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from synccli.bus import Relay, open_bus
from synccli.clock import utc_now
from synccli.errors import DatabaseUnavailable, InfrastructureError, StoreError
from synccli.protocol import node
from synccli.server.auth import Gate, authenticator_for, is_loopback, origin_policy
from synccli.server.bugs import NO_BUGS, Bugs, ServerPolicy
from synccli.server.config import ServerConfig
from synccli.server.connection import Connection
from synccli.server.db import DbRunner
from synccli.server.http import Router
from synccli.server.hub import Hub
from synccli.server.loop import loop_factory
from synccli.server.metrics import Metrics
from synccli.server.services import Services
from synccli.server.tls import server_context
from synccli.server.writes import perform_write, phantom_write
from synccli.signals import stop_on_signals
from synccli.store import Store, open_store, redact_url

log = logging.getLogger(__name__)


class SyncServer:
    """The sync server. Use ``async with`` or ``start``/``serve_forever``/``close``."""

    def __init__(self, config: ServerConfig, policy: ServerPolicy | None = None) -> None:
        """``policy`` defaults to the bugs ``config.inject_bugs`` names (none: ``NO_BUGS``)."""
        self.config = config
        if policy is None:
            policy = Bugs(config.inject_bugs, config.bug_seed) if config.inject_bugs else NO_BUGS
        self.policy = policy
        self.services: Services | None = None
        self._server: Server | None = None
        self._metrics_server: Server | None = None
        self.gate: Gate | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._closed = False

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with port 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.tls else "ws"
        return f"{scheme}://{self.config.host}:{self.port}/ws"

    @property
    def metrics_port(self) -> int | None:
        """The metrics listener's bound port (None without ``metrics_port``)."""
        if self._metrics_server is None:
            return None
        port: int = next(iter(self._metrics_server.sockets)).getsockname()[1]
        return port

    async def start(self) -> None:
        """Reach the bus, open the store, create or migrate the schema, bind the port."""
        config = self.config
        # Credentials and certificates first: a bad one is a usage error before anything opens.
        gate = self.gate = Gate(
            authenticator_for(
                config.token, config.jwt_secret, config.jwt_public_key, config.jwt_leeway_s
            ),
            origin_policy(config.allowed_origins, config.host),
        )
        tls = (
            None
            if config.tls_cert is None or config.tls_key is None
            else server_context(config.tls_cert, config.tls_key)
        )
        metrics = Metrics()
        # Then the bus: a node that cannot reach it refuses to start before touching the
        # database.
        bus = open_bus(
            config.bus_url,
            metrics,
            config.relay_poll_s,
            config.bus_safety_poll_s,
            config.node_name,
        )
        await bus.start()
        raw: Store = open_store(config.db_url)
        db = DbRunner(raw, timeout=config.db_timeout_s)
        try:
            await db.run(raw.init_schema)
        except StoreError:
            await db.close()
            await bus.close()
            raise
        policy = self.policy
        if policy.names:
            log.warning("INJECTED BUGS ENABLED: %s", ", ".join(sorted(policy.names)))
        store = policy.wrap_store(raw)
        db.store = store
        services = Services(config, store, db, Hub(config.tail_cache), metrics, bus, policy)
        services.write = policy.wrap_write(
            functools.partial(perform_write, services), functools.partial(phantom_write, services)
        )
        self.services = services
        where: dict[str, Any] = {"host": config.host, "port": config.port}
        if config.listen_fd is not None:
            where = {"sock": socket.socket(fileno=config.listen_fd)}
        try:
            self._server = await serve(
                self._handle,
                **where,
                process_request=Router(services, gate),
                process_response=_node_header(config.node_name),
                compression=None,
                max_size=config.max_frame_bytes,
                max_queue=64,
                ssl=tls,
                backlog=config.backlog,
            )
            if config.metrics_port is not None:
                self._metrics_server = await serve(
                    self._handle,
                    config.metrics_host,
                    config.metrics_port,
                    process_request=Router(services, gate, metrics_only=True),
                    ssl=tls,
                )
        except OSError as exc:
            if self._server is not None:
                self._server.close()
            await bus.close()
            await db.close()
            raise InfrastructureError(
                f"cannot listen on {config.host}:{config.port}"
                f"{'' if config.metrics_port is None else f' and {config.metrics_port}'}: "
                f"{exc.strerror or exc}; choose another port or stop the process using it"
            ) from None
        self._tasks = [
            asyncio.create_task(Relay(services).run()),
            asyncio.create_task(bus.run(services.heard, services.relay_wake.set)),
        ]
        if config.retention_hours is not None:
            self._tasks.append(asyncio.create_task(self._pruner()))
        log.info(
            "listening on %s (db %s, bus %s)",
            self.url,
            redact_url(config.db_url),
            redact_url(config.bus_url) if config.bus_url else "none",
        )
        self._log_security(gate)

    def _log_security(self, gate: Gate) -> None:
        """Say at start what protects the server, and warn about what does not."""
        config = self.config
        loopback = is_loopback(config.host)
        if not gate.auth.enabled and not loopback:
            log.warning(
                "NO AUTHENTICATION on %s, which other machines can reach: anyone on the "
                "network can read and change the board; set --jwt-secret or --token",
                config.host,
            )
        if not config.tls and not loopback:
            log.warning(
                "no TLS: tokens and patient names cross the network in clear text; set "
                "--tls-cert/--tls-key or terminate TLS in a proxy in front (docs/security.md)"
            )
        if gate.origins.check:
            log.info(
                "origin check on: the server's own origin%s",
                "".join(f", {o}" for o in sorted(gate.origins.allowed)),
            )
        else:
            log.info("origin check off: bound to loopback and no --allowed-origin given")
        if self._metrics_server is not None:
            log.info(
                "metrics and health details on http%s://%s:%d (no token)",
                "s" if config.tls else "",
                config.metrics_host,
                self.metrics_port,
            )

    async def serve_forever(self) -> None:
        """Wait until ``close`` is called (or a signal asks for it)."""
        await self._stop.wait()

    async def run(self, on_started: Callable[[SyncServer], None] | None = None) -> None:
        """Start, call ``on_started``, serve until SIGINT/SIGTERM, close. A second signal
        forces exit."""
        await self.start()
        if on_started is not None:
            on_started(self)
        with stop_on_signals(
            self._stop,
            on_stop=lambda: log.info("signal received: shutting down"),
            on_force=lambda: log.warning("second signal: exiting now"),
        ):
            try:
                await self.serve_forever()
            finally:
                await self.close()

    async def close(self) -> None:
        """Stop accepting, close connections with 1001, wait (bounded), close the store."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self._server is not None:
            self._server.close(close_connections=True)
            try:
                async with asyncio.timeout(self.config.shutdown_timeout_s):
                    await self._server.wait_closed()
            except TimeoutError:
                log.warning(
                    "connections still open after %.1fs; dropping them",
                    self.config.shutdown_timeout_s,
                )
        if self.services is not None:
            await self.services.bus.close()
            await self.services.db.close()
        log.info("server closed")

    async def __aenter__(self) -> SyncServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, ws: ServerConnection) -> None:
        services = self.services
        assert services is not None
        services.metrics.connections += 1
        services.metrics.inc("connections_total")
        assert self.gate is not None
        grant = self.gate.take(ws)
        try:
            await Connection(services, ws, grant).run()
        finally:
            services.metrics.connections -= 1

    async def prune(self) -> int:
        """One retention pass: delete events older than ``retention_hours`` except what a
        connected client's position still needs within the replay window (``Hub.holds``).
        Returns how many were deleted."""
        s, hours = self.services, self.config.retention_hours
        assert s is not None and hours is not None, "a started server with retention"
        holds = s.hub.holds(self.config.max_replay)
        return await s.db.run(s.store.prune, utc_now() - timedelta(hours=hours), holds)

    async def _pruner(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    log.info(
                        "pruned %d events older than %s h", pruned, self.config.retention_hours
                    )
            except DatabaseUnavailable as exc:
                log.warning("prune failed: %s", exc)
            await asyncio.sleep(self.config.prune_every_s)


#: Allocations between young-generation collections in a server process (default 700).
GC_THRESHOLD = 200_000


def run_server(
    config: ServerConfig, on_started: Callable[[SyncServer], None] | None = None
) -> None:
    """Run a server as this process's main job until a signal stops it.

    Fan-out allocates a little per delivery (ack records that live until the client acks,
    about 0.25 s) among many long-lived connection objects: the default thresholds make the
    collector walk them all several times a second, and at 1000 clients that costs more
    than the tracking itself. So collect far less often, and restore the thresholds for
    whoever called this in-process (tests do).
    """
    previous = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    try:
        with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
            runner.run(SyncServer(config).run(on_started))
    finally:
        gc.set_threshold(*previous)


def _node_header(
    name: str | None,
) -> Callable[[ServerConnection, Request, Response], None] | None:
    """websockets' ``process_response``: name this node on every WebSocket upgrade."""
    if name is None:
        return None

    def add(_connection: ServerConnection, _request: Request, response: Response) -> None:
        if response.status_code == 101:
            response.headers[node.HEADER] = name

    return add
