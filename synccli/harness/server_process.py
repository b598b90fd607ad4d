"""The embedded sync server as a separate process, so that a fault can SIGKILL it.

The harness starts ``python -m synccli serve``, waits for ``/healthz``, and talks to its HTTP
side (metrics, fault hooks). For packet loss the process stays on the host (it reaches the
database) and is handed a listening socket made inside the network namespace: ``listener``
makes a fresh one for every start, so while a killed server is down, connections are refused.
With ``tls`` (certificate and key files) it serves wss:// and https://, trusted through
``ca_file``; with ``jwt_secret`` it verifies per-user tokens and ``token`` is the harness's
own (admin) one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synccli.client.tls import client_context
from synccli.errors import FaultError, InfrastructureError

HEALTH_TIMEOUT_S = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """One ``synccli serve`` child process and how to reach it."""

    db_url: str
    host: str
    port: int
    log_path: Path
    options: Sequence[str] = ()
    token: str | None = field(default=None, repr=False)
    listener: Callable[[], socket.socket] | None = None
    #: ``(certificate, key)`` PEM files: serve wss:// and https://.
    tls: tuple[str, str] | None = None
    #: What the harness trusts for TLS (the self-signed certificate).
    ca_file: str | None = None
    #: Per-user tokens: the server's HS256 secret (passed in the environment, not argv).
    jwt_secret: str | None = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def http_base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/ws"

    @property
    def _ssl(self) -> ssl.SSLContext | None:
        return client_context(self.http_base, self.ca_file)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self, listen_fd: int | None = None) -> list[str]:
        argv = [sys.executable, "-m", "synccli", "serve", "--db", self.db_url]
        argv += ["--host", self.host, "--port", str(self.port), "--fault-hooks", *self.options]
        if self.tls is not None:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if listen_fd is None:
            return argv
        argv += ["--listen-fd", str(listen_fd)]
        if shutil.which("setpriv"):
            # Killed with the harness: it used to run inside the namespace, where cleanup of
            # a crashed run's namespace found and killed it; outside, nothing else would.
            return ["setpriv", "--pdeathsig", "KILL", "--", *argv]
        return argv

    async def start(self) -> None:
        """Start the process and wait until ``/healthz`` answers 200."""
        env = dict(os.environ)
        if self.jwt_secret:
            env["SYNCCLI_JWT_SECRET"] = self.jwt_secret
        elif self.token:
            env["SYNCCLI_TOKEN"] = self.token
        sock = await asyncio.to_thread(self.listener) if self.listener else None
        fds = (sock.fileno(),) if sock else ()
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.command(fds[0] if fds else None),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=fds,
            )
        finally:
            log.close()
            if sock is not None:
                # The server's copy is its only one: killed, it stops accepting at once.
                sock.close()
        await self._wait_healthy()

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise InfrastructureError(
                    f"the sync server exited with code {self._proc.returncode} at start-up; "
                    f"see {self.log_path}: {self.log_tail()}"
                )
            if await asyncio.to_thread(self._healthy):
                return
            await asyncio.sleep(0.05)
        raise InfrastructureError(
            f"the sync server did not become healthy within {HEALTH_TIMEOUT_S:.0f} s; "
            f"see {self.log_path}"
        )

    def _healthy(self) -> bool:
        try:
            url = self.http_base + "/healthz"
            with urllib.request.urlopen(url, timeout=1, context=self._ssl) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flush — a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL past ``timeout``. Idempotent."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        return proc.returncode

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = 5.0) -> str:
        """GET an HTTP path of the server and return the body (raises on failure)."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        request = urllib.request.Request(self.http_base + path + query)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=timeout, context=self._ssl) as response:
            body: bytes = response.read()
        return body.decode()

    async def admin(self, path: str, **params: Any) -> dict[str, Any]:
        """Call a fault hook (``/_admin/…``); failures become ``FaultError``."""
        try:
            body = await asyncio.to_thread(self.get, "/_admin/" + path, params)
        except (OSError, urllib.error.URLError) as exc:
            raise FaultError(f"the server's fault hook {path} failed: {exc}") from None
        result: dict[str, Any] = json.loads(body) if body.strip() else {}
        return result

    async def metrics(self) -> dict[str, float]:
        """The server's ``/metrics`` as ``{name: value}`` (labelled series summed by name)."""
        with contextlib.suppress(OSError, urllib.error.URLError):
            text = await asyncio.to_thread(self.get, "/metrics")
            return parse_prometheus(text)
        return {}


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum every sample of each metric name in a Prometheus text exposition."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0].strip()
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals
