"""The processes around the server under test in ``fanout.py``: receivers and the bare server.

* ``receiver_main`` runs many WebSocket receivers in one process. Each one subscribes, parses
  every frame as JSON, applies events in sequence order (a duplicate is ignored, a gap is
  counted), measures commit→apply from ``committedAt`` and, when asked to, sends cumulative
  acks batched like the real client (one ack per connection per ``ack_delay``, the client's
  default being 50 ms). The same code
  receives from both servers.
* ``bare_server_main`` is the ceiling: a websockets server that turns each write into the same
  ``appointments_updated`` payload (same ``Event`` serialiser), ``broadcast()``s it, and answers
  the writer. No database, no acks, no queues; acks that arrive are parsed and dropped.

Both talk to the orchestrator through a ``multiprocessing`` pipe; the receivers publish how
many events they applied in a shared counter so the writer can bound the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from synccli.client.tls import client_context
from synccli.clock import utc_now
from synccli.domain.values import Event, Row, iso_ms, parse_iso_ms
from synccli.protocol.messages import Result, dumps
from synccli.tokens import TokenSource

CONNECT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    """What one receiver process saw since the last ``reset``."""

    delivered: int
    gaps: int
    last_at: float
    latencies_ms: array[float]


@dataclass(slots=True)
class _Peer:
    ws: ClientConnection
    date: str
    pos: int = 0
    acked: int = 0
    epoch: str = ""
    rows: dict[str, Any] = field(default_factory=dict)


class _Receivers:
    """Every receiver of one process, and the commands of the orchestrator."""

    def __init__(self, pipe: Connection, applied: Synchronized[int]) -> None:
        self.pipe = pipe
        self.applied = applied
        self.peers: list[_Peer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.total = 0
        self.delivered = 0
        self.gaps = 0
        self.last_at = 0.0
        self.latencies: array[float] = array("d")
        self._committed_text = ""
        self._committed_at = 0.0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, *args = await loop.run_in_executor(None, self.pipe.recv)
            if command == "connect":
                await self._connect(*args)
                self.pipe.send(len(self.peers))
            elif command == "reset":
                self.delivered, self.gaps, self.last_at = 0, 0, 0.0
                self.latencies = array("d")
                self.pipe.send(True)
            elif command == "sample":
                self.pipe.send(Sample(self.delivered, self.gaps, self.last_at, self.latencies))
            elif command == "disconnect":
                await self._disconnect()
                self.pipe.send(True)
            else:
                return

    async def _connect(
        self,
        url: str,
        count: int,
        date: str,
        ack_delay: float | None,
        ca_file: str | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        tls = client_context(url, ca_file)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            for i in range(count):
                headers = None
                if tokens is not None:
                    token = tokens.for_sub(f"r{len(self.peers) + i}").token()
                    headers = {"Authorization": f"Bearer {token}"}
                ws = await connect(
                    url,
                    compression=None,
                    max_queue=None,
                    open_timeout=30,
                    ssl=tls,
                    additional_headers=headers,
                )
                await ws.send(dumps({"type": "subscribe", "date": date}))
                peer = _Peer(ws, date)
                answer = json.loads(await ws.recv())
                while answer["type"] != "subscribed":
                    answer = json.loads(await ws.recv())
                peer.epoch, peer.pos = answer["epoch"], answer["sequenceNum"]
                peer.acked = peer.pos
                self.peers.append(peer)
                self.tasks.append(asyncio.create_task(self._receive(peer)))
        if ack_delay is not None:
            self.tasks.append(asyncio.create_task(self._acker(ack_delay)))

    async def _disconnect(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(peer.ws.close() for peer in self.peers), return_exceptions=True)
        self.peers, self.tasks = [], []

    async def _receive(self, peer: _Peer) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in peer.ws:
                data = json.loads(frame)
                if data["type"] != "appointments_updated":
                    continue
                seq = data["sequenceNum"]
                if seq <= peer.pos:
                    continue  # a duplicate: acked by the next cumulative ack, not applied
                if seq != peer.pos + 1:
                    self.gaps += 1
                row = data["appointment"]
                peer.rows[row["appointmentId"]] = row
                peer.pos = seq
                self._applied(data["committedAt"])

    def _applied(self, committed_text: str) -> None:
        now = time.time()
        if committed_text != self._committed_text:
            # Every receiver of this process sees the same event in turn: parse it once.
            self._committed_text = committed_text
            self._committed_at = parse_iso_ms(committed_text).timestamp()
        self.latencies.append((now - self._committed_at) * 1000)
        self.delivered += 1
        self.total += 1
        self.last_at = now
        self.applied.value = self.total

    async def _acker(self, ack_delay: float) -> None:
        while True:
            await asyncio.sleep(ack_delay)
            for peer in self.peers:
                if peer.pos > peer.acked:
                    peer.acked = peer.pos
                    ack = {"type": "ack", "date": peer.date, "sequenceNum": peer.pos}
                    with contextlib.suppress(ConnectionClosed):
                        await peer.ws.send(dumps(ack | {"epoch": peer.epoch}))


def receiver_main(pipe: Connection, applied: Synchronized[int]) -> None:
    """Entry point of a receiver process: obey ``pipe`` until told to stop."""
    asyncio.run(_Receivers(pipe, applied).serve())


class _BareServer:
    def __init__(self, date: str) -> None:
        self.date = date
        self.epoch = "bare"
        self.seq = 0
        self.versions: dict[str, int] = {}
        self.subscribers: set[ServerConnection] = set()

    async def handle(self, ws: ServerConnection) -> None:
        try:
            async for frame in ws:
                data = json.loads(frame)
                kind = data["type"]
                if kind == "subscribe":
                    self.subscribers.add(ws)
                    answer: dict[str, Any] = {"type": "subscribed", "date": self.date}
                    answer["epoch"] = self.epoch
                    answer |= {"sequenceNum": self.seq, "recovered": False, "snapshot": []}
                    await ws.send(dumps(answer))
                elif kind == "update_appointment_state":
                    await ws.send(self._write(data))
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(ws)

    def _write(self, data: dict[str, Any]) -> str:
        appointment_id = data["appointmentId"]
        version = self.versions.get(appointment_id, 1) + 1
        self.versions[appointment_id] = version
        now = iso_ms(utc_now())
        number = appointment_id.rsplit("-", 1)[-1]
        row = Row(appointment_id, self.date, f"Patient {number}", data["state"], now, version, now)
        self.seq += 1
        event = Event(self.date, self.epoch, self.seq, row, data["requestId"], now)
        broadcast(self.subscribers, event.wire_json(False))
        return dumps(Result(data["requestId"], True, row, self.seq).to_wire())


async def _bare(port: int, date: str, pipe: Connection) -> None:
    bare = _BareServer(date)
    async with serve(bare.handle, "127.0.0.1", port, compression=None, max_queue=64):
        pipe.send(True)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


def bare_server_main(port: int, date: str, pipe: Connection) -> None:
    """Entry point of the bare-broadcast server process: serve until ``pipe`` says stop."""
    asyncio.run(_bare(port, date, pipe))
