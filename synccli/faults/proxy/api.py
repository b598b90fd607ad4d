"""Toxiproxy's HTTP API (v2.12): routing, status codes and exact error bodies.

Only this module knows HTTP; the proxies and toxics it drives know nothing of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from synccli.faults.proxy import address, gojson
from synccli.faults.proxy.envelope import (
    ApiError,
    ToxicEnvelope,
    bad_body,
    parse_new_toxic,
    parse_toxic_update,
)
from synccli.faults.proxy.httpserver import Request, Response
from synccli.faults.proxy.proxy import Proxy

VERSION = "2.12.0"
ERROR_TYPE = "text/plain; charset=utf-8"
# Go's http.Error adds this to every text error it writes.
NOSNIFF = [("X-Content-Type-Options", "nosniff")]
JSON_TYPE = "application/json"

Route = Callable[..., Awaitable[Response]]


def json_response(status: int, value: Any) -> Response:
    """A JSON body with Toxiproxy's content type."""
    return Response(status, gojson.encode(value), JSON_TYPE)


def error_response(error: ApiError) -> Response:
    """``{"error":…,"status":…}`` + newline, sent as text/plain as Go's ``http.Error`` does."""
    body = gojson.encode({"error": error.message, "status": error.status}) + b"\n"
    return Response(error.status, body, ERROR_TYPE, headers=[("X-Content-Type-Options", "nosniff")])


class ToxiproxyApi:
    """The state behind the API: proxies by name, and one lock so requests apply in turn."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()
        self._routes: list[tuple[re.Pattern[str], dict[str, Route]]] = [
            (re.compile(r"/version"), {"GET": self.version}),
            (re.compile(r"/reset"), {"POST": self.reset}),
            (re.compile(r"/populate"), {"POST": self.populate}),
            (re.compile(r"/proxies"), {"GET": self.list_proxies, "POST": self.create_proxy}),
            (
                re.compile(r"/proxies/([^/]+)"),
                {
                    "GET": self.show_proxy,
                    "POST": self.update_proxy,
                    "PATCH": self.update_proxy,
                    "DELETE": self.delete_proxy,
                },
            ),
            (
                re.compile(r"/proxies/([^/]+)/toxics"),
                {"GET": self.list_toxics, "POST": self.create_toxic},
            ),
            (
                re.compile(r"/proxies/([^/]+)/toxics/([^/]+)"),
                {
                    "GET": self.show_toxic,
                    "POST": self.update_toxic,
                    "PATCH": self.update_toxic,
                    "DELETE": self.delete_toxic,
                },
            ),
        ]

    async def handle(self, request: Request) -> Response:
        """Route one request: 404 unknown path, 405 wrong method, 403 browsers."""
        path = unquote(request.path)
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            route = methods.get(request.method)
            if route is None:
                return Response(405)
            return dataclasses.replace(await self._routed(request, route, match), routed=True)
        return Response(404, b"404 page not found\n", ERROR_TYPE, headers=NOSNIFF)

    async def _routed(self, request: Request, route: Route, match: re.Match[str]) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            # Blocks browsers, so a web page cannot drive the API (CSRF).
            return Response(403, b"User agent not allowed\n", ERROR_TYPE, headers=NOSNIFF)
        async with self._lock:
            try:
                return await route(request, *match.groups())
            except ApiError as exc:
                return error_response(exc)

    async def close(self) -> None:
        """Stop every proxy and connection."""
        async with self._lock:
            for proxy in self.proxies.values():
                await proxy.stop()

    def _proxy(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(404, "proxy not found")
        return proxy

    async def version(self, request: Request) -> Response:
        """``GET /version``."""
        body = b'{"version": "' + VERSION.encode() + b'"}\n'
        return Response(200, body, "application/json;charset=utf-8")

    async def reset(self, request: Request) -> Response:
        """``POST /reset``: re-enable every proxy and remove every toxic."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.remove_all_toxics()
        return Response(204)

    async def list_proxies(self, request: Request) -> Response:
        """``GET /proxies``: every proxy, keyed and sorted by name."""
        return json_response(
            200, {name: self.proxies[name].to_json() for name in sorted(self.proxies)}
        )

    async def create_proxy(self, request: Request) -> Response:
        """``POST /proxies``: 201 with the new proxy."""
        try:
            obj = gojson.expect_object(gojson.decode(request.body), "toxiproxy.Proxy")
            spec = _proxy_spec(obj)
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        for key in ("name", "upstream"):
            if not spec[key]:
                raise ApiError(400, f"missing required field: {key}")
        proxy = await self._add(spec)
        return json_response(201, proxy.to_json())

    async def _add(self, spec: dict[str, Any]) -> Proxy:
        if spec["name"] in self.proxies:
            raise ApiError(409, "proxy already exists")
        proxy = Proxy(spec["name"], spec["listen"], spec["upstream"], self.rng)
        if spec["enabled"]:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def populate(self, request: Request) -> Response:
        """``POST /populate``: create or replace the proxies listed; never deletes."""
        done: list[Proxy] = []
        try:
            specs = _populate_specs(request.body)
            for spec in specs:
                done.append(await self._populate_one(spec))
        except ApiError as exc:
            proxies = [proxy.to_json() for proxy in done] if done else None
            body = {"error": exc.message, "status": exc.status, "proxies": proxies}
            return Response(exc.status, gojson.encode(body) + b"\n", JSON_TYPE)
        return json_response(201, {"proxies": [p.to_json() for p in done] or None})

    async def _populate_one(self, spec: dict[str, Any]) -> Proxy:
        existing = self.proxies.get(spec["name"])
        if existing is not None:
            same_listen = await address.resolve(spec["listen"]) == await address.resolve(
                existing.listen
            )
            if same_listen and spec["upstream"] == existing.upstream:
                return existing
            await existing.stop()
            del self.proxies[spec["name"]]
        return await self._add(spec)

    async def show_proxy(self, request: Request, name: str) -> Response:
        """``GET /proxies/{proxy}``."""
        return json_response(200, self._proxy(name).to_json())

    async def update_proxy(self, request: Request, name: str) -> Response:
        """``PATCH``/``POST /proxies/{proxy}``: omitted fields keep their values."""
        proxy = self._proxy(name)
        try:
            obj = gojson.expect_object(gojson.decode(request.body), "toxiproxy.Proxy")
            listen = gojson.get_str(obj, "listen", "Proxy")
            upstream = gojson.get_str(obj, "upstream", "Proxy")
            enabled = gojson.get_bool(obj, "enabled", "Proxy")
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        await proxy.update(
            proxy.listen if listen is None else listen,
            proxy.upstream if upstream is None else upstream,
            proxy.enabled if enabled is None else enabled,
        )
        return json_response(200, proxy.to_json())

    async def delete_proxy(self, request: Request, name: str) -> Response:
        """``DELETE /proxies/{proxy}``: closes its listener and connections."""
        proxy = self._proxy(name)
        await proxy.stop()
        del self.proxies[name]
        return Response(204)

    async def list_toxics(self, request: Request, name: str) -> Response:
        """``GET /proxies/{proxy}/toxics``."""
        return json_response(200, self._proxy(name).toxics_json())

    async def create_toxic(self, request: Request, name: str) -> Response:
        """``POST /proxies/{proxy}/toxics``: 200 (not 201), applied to open connections too."""
        proxy = self._proxy(name)
        taken = {toxic["name"] for toxic in proxy.toxics_json()}
        envelope = parse_new_toxic(request.body, taken)
        await proxy.add_toxic(envelope)
        return json_response(200, envelope.to_json())

    def _toxic(self, proxy: Proxy, name: str) -> ToxicEnvelope:
        envelope = proxy.find(name)
        if envelope is None:
            raise ApiError(404, "toxic not found")
        return envelope

    async def show_toxic(self, request: Request, name: str, toxic: str) -> Response:
        """``GET /proxies/{proxy}/toxics/{toxic}``."""
        return json_response(200, self._toxic(self._proxy(name), toxic).to_json())

    async def update_toxic(self, request: Request, name: str, toxic: str) -> Response:
        """``PATCH``/``POST /proxies/{proxy}/toxics/{toxic}``: attributes merge."""
        proxy = self._proxy(name)
        envelope = self._toxic(proxy, toxic)
        new_toxic, toxicity = parse_toxic_update(envelope, request.body)
        await proxy.update_toxic(envelope, new_toxic, toxicity)
        return json_response(200, envelope.to_json())

    async def delete_toxic(self, request: Request, name: str, toxic: str) -> Response:
        """``DELETE /proxies/{proxy}/toxics/{toxic}``."""
        proxy = self._proxy(name)
        await proxy.remove_toxic(self._toxic(proxy, toxic))
        return Response(204)


def _proxy_spec(obj: dict[str, Any]) -> dict[str, Any]:
    enabled = gojson.get_bool(obj, "enabled", "Proxy")
    return {
        "name": gojson.get_str(obj, "name", "Proxy") or "",
        "listen": gojson.get_str(obj, "listen", "Proxy") or "",
        "upstream": gojson.get_str(obj, "upstream", "Proxy") or "",
        "enabled": True if enabled is None else enabled,
    }


def _populate_specs(body: bytes) -> list[dict[str, Any]]:
    """Every element decoded and checked before anything changes."""
    try:
        value = gojson.decode(body)
        if not isinstance(value, list):
            raise gojson.GoJSONError(
                f"json: cannot unmarshal {gojson.kind(value)} into Go value of type "
                "[]struct { Name string; Listen string; Upstream string; Enabled *bool }"
            )
        specs = [_proxy_spec(gojson.expect_object(item, "struct")) for item in value]
    except gojson.GoJSONError as exc:
        raise bad_body(exc) from None
    for number, spec in enumerate(specs, start=1):
        for key in ("name", "upstream"):
            if not spec[key]:
                raise ApiError(400, f"missing required field: {key} at proxy {number}")
    return specs
