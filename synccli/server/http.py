"""Plain HTTP on the WebSocket port: routing, auth, health, metrics, fault hooks.

``Router`` is websockets' ``process_request``: it answers every non-WebSocket path itself and
returns None only for an authorised ``/ws`` handshake from an allowed origin (403 otherwise),
and answers 503 to one beyond ``max_connections``. With auth on, ``/metrics`` and the
details of ``/readyz`` (the database, the reason it is not ready) need a valid token; the
metrics listener (``--metrics-port``) serves them without one and nothing else.

Health: ``/livez`` says the process answers (always 200). ``/readyz`` runs the store's
write-path probe (a write transaction; for SQLite also a small synced file next to the
database, so a full disk shows) and answers 503 when it fails; the result is kept for
``READY_CACHE_S`` so probes cannot load the database. ``/healthz`` is ``/readyz``.
"""

from __future__ import annotations

import importlib.resources
import json
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from synccli.domain.values import check_date
from synccli.errors import DatabaseUnavailable, ProtocolError
from synccli.faults.kinds.db_fault import MODES, DbFault
from synccli.server import logs
from synccli.server.auth import AuthFailed, Gate
from synccli.server.services import Services

FAULT_MODES = (*MODES, "off")
#: Seconds a readiness result is reused.
READY_CACHE_S = 1.0

# The browser half, served from package data (synccli/web): path -> (file, content type).
WEB_FILES = {
    "/": ("board.html", "text/html; charset=utf-8"),
    "/board.js": ("board.js", "text/javascript; charset=utf-8"),
    "/board.css": ("board.css", "text/css; charset=utf-8"),
    "/client.js": ("synccli-client.js", "text/javascript; charset=utf-8"),
    "/client.d.ts": ("synccli-client.d.ts", "application/typescript; charset=utf-8"),
}
# Nothing but this origin's own files and socket: a patient name can never run as script.
WEB_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def web_file(name: str) -> str:
    """The text of one file of the browser half (package data)."""
    return (importlib.resources.files("synccli") / "web" / name).read_text(encoding="utf-8")


def _respond(
    connection: ServerConnection, status: HTTPStatus, body: str, content_type: str
) -> Response:
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    return _respond(connection, status, json.dumps(body) + "\n", "application/json")


def _text(connection: ServerConnection, status: HTTPStatus, body: str) -> Response:
    return _respond(connection, status, body + "\n", "text/plain; charset=utf-8")


class Router:
    """The ``process_request`` callable of one server."""

    def __init__(self, services: Services, gate: Gate, metrics_only: bool = False) -> None:
        self.s = services
        self.gate = gate
        #: The metrics listener: health and metrics without a token, no WebSocket.
        self.metrics_only = metrics_only
        self._ready: tuple[float, str | None] | None = None  # (when, why not ready)

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        gate = self.gate
        if url.path == "/ws" and not self.metrics_only:
            if not gate.origin_allowed(request):
                self.s.metrics.inc("origin_refused_total")
                return _text(connection, HTTPStatus.FORBIDDEN, "this origin may not connect")
            try:
                gate.admit(connection, request)
            except AuthFailed as exc:
                self.s.metrics.inc("auth_failures_total")
                return _text(connection, HTTPStatus.UNAUTHORIZED, str(exc))
            if self.s.metrics.connections >= self.s.config.max_connections:
                self.s.metrics.inc("connections_refused_total")
                limit = self.s.config.max_connections
                return _text(
                    connection,
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"at most {limit} connections; try again later",
                )
            return None
        if url.path in WEB_FILES and not self.metrics_only:
            return self._web(connection, url.path)
        if url.path == "/livez":
            return _json(connection, HTTPStatus.OK, {"status": "alive"})
        if url.path in ("/readyz", "/healthz"):
            return await self._health(connection, details=self._trusted(request))
        if url.path == "/metrics":
            if not self._trusted(request):
                return _text(connection, HTTPStatus.UNAUTHORIZED, "metrics need a valid token")
            counts = self.s.metrics.counts
            counts["db_corrupt_total"] = self.s.store.corrupt_errors
            counts["log_lines_suppressed_total"] = logs.SUPPRESSED.total
            text = self.s.metrics.render()
            return _respond(connection, HTTPStatus.OK, text, "text/plain; version=0.0.4")
        if url.path.startswith("/_admin/") and self.s.config.fault_hooks and not self.metrics_only:
            if not gate.admin(request):
                return _json(connection, HTTPStatus.UNAUTHORIZED, {"error": "bad token"})
            return await self._admin(connection, url.path, parse_qs(url.query))
        return _json(connection, HTTPStatus.NOT_FOUND, {"error": f"no such path {url.path}"})

    def _web(self, connection: ServerConnection, path: str) -> Response:
        name, content_type = WEB_FILES[path]
        response = _respond(connection, HTTPStatus.OK, web_file(name), content_type)
        response.headers["Content-Security-Policy"] = WEB_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response

    def _trusted(self, request: Request) -> bool:
        return self.metrics_only or self.gate.authenticated(request)

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

    async def _health(self, connection: ServerConnection, details: bool) -> Response:
        metrics = self.s.metrics
        reason = await self._not_ready()
        if reason is not None:
            failed = {"status": "db_unavailable"}
            if details:
                failed["reason"] = reason
            return _json(connection, HTTPStatus.SERVICE_UNAVAILABLE, failed)
        # A node whose bus is down still serves everything (from the database, polling):
        # degraded, not unavailable.
        bus = self.s.bus.status()
        status = "ok" if bus.up else "degraded"
        if not details:
            return _json(connection, HTTPStatus.OK, {"status": status})
        body = {
            "status": status,
            "connections": metrics.connections,
            "channels": len(self.s.hub.dates()),
            "db": self.s.store.url,
            "bus": bus.to_json(),
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
                self.s.bus.log_changed()
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
