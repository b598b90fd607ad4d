"""Plain HTTP on the WebSocket port: routing, bearer-token auth, health, metrics, fault hooks.

``route`` is websockets' ``process_request``: it answers every non-WebSocket path itself and
returns None only for an authorised ``/ws`` handshake, and answers 503 to one beyond
``max_connections``.

Health: ``/livez`` says the process answers (always 200). ``/readyz`` runs the store's
write-path probe (a write transaction; for SQLite also a small synced file next to the
database, so a full disk shows) and answers 503 with the reason when it fails; the result is
kept for ``READY_CACHE_S`` so probes cannot load the database. ``/healthz`` is ``/readyz``.
"""

from __future__ import annotations

import hmac
import json
import random
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from synccli.domain.values import check_date
from synccli.errors import DatabaseUnavailable, ProtocolError, TransientDatabaseError
from synccli.server import logs
from synccli.server.services import Services

FAULT_MODES = ("verify", "deadlock", "slow_commit", "off")
#: Seconds a readiness result is reused.
READY_CACHE_S = 1.0


def _respond(
    connection: ServerConnection, status: HTTPStatus, body: str, content_type: str
) -> Response:
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    return _respond(connection, status, json.dumps(body) + "\n", "application/json")


def authorised(request: Request, query: dict[str, list[str]], token: str | None) -> bool:
    """Whether the request carries the bearer token (header, or ``?token=`` for browsers)."""
    if token is None:
        return True
    offered = query.get("token", [""])[0]
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        offered = header[len("Bearer ") :]
    return hmac.compare_digest(offered.encode(), token.encode())


@dataclass(slots=True)
class DbFault:
    """A seeded share of write transactions fails or stalls (installed as ``Store.hook``)."""

    mode: str
    rate: float
    seed: int
    delay_ms: int

    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, stage: str) -> None:
        if self.mode == "verify" and stage == "verify" and self._rng.random() < self.rate:
            raise DatabaseUnavailable("verification failed (injected fault)")
        if self.mode == "deadlock" and stage == "commit" and self._rng.random() < self.rate:
            raise TransientDatabaseError("deadlock victim (injected fault)")
        if self.mode == "slow_commit" and stage == "commit" and self._rng.random() < self.rate:
            time.sleep(self.delay_ms / 1000)  # runs in the DB thread: it is the point

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "rate": self.rate, "seed": self.seed, "delay_ms": self.delay_ms}


class Router:
    """The ``process_request`` callable of one server."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self._ready: tuple[float, str | None] | None = None  # (when, why not ready)

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        token = self.s.config.token
        if url.path == "/ws":
            if not authorised(request, query, token):
                return _respond(
                    connection,
                    HTTPStatus.UNAUTHORIZED,
                    "missing or wrong bearer token\n",
                    "text/plain; charset=utf-8",
                )
            if self.s.metrics.connections >= self.s.config.max_connections:
                self.s.metrics.inc("connections_refused_total")
                return _respond(
                    connection,
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"at most {self.s.config.max_connections} connections; try again later\n",
                    "text/plain; charset=utf-8",
                )
            return None
        if url.path == "/livez":
            return _json(connection, HTTPStatus.OK, {"status": "alive"})
        if url.path in ("/readyz", "/healthz"):
            return await self._health(connection)
        if url.path == "/metrics":
            counts = self.s.metrics.counts
            counts["db_corrupt_total"] = self.s.store.corrupt_errors
            counts["log_lines_suppressed_total"] = logs.SUPPRESSED.total
            text = self.s.metrics.render()
            return _respond(connection, HTTPStatus.OK, text, "text/plain; version=0.0.4")
        if url.path.startswith("/_admin/") and self.s.config.fault_hooks:
            if not authorised(request, query, token):
                return _json(connection, HTTPStatus.UNAUTHORIZED, {"error": "bad token"})
            return await self._admin(connection, url.path, query)
        return _json(connection, HTTPStatus.NOT_FOUND, {"error": f"no such path {url.path}"})

    async def _not_ready(self) -> str | None:
        """Why the server is not ready (the probe's failure), or None; cached briefly."""
        now = time.monotonic()
        if self._ready is not None and now - self._ready[0] < READY_CACHE_S:
            return self._ready[1]
        reason: str | None = None
        try:
            await self.s.db.run(self.s.store.probe)
        except DatabaseUnavailable as exc:
            reason = str(exc)
        self._ready = (time.monotonic(), reason)
        self.s.metrics.db_up = reason is None
        return reason

    async def _health(self, connection: ServerConnection) -> Response:
        metrics = self.s.metrics
        reason = await self._not_ready()
        if reason is not None:
            failed = {"status": "db_unavailable", "reason": reason}
            return _json(connection, HTTPStatus.SERVICE_UNAVAILABLE, failed)
        body = {
            "status": "ok",
            "connections": metrics.connections,
            "channels": len(self.s.hub.dates()),
            "db": self.s.store.url,
        }
        return _json(connection, HTTPStatus.OK, body)

    async def _admin(
        self, connection: ServerConnection, path: str, query: dict[str, list[str]]
    ) -> Response:
        def arg(name: str, default: str) -> str:
            return query.get(name, [default])[0]

        try:
            if path == "/_admin/db-fault":
                mode = arg("mode", "off")
                if mode not in FAULT_MODES:
                    raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
                fault = DbFault(
                    mode,
                    float(arg("rate", "0.3")),
                    int(arg("seed", "0")),
                    int(arg("delay_ms", "200")),
                )
                self.s.store.hook = None if mode == "off" else fault
                return _json(connection, HTTPStatus.OK, {"fault": fault.describe()})
            if path == "/_admin/reset-channel":
                date = check_date(arg("date", ""))
                channel = await self.s.db.run(self.s.store.reset_channel, date)
                told = self.s.hub.reset(channel)
                return _json(
                    connection,
                    HTTPStatus.OK,
                    {"date": date, "epoch": channel.epoch, "subscribersTold": told},
                )
        except (ValueError, ProtocolError) as exc:
            return _json(connection, HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except DatabaseUnavailable as exc:
            return _json(connection, HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
        return _json(connection, HTTPStatus.NOT_FOUND, {"error": f"no such path {path}"})
