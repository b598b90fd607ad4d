"""One WebSocket connection: receive loop, one sender task, one timer task.

The receive loop handles messages one at a time, in order. A frame is written at once when
nothing is queued ahead of it and the socket keeps up; otherwise it waits in one bounded queue
drained by the sender task (full → close 4001: the client is too slow and will recover from
its position). Live events are collected for one event-loop iteration and written together
(``framing.Fanout``); anything else written to the connection flushes them first. Order is
kept either way. The timer task drives ack re-sends (``AckTracker``) and
heartbeats; there is no task or timer per message.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from synccli.domain.values import Event, Position
from synccli.errors import DatabaseUnavailable, ProtocolError
from synccli.protocol import messages as m
from synccli.protocol.acks import AckTracker
from synccli.server.framing import accepts_shared_frames, write_framed
from synccli.server.replay import Replay, replay
from synccli.server.services import Services
from synccli.server.writes import failed, perform_write

log = logging.getLogger(__name__)

#: Above this many bytes waiting in the socket's write buffer, frames go through the queue.
WRITE_BUFFER_LIMIT = 64 * 1024
#: Frames the sender writes per wake-up before waiting for the socket to drain.
SEND_BATCH = 64


@dataclass(slots=True)
class _Subscription:
    epoch: str = ""
    pos: int = 0
    # Live events that arrive while the ``subscribed`` answer is being prepared.
    buffer: list[tuple[Event, bytes]] | None = field(default_factory=list)


class Connection:
    """Serves one client. ``run`` returns when the connection is closed."""

    def __init__(self, services: Services, ws: ServerConnection) -> None:
        self.s = services
        self.ws = ws
        config = services.config
        self.acks = AckTracker(config.ack_timeout_s, config.max_retries)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=config.send_queue)
        self._subs: dict[str, _Subscription] = {}
        self._malformed = 0
        self._wake = asyncio.Event()
        # When the sleeping timer task wakes up anyway: a new ack deadline later than this
        # needs no wake-up (with the defaults it never does: heartbeats come first).
        self._timer_wake_at = float("inf")
        self._shared_frames = accepts_shared_frames(ws)
        self._fanout = services.fanout
        self._batch: list[bytes] = []  # live payloads waiting for the fan-out flush
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._in_flight = False  # the sender holds frames taken from the queue
        self._reorder = services.bugs.reorder_window()
        self._loop = asyncio.get_running_loop()
        self._metrics = services.metrics

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
            for date in list(self._subs):
                self.s.hub.unsubscribe(date, self)
            self._subs.clear()
            self._batch.clear()
            sender.cancel()
            timer.cancel()
            await asyncio.gather(sender, timer, return_exceptions=True)
            if self._close_task is not None:
                await asyncio.gather(self._close_task, return_exceptions=True)

    def abort(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` (from synchronous code paths)."""
        if self._closing:
            return
        self._closing = True
        log.info("closing connection %s: %d %s", self.ws.id, code, reason)
        if self._sender_task is not None:
            # A sender stuck on a full socket would hold the close frame back.
            self._sender_task.cancel()
        self._close_task = asyncio.create_task(self.ws.close(code, reason))

    async def _sender(self) -> None:
        queue = self._queue
        try:
            while True:
                batch = [await queue.get()]
                self._in_flight = True
                while len(batch) < SEND_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                for frame in batch[:-1]:
                    broadcast((self.ws,), frame, text=True)
                # ``send`` waits until the socket drains: the flow control of the queue.
                await self.ws.send(batch[-1], text=True)
                self._in_flight = False
        except ConnectionClosed:
            pass

    async def _timer(self) -> None:
        heartbeat_s = self.s.config.heartbeat_s
        next_heartbeat = self._loop.time() + heartbeat_s
        while not self._closing:
            now = self._loop.time()
            before = (self.acks.counters.retries, self.acks.counters.timeouts)
            for event in self.acks.due(now):
                self._put(event.wire_json(False).encode())
            exhausted = self.acks.exhausted(now)
            self.s.metrics.inc("retries_total", self.acks.counters.retries - before[0])
            self.s.metrics.inc("ack_timeouts_total", self.acks.counters.timeouts - before[1])
            if exhausted:
                self.s.metrics.inc("ack_exhausted_closes_total")
                self.abort(m.CLOSE_ACK_RETRIES, "ack retries exhausted")
                return
            if now >= next_heartbeat:
                self._send_heartbeat()
                next_heartbeat = now + heartbeat_s
            wake_at = next_heartbeat
            if self._reorder is not None:
                self._send_live(self._reorder.due(now))
                if self._reorder.deadline is not None:
                    wake_at = min(wake_at, self._reorder.deadline)
            deadline = self.acks.next_deadline()
            if deadline is not None:
                wake_at = min(wake_at, deadline)
            self._wake.clear()
            self._timer_wake_at = wake_at
            try:
                async with asyncio.timeout(max(0.0, wake_at - self._loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

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
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.s.metrics.inc("slow_consumer_closes_total")
            self.abort(m.CLOSE_SLOW_CONSUMER, "send queue full")

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

    def _send(self, message: Any) -> None:
        self._put(m.dumps(message.to_wire()).encode())

    def _track(self, events: list[Event]) -> None:
        """Start the ack deadlines of events that were just queued or sent."""
        now = self._loop.time()
        if now + self.acks.ack_timeout < self._timer_wake_at:
            self._wake.set()
        for event in events:
            self.acks.track(event, now)
        self.s.metrics.inc("events_sent_total", len(events))

    def _send_heartbeat(self) -> None:
        positions: dict[str, Position] = {}
        for date, sub in self._subs.items():
            if sub.buffer is not None:
                continue
            position = self.s.hub.position(date)
            if position is not None and position.epoch == sub.epoch:
                positions[date] = position
        self._send(m.Heartbeat(positions))

    def _live_with_bugs(self, event: Event) -> None:
        if self._reorder is None:
            self._send_live([event])
            return
        opens_window = not self._reorder.held
        self._send_live(self._reorder.add(event, self._loop.time()))
        if opens_window:
            self._wake.set()  # the timer must wake for the window's flush deadline

    def _send_live(self, events: list[Event]) -> None:
        """Send live events as the injected bugs say (twice each with duplicate-sends)."""
        copies = 2 if self.s.bugs.duplicate_sends else 1
        for event in events:
            frame = event.wire_json(False).encode()
            for _ in range(copies):
                self._put(frame)
        if events:
            self._track(events)

    # ------------------------------------------------------------------ hub callbacks

    def deliver(self, event: Event, frame: bytes) -> None:
        """A live event from the hub (see ``Subscriber``)."""
        sub = self._subs.get(event.date)
        if sub is None:
            return
        if sub.buffer is not None:
            sub.buffer.append((event, frame))
            return
        if event.epoch != sub.epoch or event.seq <= sub.pos:
            return  # already covered by the snapshot or replay this client got
        sub.pos = event.seq
        if self.s.bugs:
            self._live_with_bugs(event)
            return
        # The hot path of fan-out, kept inline: batch (or put), then track the ack at once,
        # so that a later unsubscribe or resync drops it with the others of its date.
        if not self._shared_frames:
            self._put(frame)
        else:
            if not self._batch:
                self._fanout.schedule(self._flush)
            self._batch.append(frame)
        now = self._loop.time()
        if now + self.acks.ack_timeout < self._timer_wake_at:
            self._wake.set()
        self.acks.track(event, now)
        self._metrics.counts["events_sent_total"] += 1

    def resync(self, date: str, reason: str) -> None:
        """The channel's epoch changed: the client must subscribe again."""
        if self._subs.pop(date, None) is not None:
            self.acks.drop_date(date)
            self.s.metrics.inc("resyncs_total")
            self._send(m.ResyncRequired(date, reason))

    # ------------------------------------------------------------------ receiving

    async def _handle(self, frame: str | bytes) -> None:
        try:
            data = m.loads(frame)
            if data["type"] == m.UpdateAppointmentState.type and _request_id(data):
                await self._write(data)
                return
            message = m.parse_client_message(data)
        except ProtocolError as exc:
            self._malformed_message(exc)
            return
        self._malformed = 0
        try:
            await self._dispatch(message)
        except DatabaseUnavailable as exc:
            self.s.metrics.inc("db_errors_total")
            self._send(
                m.ErrorMessage(
                    "db_unavailable", f"the database is unavailable: {exc}", message.type
                )
            )
        except Exception:
            log.exception("internal error handling %s", message.type)
            self.s.metrics.inc("internal_errors_total")
            self._send(
                m.ErrorMessage(
                    "internal", "internal server error; the request was not served", message.type
                )
            )

    def _malformed_message(self, exc: ProtocolError) -> None:
        self._malformed += 1
        self.s.metrics.inc("malformed_total")
        log.info("malformed message on %s: %s %r", self.ws.id, exc.code, exc.message)
        self._send(m.ErrorMessage(exc.code, exc.message))
        if self._malformed > self.s.config.malformed_limit:
            self.s.metrics.inc("policy_closes_total")
            self.abort(m.CLOSE_POLICY, "too many malformed messages")

    async def _write(self, data: dict[str, Any]) -> None:
        request_id: str = data["requestId"]
        try:
            request = m.UpdateAppointmentState.parse(data)
        except ProtocolError as exc:
            self._malformed += 1
            self.s.metrics.inc("malformed_total")
            self._send(failed(self.s, request_id, exc.code, exc.message))
            return
        try:
            result = await perform_write(self.s, request)
        except Exception:
            log.exception("internal error in write %r", request_id)
            self.s.metrics.inc("internal_errors_total")
            result = failed(
                self.s, request_id, "internal", "internal server error; nothing was stored"
            )
        self._malformed = 0
        self._send(result)

    async def _dispatch(self, message: m.ClientMessage) -> None:
        if isinstance(message, m.Subscribe):
            await self._subscribe(message)
        elif isinstance(message, m.Unsubscribe):
            if self._subs.pop(message.date, None) is not None:
                self.s.hub.unsubscribe(message.date, self)
                self.acks.drop_date(message.date)
        elif isinstance(message, m.Ack):
            self._ack(message)
        elif isinstance(message, m.RequestMissedEvents):
            await self._missed(message)
        elif isinstance(message, m.GetSnapshot):
            channel, rows = await self.s.db.run(self.s.store.snapshot, message.date)
            self.s.metrics.inc("snapshots_total")
            self._send(m.Snapshot(message.date, channel.epoch, channel.head_seq, rows))

    def _ack(self, message: m.Ack) -> None:
        before = self.acks.counters.acked
        if message.message_id is not None:
            self.acks.ack_message(message.message_id)
        elif message.date is not None and message.seq is not None:
            self.acks.ack_upto(message.date, message.seq, message.epoch)
        self.s.metrics.inc("acks_total", self.acks.counters.acked - before)

    async def _subscribe(self, message: m.Subscribe) -> None:
        date, hub = message.date, self.s.hub
        if self._subs.pop(date, None) is not None:
            hub.unsubscribe(date, self)
            self.acks.drop_date(date)
        if not hub.known(date):
            channel = await self.s.db.run(self.s.store.channel, date)
            if hub.sync(channel):
                self.s.relay_wake.set()
        # Register before reading (guarantee 5): live events meanwhile go to the buffer.
        sub = _Subscription()
        self._subs[date] = sub
        hub.subscribe(date, self)
        try:
            answer = await self._subscribe_answer(message)
        except BaseException:
            if self._subs.get(date) is sub:
                del self._subs[date]
                hub.unsubscribe(date, self)
            raise
        if self._subs.get(date) is not sub:
            return  # the epoch changed meanwhile; the client was told to resync
        sub.epoch, sub.pos = answer.epoch, answer.seq
        self._send(answer)
        self._track(answer.events)
        buffered, sub.buffer = sub.buffer or [], None
        for event, frame in buffered:
            self.deliver(event, frame)

    async def _subscribe_answer(self, message: m.Subscribe) -> m.Subscribed:
        date, since = message.date, message.since
        if since is not None:
            outcome = await replay(self.s, date, since.epoch, since.seq)
            if isinstance(outcome, Replay):
                self.s.metrics.inc("replays_total", len(outcome.events))
                position = outcome.position
                return m.Subscribed(date, position.epoch, position.seq, True, outcome.events)
            self.s.metrics.inc("resyncs_total")
        channel, rows = await self.s.db.run(self.s.store.snapshot, date)
        self.s.metrics.inc("snapshots_total")
        return m.Subscribed(date, channel.epoch, channel.head_seq, False, snapshot=rows)

    async def _missed(self, message: m.RequestMissedEvents) -> None:
        outcome = await replay(self.s, message.date, message.epoch, message.last_seq)
        if isinstance(outcome, str):
            self.s.metrics.inc("resyncs_total")
            self._send(m.ResyncRequired(message.date, outcome))
            return
        self.s.metrics.inc("replays_total", len(outcome.events))
        position = outcome.position
        self._send(m.MissedEvents(message.date, position.epoch, position.seq, outcome.events))
        self._track(outcome.events)


def _request_id(data: dict[str, Any]) -> bool:
    """Whether a write carries a usable string requestId (then it is answered by ``result``)."""
    request_id = data.get("requestId")
    return m.valid_id(request_id)
