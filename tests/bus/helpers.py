"""Several ``synccli serve`` nodes on one SQLite WAL file, each test with its own Redis.

Every process (Redis, nodes) is ended by its PID when the test ends, also when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from synccli.harness.cluster import RedisProcess
from synccli.harness.server_process import free_port, parse_prometheus
from synccli.store import open_store
from tests.conftest import require, seconds
from tests.server.helpers import DATE, Client, ServerProcess, db_url, seeded_store

#: Request ids unique within the test process (object ids are reused after collection).
_REQUESTS = itertools.count()


def require_redis() -> None:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")


@asynccontextmanager
async def redis(tmp_path: Path, port: int | None = None) -> AsyncIterator[RedisProcess]:
    """A private ``redis-server`` on a free loopback port."""
    server = RedisProcess(tmp_path / "redis.log", port=port or free_port(), workdir=tmp_path)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@contextmanager
def nodes(tmp_path: Path, buses: list[str], *options: str) -> Iterator[list[ServerProcess]]:
    """One node per bus URL, all on one seeded database."""
    seeded_store(tmp_path).close()
    started: list[ServerProcess] = []
    try:
        for bus in buses:
            started.append(ServerProcess(db_url(tmp_path), "--bus", bus, *options))
        yield started
    finally:
        for node in started:
            try:
                node.stop()
            except Exception:
                node.kill()


def http_get(node: ServerProcess, path: str) -> str:
    base = node.url.removeprefix("ws://").removesuffix("/ws")
    try:
        with urllib.request.urlopen(f"http://{base}{path}", timeout=5) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:  # a 503 still has a JSON body
        body = exc.read()
    return body.decode()


async def health(node: ServerProcess) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.to_thread(http_get, node, "/healthz"))
    return data


async def metrics(node: ServerProcess) -> dict[str, float]:
    return parse_prometheus(await asyncio.to_thread(http_get, node, "/metrics"))


async def wait_status(node: ServerProcess, status: str, timeout: float = 10.0) -> None:
    """Until the node's ``/healthz`` says ``status`` (the node changes it by itself)."""
    async with asyncio.timeout(seconds(timeout)):
        while (await health(node))["status"] != status:
            await asyncio.sleep(0.05)


class Collector:
    """A subscriber on one node: acks every event and records the live sequence numbers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.start = 0
        self.seqs: list[int] = []
        self._changed = asyncio.Event()

    async def subscribe(self) -> None:
        await self.ws.send(json.dumps({"type": "subscribe", "date": DATE}))
        while True:
            message = json.loads(await self.ws.recv())
            if message["type"] == "subscribed":
                self.start = message["sequenceNum"]
                return

    async def read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message["type"] != "appointments_updated":
                continue
            self.seqs.append(message["sequenceNum"])
            self._changed.set()
            ack = {"type": "ack", "date": DATE, "sequenceNum": message["sequenceNum"]}
            await self.ws.send(json.dumps(ack))

    async def wait_for(self, head: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(seconds(timeout)):
            while not self.seqs or self.seqs[-1] < head:
                self._changed.clear()
                await self._changed.wait()

    def check(self, head: int) -> None:
        """Every event after the subscribe position up to ``head``, once each, in order."""
        assert self.seqs == list(range(self.start + 1, head + 1))


@asynccontextmanager
async def collectors(servers: list[ServerProcess]) -> AsyncIterator[list[Collector]]:
    """One subscribed collector per node, reading until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        found: list[Collector] = []
        for node in servers:
            ws = await stack.enter_async_context(connect(node.url, compression=None))
            collector = Collector(ws)
            await collector.subscribe()
            found.append(collector)
        tasks = [asyncio.create_task(c.read()) for c in found]
        try:
            yield found
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def toggle(node: ServerProcess, appointment: int, count: int) -> None:
    """``count`` writes on ``node``: appointment ``appointment`` checked in and undone."""
    async with connect(node.url, compression=None) as ws:
        client = Client(ws)
        for index in range(count):
            state = "Present" if index % 2 == 0 else "Scheduled"
            result = await client.write(appointment, state, f"w{next(_REQUESTS)}")
            assert result["ok"], result


def head(tmp_path: Path) -> int:
    store = open_store(db_url(tmp_path))
    try:
        return store.channel(DATE).head_seq
    finally:
        store.close()
