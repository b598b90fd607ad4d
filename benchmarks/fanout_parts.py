"""Where the fan-out's server CPU goes, part by part, against ``broadcast()`` in the same run.

    python benchmarks/fanout_parts.py                    # N = 100, 1000
    python benchmarks/fanout_parts.py --clients 100 --events 500 --rounds 5

A real ``SyncServer`` on SQLite in this process, with N real WebSocket clients on 127.0.0.1
subscribed to one date. Each round publishes ``--events`` events through the hub, then
broadcasts the same payloads with websockets' ``broadcast()`` to the same server-side
connections, then has every client ack each of ``--acks`` events cumulatively. Only the
server's own calls are timed, in CPU seconds of this process (``time.process_time``): the
clients reading and writing in the same process are not counted. Columns, in µs:

* ``deliver``: ``Hub.publish`` per delivery (the hub, each connection's ``deliver``: the
  session's checks, ack tracking, batching);
* ``flush``: the fan-out flush per delivery (shared frames, one socket write each);
* ``broadcast``: ``broadcast()`` per delivery (what ``fanout.py``'s bare server does);
* ``ack frame``: ``Connection._handle`` per ack frame (parse, the session's rules, ack
  bookkeeping), without websockets' reading of the frame, which both servers pay.

Best of ``--rounds``. ``fanout.py`` measures the whole server; this shows which part moved.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from fanout import client_counts
from tabulate import tabulate
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import broadcast

from synccli.domain.values import Event
from synccli.server import connection, framing
from synccli.server.app import GC_THRESHOLD, SyncServer
from synccli.server.config import ServerConfig
from synccli.store import open_store

DATE = (datetime.now(UTC).date() + timedelta(days=403)).isoformat()


class Clock:
    """CPU seconds spent inside the wrapped calls."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def add(self, began: float) -> None:
        self.seconds += time.process_time() - began
        self.calls += 1


def timed_flush(clock: Clock) -> Callable[[framing.Fanout], None]:
    run = framing.Fanout._run

    def wrapper(self: framing.Fanout) -> None:
        began = time.process_time()
        run(self)
        clock.add(began)

    return wrapper


def timed_handle(
    clock: Clock,
) -> Callable[[connection.Connection, str | bytes], Awaitable[None]]:
    handle = connection.Connection._handle

    async def wrapper(self: connection.Connection, frame: str | bytes) -> None:
        began = time.process_time()
        await handle(self, frame)  # an ack never waits for the store: no other task runs
        clock.add(began)

    return wrapper


class Clients:
    """N subscribed clients that count every frame they receive."""

    def __init__(self, sockets: list[ClientConnection]) -> None:
        self.sockets = sockets
        self.received = 0
        self._tasks = [asyncio.create_task(self._read(ws)) for ws in sockets]

    async def _read(self, ws: ClientConnection) -> None:
        async for _ in ws:
            self.received += 1

    async def wait_for(self, total: int) -> None:
        while self.received < total:
            await asyncio.sleep(0.0005)  # polling a counter the reader tasks advance

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for ws in self.sockets:
            await ws.close()


async def _clients(url: str, count: int) -> Clients:
    sockets = []
    for _ in range(count):
        ws = await connect(url, compression=None, open_timeout=30)
        await ws.send(json.dumps({"type": "subscribe", "date": DATE}))
        await ws.recv()
        sockets.append(ws)
    return Clients(sockets)


async def _round(
    server: SyncServer, clients: Clients, events: int, acks: int, clocks: dict[str, Clock]
) -> dict[str, float]:
    s = server.services
    assert s is not None and server._server is not None
    epoch = s.hub.position(DATE)
    row = (await s.db.run(s.store.snapshot, DATE))[1][0]
    assert epoch is not None
    n = len(clients.sockets)
    for clock in clocks.values():
        clock.seconds, clock.calls = 0.0, 0
    deliver = 0.0
    sent: list[Event] = []
    for _ in range(events):
        seq = (s.hub.head(DATE) or 0) + 1
        event = Event(DATE, epoch.epoch, seq, row, None, "2030-01-01T00:00:00.000Z")
        sent.append(event)
        target = clients.received + n
        began = time.process_time()
        s.publish(event)
        deliver += time.process_time() - began
        await clients.wait_for(target)
    bare = 0.0
    peers = list(server._server.connections)
    for event in sent:
        target = clients.received + n
        began = time.process_time()
        broadcast(peers, event.wire_json(False), text=True)
        bare += time.process_time() - began
        await clients.wait_for(target)
    for event in sent[-acks:]:
        ack = json.dumps(
            {"type": "ack", "date": DATE, "sequenceNum": event.seq, "epoch": event.epoch}
        )
        for ws in clients.sockets:
            await ws.send(ack)
    while clocks["ack"].calls < acks * n:
        await asyncio.sleep(0.001)  # polling the server's count of handled acks
    deliveries = events * n
    return {
        "deliver": deliver / deliveries * 1e6,
        "flush": clocks["flush"].seconds / deliveries * 1e6,
        "broadcast": bare / deliveries * 1e6,
        "ack frame": clocks["ack"].seconds / clocks["ack"].calls * 1e6,
    }


async def _case(count: int, events: int, acks: int, rounds: int) -> dict[str, float]:
    clocks = {"flush": Clock(), "ack": Clock()}
    framing.Fanout._run = timed_flush(clocks["flush"])  # type: ignore[method-assign,assignment]
    connection.Connection._handle = timed_handle(clocks["ack"])  # type: ignore[method-assign,assignment]
    with tempfile.TemporaryDirectory(prefix="fanout-parts-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'parts.db'}"
        store = open_store(db_url)
        store.init_schema()
        store.seed(DATE, 4)
        store.close()
        # No heartbeat or ack re-send within a round: only the parts measured run.
        config = ServerConfig(
            db_url=db_url,
            port=0,
            heartbeat_s=3600.0,
            ack_timeout_s=3600.0,
            message_rate=1e9,
            message_burst=10**9,
        )
        server = SyncServer(config)
        await server.start()
        try:
            clients = await _clients(server.url, count)
            try:
                results = [
                    await _round(server, clients, events, acks, clocks) for _ in range(rounds)
                ]
            finally:
                await clients.close()
        finally:
            await server.close()
    return {key: min(r[key] for r in results) for key in results[0]}


@click.command()
@click.option("--clients", default="100,1000", show_default=True, help="Comma-separated N.")
@click.option("--events", type=int, default=300, show_default=True, help="Events per round.")
@click.option("--acks", type=int, default=20, show_default=True, help="Acks per client per round.")
@click.option("--rounds", type=int, default=3, show_default=True)
def main(clients: str, events: int, acks: int, rounds: int) -> None:
    """Per-delivery and per-ack server CPU of the fan-out's parts, against broadcast()."""
    gc.set_threshold(GC_THRESHOLD, 50, 100)  # as ``synccli serve`` runs (``app.run_server``)
    rows: list[list[Any]] = []
    for count in client_counts(clients):
        parts = asyncio.run(_case(count, events, min(acks, events), rounds))
        rows.append(
            [
                count,
                f"{parts['deliver']:.2f}",
                f"{parts['flush']:.2f}",
                f"{parts['deliver'] + parts['flush']:.2f}",
                f"{parts['broadcast']:.2f}",
                f"{(parts['deliver'] + parts['flush']) / parts['broadcast']:.2f}",
                f"{parts['ack frame']:.2f}",
            ]
        )
    headers = ["N", "deliver µs", "flush µs", "fan-out µs", "broadcast µs", "ratio", "ack frame µs"]
    click.echo(tabulate(rows, headers))


if __name__ == "__main__":
    main()
