"""A real server on 127.0.0.1 (port 0) over a real SQLite file, and a JSON test client."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any, ParamSpec

from websockets.asyncio.client import ClientConnection, connect

from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.store import Store, open_store
from tests.conftest import seconds

DATE = "2026-11-26"
P = ParamSpec("P")


def days_back() -> int:
    """A served date window that keeps covering the fixed test ``DATE`` as time passes."""
    return max(366, (date.today() - date.fromisoformat(DATE)).days + 2)


def aio(test: Callable[P, Awaitable[None]]) -> Callable[P, None]:
    """Run an async test in a fresh event loop, bounded in time."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(seconds(30)):
                await test(*args, **kwargs)

        asyncio.run(bounded())

    return wrapper


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sync.db'}"


def seeded_store(tmp_path: Path, count: int = 5) -> Store:
    store = open_store(db_url(tmp_path))
    store.init_schema()
    store.seed(DATE, count)
    return store


def appt(n: int) -> str:
    return f"{DATE}-{n:04d}"


@asynccontextmanager
async def running_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[SyncServer]:
    """A started server on port 0 with a seeded database; closed afterwards."""
    seeded_store(tmp_path).close()
    overrides.setdefault("days_back", days_back())
    config = ServerConfig(db_url=db_url(tmp_path), port=0, **overrides)
    server = SyncServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class Client:
    """A thin JSON client over a real websockets connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.stash: list[dict[str, Any]] = []
        self._writes = 0

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds(timeout)):
            data: dict[str, Any] = json.loads(await self.ws.recv())
            return data

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first message of type ``kind``; other messages are kept, in order, for later
        ``expect`` calls (heartbeats are dropped unless asked for)."""
        for index, message in enumerate(self.stash):
            if message["type"] == kind:
                del self.stash[index]
                return message
        for _ in range(1000):
            message = await self.recv(timeout)
            if message["type"] == kind:
                return message
            if message["type"] != "heartbeat":
                self.stash.append(message)
        raise AssertionError(f"no {kind} within 1000 messages")

    async def subscribe(self, since: tuple[str, int] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "date": DATE}
        if since is not None:
            message["since"] = {"epoch": since[0], "sequenceNum": since[1]}
        await self.send(message)
        return await self.expect("subscribed")

    async def write(
        self, n: int, state: str = "Present", request_id: str | None = None
    ) -> dict[str, Any]:
        self._writes += 1
        rid = request_id or f"{id(self)}-{self._writes}"
        await self.send(
            {
                "type": "update_appointment_state",
                "requestId": rid,
                "appointmentId": appt(n),
                "state": state,
            }
        )
        return await self.expect("result")


@asynccontextmanager
async def client(server: SyncServer, **kwargs: Any) -> AsyncIterator[Client]:
    async with connect(server.url, compression=None, **kwargs) as ws:
        yield Client(ws)


class ServerProcess:
    """``python -m synccli serve`` on port 0; the port comes from its one stdout line."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "synccli", "serve", "--db", url, "--port", "0"),
                *("--days-back", str(days_back()), *args),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("synccli serve: listening on ws://127.0.0.1:"), line
        self.url = line.split()[4]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=seconds(10))

    def stop(self) -> int:
        """SIGTERM (a graceful stop); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=seconds(10))
