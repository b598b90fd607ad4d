"""Shared fixtures for the proxy conformance suite (imported by the ``test_proxy_*`` modules).

``toxiproxy`` is the API under test: a real Toxiproxy when ``TOXIPROXY_URL`` is set, else
an embedded one on a background thread. Upstreams are small threaded servers on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from synccli.faults.proxy import start_in_thread
from tests.conftest import seconds

REAL_URL = os.environ.get("TOXIPROXY_URL")
embedded_only = pytest.mark.skipif(
    REAL_URL is not None, reason="checks a guard of the embedded proxy the real one lacks"
)
not_on_shared_server = pytest.mark.skipif(
    REAL_URL is not None, reason="binds every interface: not on a shared real server"
)
_names = itertools.count()


@dataclass
class HttpResult:
    """A raw HTTP answer."""

    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Raw HTTP access to a Toxiproxy API (http.client, one connection per call)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8474
        self.created: list[str] = []

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=seconds(10))
        try:
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            return HttpResult(
                response.status,
                response.read(),
                {k.lower(): v for k, v in response.getheaders()},
            )
        finally:
            conn.close()

    def new_name(self, label: str) -> str:
        name = f"synccli-test-{label}-{os.getpid()}-{next(_names)}"
        self.created.append(name)
        return name

    def create(self, label: str, upstream: str, **extra: Any) -> dict[str, Any]:
        body = {"name": self.new_name(label), "listen": "127.0.0.1:0", "upstream": upstream}
        body.update(extra)
        result = self.call("POST", "/proxies", body)
        assert result.status == 201, result.body
        proxy: dict[str, Any] = result.json()
        return proxy

    def add_toxic(self, proxy: str, **toxic: Any) -> dict[str, Any]:
        result = self.call("POST", f"/proxies/{proxy}/toxics", toxic)
        assert result.status == 200, result.body
        created: dict[str, Any] = result.json()
        return created

    def cleanup(self) -> None:
        for name in self.created:
            self.call("DELETE", f"/proxies/{name}")
        self.created.clear()


@pytest.fixture(name="toxiproxy_url", scope="module")
def toxiproxy_url_fixture() -> Iterator[str]:
    """The API under test."""
    if REAL_URL is not None:
        yield REAL_URL.rstrip("/")
        return
    handle = start_in_thread("127.0.0.1", 0, seed=7)
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.fixture(name="api")
def api_fixture(toxiproxy_url: str) -> Iterator[Api]:
    """Raw HTTP access; deletes the proxies the test created."""
    client = Api(toxiproxy_url)
    try:
        yield client
    finally:
        client.cleanup()


class Upstream:
    """A threaded TCP server on 127.0.0.1: ``echo`` echoes; ``greet`` sends b"bye" and closes."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.mode == "greet":
                conn.sendall(b"bye")
                conn.close()
                return
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(seconds(5))


@pytest.fixture(name="echo")
def echo_fixture() -> Iterator[Upstream]:
    server = Upstream("echo")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(name="greeter")
def greeter_fixture() -> Iterator[Upstream]:
    server = Upstream("greet")
    try:
        yield server
    finally:
        server.close()


def connect(listen: str, timeout: float = 5.0) -> socket.socket:
    """A client socket to a proxy's ``listen`` address."""
    host, port = listen.rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=seconds(timeout))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds to send ``payload`` and read it all back through the echo upstream."""
    start = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        data = sock.recv(65536)
        assert data, "connection closed during a round trip"
        received += data
    assert received == payload
    return time.monotonic() - start


def fastest_round_trip(sock: socket.socket, tries: int = 3) -> float:
    """The quickest of ``tries`` round trips: a toxic slows every one of them, while a
    scheduling hiccup of a loaded machine rarely hits them all (an upper bound stays sharp)."""
    return min(round_trip(sock) for _ in range(tries))


def read_until_eof(sock: socket.socket) -> tuple[bytes, list[int]]:
    """Everything until EOF, and the size of each read."""
    data = b""
    sizes: list[int] = []
    for _ in range(100_000):
        chunk = sock.recv(65536)
        if not chunk:
            return data, sizes
        data += chunk
        sizes.append(len(chunk))
    raise AssertionError("no EOF")
