"""One WebSocket connection: the I/O around a ``ServerSession``.

The protocol rules live in ``synccli.protocol.server_session``; this adapter only reads
frames and feeds them to the session, sends the frames it returns, runs its store operations
in the database executor, and runs one timer task for the session's deadlines (ack re-sends,
heartbeats). Messages are handled one at a time, in order.

A frame is written at once when nothing is queued ahead of it and the socket keeps up;
otherwise it waits in one queue drained by the sender task, bounded in frames and in bytes
(beyond either → close 4001: the client is too slow and will recover from its position).
Before a replay's next page is read, the connection waits until its queue is below a quarter
of the byte bound, so a replay never piles up in memory. Live events are collected for one
event-loop iteration and written together (``framing.Fanout``); anything else written to the
connection flushes them first. Order is kept either way.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from synccli.clock import utc_now
from synccli.domain.values import Event
from synccli.protocol import messages as m
from synccli.protocol.client_id import client_id_of
from synccli.protocol.server_ops import (
    Effects,
    ReadChannel,
    ReadEvents,
    ReadSnapshot,
    ServerSessionConfig,
    StoreOp,
    Write,
)
from synccli.protocol.server_session import ServerSession
from synccli.server.auth import FULL_GRANT, Grant
from synccli.server.config import ServerConfig
from synccli.server.framing import accepts_shared_frames, write_framed
from synccli.server.services import Services

log = logging.getLogger(__name__)

#: Above this many bytes waiting in the socket's write buffer, frames go through the queue.
WRITE_BUFFER_LIMIT = 64 * 1024
#: Frames (and bytes) the sender writes per wake-up before waiting for the socket to drain.
SEND_BATCH = 64
SEND_BATCH_BYTES = 256 * 1024
#: A connection that queued more than this hands freed memory back to the system at its end.
TRIM_AFTER_BYTES = 1024 * 1024


def release_memory() -> None:
    """Free garbage cycles now and return the C heap's free memory to the system. The
    server collects rarely (``app.GC_THRESHOLD``) and glibc keeps freed memory otherwise,
    so a connection that queued a lot calls this once it is gone."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)


def session_config(config: ServerConfig) -> ServerSessionConfig:
    """The protocol limits of a connection, from the server's configuration."""
    return ServerSessionConfig(
        heartbeat=config.heartbeat_s,
        ack_timeout=config.ack_timeout_s,
        max_retries=config.max_retries,
        malformed_limit=config.malformed_limit,
        max_replay=config.max_replay,
        replay_page=config.replay_page,
        max_subscriptions=config.max_subscriptions,
        message_rate=config.message_rate,
        message_burst=config.message_burst,
        rate_strikes=config.rate_strikes,
        days_back=config.days_back,
        days_ahead=config.days_ahead,
        max_unacked=config.max_unacked,
    )


class Connection:
    """Serves one client. ``run`` returns when the connection is closed."""

    def __init__(self, services: Services, ws: ServerConnection, grant: Grant = FULL_GRANT) -> None:
        self.s = services
        self.ws = ws
        config = services.config
        self._loop = asyncio.get_running_loop()
        # Wall time first: a session clock read after it can only move the expiry later,
        # never before the moment a handshake with the same token is refused.
        wall = time.time()
        now = self._loop.time()
        self.session = ServerSession(
            session_config(config),
            services.hub,
            self,
            now,
            services.policy.send_policy(),
            services.metrics.counts,
            services.metrics.writes_failed,
            today=lambda: utc_now().date(),
            auth=grant.authorisation(now, wall),
        )
        self._ack_timeout = config.ack_timeout_s
        # Who this connection's writes are recorded as when no token names the user.
        self._client_id = None if ws.request is None else client_id_of(ws.request.path)
        self._shapes_live = self.session.shapes_live
        self._accept = self.session.deliver  # bound once: called per delivery
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=config.send_queue)
        self._queue_bytes_limit = config.send_queue_bytes
        self._queued_bytes = 0
        self._peak_bytes = 0
        self._drained = asyncio.Event()  # set when the queue falls below a quarter
        self._wake = asyncio.Event()
        # When the sleeping timer task wakes up anyway: a new deadline later than this
        # needs no wake-up (with the defaults an ack's never does: heartbeats come first).
        self._timer_wake_at = float("inf")
        self._shared_frames = accepts_shared_frames(ws)
        self._fanout = services.fanout
        self._batch: list[bytes] = []  # live payloads waiting for the fan-out flush
        self._flush_soon = self._flush  # bound once: scheduled per loop iteration
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._in_flight = False  # the sender holds frames taken from the queue

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve until the connection closes; always unregisters from the hub."""
        sender = self._sender_task = asyncio.create_task(self._sender())
        timer = asyncio.create_task(self._timer())
        try:
            async for frame in self.ws:
                # After ``abort``, keep reading (and discarding) so the client's close frame
                # is seen and the closing handshake completes without waiting for a timeout.
                if not self._closing:
                    await self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            self.session.close()
            self._batch.clear()
            sender.cancel()
            timer.cancel()
            await asyncio.gather(sender, timer, return_exceptions=True)
            if self._close_task is not None:
                await asyncio.gather(self._close_task, return_exceptions=True)
            self._drop_queue()

    def _drop_queue(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued_bytes = 0
        if self._peak_bytes > TRIM_AFTER_BYTES:
            # Once this handler has returned (``call_soon``).
            self._loop.call_soon(release_memory)

    def abort(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` (from synchronous code paths)."""
        if self._closing:
            return
        self._closing = True
        log.info("closing connection %s: %d %s", self.ws.id, code, reason)
        if self._sender_task is not None:
            # A sender stuck on a full socket would hold the close frame back.
            self._sender_task.cancel()
        self._drained.set()  # a handler waiting to send a replay's next page gives up
        self._close_task = asyncio.create_task(self.ws.close(code, reason))

    async def _sender(self) -> None:
        queue = self._queue
        try:
            while True:
                batch = [await queue.get()]
                self._in_flight = True
                size = len(batch[0])
                while len(batch) < SEND_BATCH and size < SEND_BATCH_BYTES and not queue.empty():
                    batch.append(queue.get_nowait())
                    size += len(batch[-1])
                self._queued_bytes -= size
                if self._queued_bytes <= self._queue_bytes_limit // 4:
                    self._drained.set()
                for frame in batch[:-1]:
                    broadcast((self.ws,), frame, text=True)
                # ``send`` waits until the socket drains: the flow control of the queue.
                await self.ws.send(batch[-1], text=True)
                self._in_flight = False
        except ConnectionClosed:
            pass
        finally:
            self._drained.set()  # nothing will drain the queue any more

    async def _timer(self) -> None:
        session = self.session
        while not self._closing:
            self._apply(session.tick(self._loop.time()), wake=False)
            if self._closing:
                return
            wake_at = session.next_deadline()
            self._wake.clear()
            self._timer_wake_at = wake_at
            try:
                async with asyncio.timeout(max(0.0, wake_at - self._loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ doing effects

    def _apply(self, effects: Effects, wake: bool = True) -> None:
        """Send what the session returned, in order, then close if it says so."""
        for frame in effects.send:
            self._put(frame)
        if effects.wake_relay:
            self.s.relay_wake.set()
        if effects.close is not None:
            self.abort(effects.close.code, effects.close.reason)
        elif wake and self.session.next_deadline() < self._timer_wake_at:
            self._wake.set()  # a new deadline before the timer's next wake-up

    async def _handle(self, frame: str | bytes) -> None:
        session = self.session
        effects = session.receive(frame, self._loop.time())
        while True:
            self._apply(effects)
            op = effects.op
            if op is None:
                return
            if isinstance(op, ReadEvents) and not await self._room_for_a_page():
                self._closing = True  # the peer is gone: abandon the replay
                return
            try:
                result = await self._perform(op)
            except Exception as exc:
                effects = session.fail(exc, self._loop.time())
            else:
                effects = session.resume(result, self._loop.time())

    async def _room_for_a_page(self) -> bool:
        """Wait until the queue is below a quarter of its byte bound: a replay's next page
        is read only then. False when the connection ends meanwhile."""
        while True:
            sender = self._sender_task
            if self._closing or sender is None or sender.done():
                return False
            if self._queued_bytes <= self._queue_bytes_limit // 4:
                return True
            self._drained.clear()
            await self._drained.wait()

    async def _perform(self, op: StoreOp) -> Any:
        """Run one store operation the session asked for."""
        s = self.s
        if isinstance(op, Write):
            request = op.request
            if request.actor is None and self._client_id is not None:
                request = dataclasses.replace(request, actor=self._client_id)
            return await s.write(request)
        if isinstance(op, ReadChannel):
            return await s.db.run(s.store.channel, op.date)
        if isinstance(op, ReadSnapshot):
            return await s.db.run(s.store.snapshot, op.date)
        if isinstance(op, ReadEvents):
            return await s.db.run(s.store.events_since, op.date, op.after, op.limit)
        raise TypeError(f"unknown store operation {op!r}")

    # ------------------------------------------------------------------ sending

    def _writes_now(self) -> bool:
        """Nothing is queued ahead and the socket keeps up: write now, without waking the
        sender task (most of the fan-out throughput is won here)."""
        return (
            not self._closing
            and not self._in_flight
            and self._queue.empty()
            and self.ws.transport.get_write_buffer_size() < WRITE_BUFFER_LIMIT
        )

    def _put(self, frame: bytes) -> None:
        if self._batch:
            self._flush()
        if self._closing:
            return
        if self._writes_now():
            broadcast((self.ws,), frame, text=True)
            return
        queued = self._queued_bytes + len(frame)
        if queued > self._queue_bytes_limit:
            self.s.metrics.inc("slow_consumer_closes_total")
            self.abort(m.CLOSE_SLOW_CONSUMER, "send queue over its byte limit")
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.s.metrics.inc("slow_consumer_closes_total")
            self.abort(m.CLOSE_SLOW_CONSUMER, "send queue full")
            return
        self._queued_bytes = queued
        self._peak_bytes = max(self._peak_bytes, queued)

    def _flush(self) -> None:
        """Write the batched live payloads: as one write of shared frames (see ``framing``)
        when the socket keeps up, else through the queue like any other frame."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self._writes_now():
            write_framed(self.ws, self._fanout.frames.joined(batch))
            return
        for frame in batch:
            self._put(frame)

    # ------------------------------------------------------------------ hub callbacks

    def deliver(self, event: Event, frame: bytes) -> None:
        """A live event from the hub (see ``Subscriber``)."""
        now = self._loop.time()
        if self._shapes_live:
            self._apply(self.session.live(event, now))
            return
        if not self._accept(event, now):
            close = self.session.close_due
            if close is not None:  # too many live events unacked
                self.abort(close.code, close.reason)
            return
        # The hot path of fan-out: batch (or put) the shared frame; the session tracked
        # its ack already.
        if not self._shared_frames:
            self._put(frame)
        else:
            if not self._batch:
                self._fanout.schedule(self._flush_soon)
            self._batch.append(frame)
        if now + self._ack_timeout < self._timer_wake_at:
            self._wake.set()

    def resync(self, date: str, reason: str) -> None:
        """The channel's epoch changed: the client must subscribe again."""
        self._apply(self.session.resync(date, reason))

    def needs(self, date: str) -> int | None:
        """The position the client would resume ``date`` from (see ``Subscriber``)."""
        return self.session.needs(date)
