"""``SimulatedClient``: the asyncio adapter that moves frames between a WebSocket and a
``ClientSession``.

Per connection there are two tasks and no more: the reader (parses each frame and feeds
the session) and the pump (sends what the session wants sent, flushes cumulative acks, and
drives ``session.tick`` with one timer). The reader only wakes the pump, so every frame
that arrives while the pump is waiting to run is acknowledged by one ack per date: acks
are batched per burst of frames without any timer of their own. A writer client has one
more long-lived task that issues writes at its rate.

Reconnects follow ``protocol.backoff.Reconnect`` (fast probes while the attempt is refused
at once, full-jitter exponential backoff otherwise) and resume every channel with ``since``.
Everything that happens is appended to the history (docs/history.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
)

from synccli.client.tls import client_context
from synccli.domain.states import allowed_targets
from synccli.domain.values import Position
from synccli.errors import ProtocolError
from synccli.history import records as rec
from synccli.protocol import node
from synccli.protocol.backoff import Reconnect, ReconnectConfig
from synccli.protocol.channel import SYNCED, Effects
from synccli.protocol.client_id import with_client_id
from synccli.protocol.messages import ClientMessage, ServerMessage, dumps, parse_server_message
from synccli.protocol.session import ClientSession, SessionConfig
from synccli.tokens import TokenSource

# A connection that lived this long counts as healthy: the backoff starts over.
HEALTHY_AFTER_S = 1.0
# A connection closed or reset before any HTTP answer, this fast, was refused too (a proxy
# with no server behind it closes at once). Slower, a server may have done the handshake
# (a proxy that resets after 100 ms): that grows the backoff, so probes never storm it.
REFUSED_WITHIN_S = 0.05
DEFAULT_PROBE_S = 0.5
MAX_FRAME = 64 * 1024 * 1024
# Closing must not hang on a dead network (a fault may still be active at the end).
CLOSE_TIMEOUT_S = 2.0
PARSE_CACHE_SIZE = 4096
LARGE_FRAME = 4096
PARSE_CACHE_LARGE = 8


class HistorySink(Protocol):
    """Where records go (``synccli.history.HistoryWriter``)."""

    def write(self, client_id: str | None, record: rec.Record) -> None: ...


# How long a client holds back its cumulative ack so one ack covers several events. Far
# below the server's 5 s ack timeout; at 50 ms every event of a 20 events/s channel got an
# ack of its own, and acks cost the server more than the fan-out (benchmarks/fanout.py).
DEFAULT_ACK_DELAY_S = 0.25


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One simulated client: its protocol behaviour (``session``: id, dates, bugs, time-outs)
    and its connection. ``write_rate`` > 0 makes it a writer (writes per second)."""

    session: SessionConfig
    url: str
    seed: int
    token: str | None = None
    #: Mints a fresh per-user token for every connection attempt (instead of ``token``).
    tokens: TokenSource | None = None
    #: CA certificate(s) to trust for a wss:// URL (default: the system's).
    ca_file: str | None = None
    write_rate: float = 0.0
    expected_version: bool = False
    open_timeout: float = 5.0
    ack_delay: float = DEFAULT_ACK_DELAY_S
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    #: While attempts are refused at once, retry every ``probe/2``..``probe`` seconds;
    #: ``None``: every failure grows the backoff (the behaviour before probing).
    probe: float | None = DEFAULT_PROBE_S
    #: When given, the connection attempts cycle through these (``url`` is the first).
    urls: tuple[str, ...] = ()

    def reconnect(self) -> ReconnectConfig:
        probe = None if self.probe is None else min(self.probe, self.backoff_max)
        return ReconnectConfig(self.backoff_initial, self.backoff_max, probe=probe)


class SimulatedClient:
    """A reconnecting protocol client that records everything it applies."""

    def __init__(self, config: ClientConfig, history: HistorySink) -> None:
        self.config = config
        self.history = history
        self.rng = random.Random(config.seed)
        self.client_id = config.session.client_id
        self.session = ClientSession(config.session)
        self.attempts = 0
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._outbox: list[ClientMessage] = []
        self._wake = asyncio.Event()
        # The pump's own state (one pump per connection): when its delayed ack is due, the
        # time it sleeps until (None: until woken) and the timer that wakes it then.
        self._ack_at: float | None = None
        self._pump_until: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing = asyncio.Event()
        self._writing = False
        self._write_waiters: dict[str, asyncio.Future[bool]] = {}
        self._writes = 0
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self.session.connected

    def start(self, delay: float = 0.0) -> None:
        """Start the reconnect loop after ``delay`` seconds (and the write loop of a writer)."""
        self._task = asyncio.create_task(self._run(delay), name=f"client-{self.client_id}")
        if self.config.write_rate > 0:
            self._writing = True
            self._writer = asyncio.create_task(self._write_loop())

    async def stop_writing(self) -> None:
        """Issue no new writes. A write in flight stays pending in the session, which
        settles it (``caught_up`` waits for that)."""
        self._writing = False
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def caught_up(self, heads: dict[str, Position]) -> bool:
        """Synced on every date (at or past its head when known), no write unanswered."""
        if not self.connected or self.session.pending:
            return False
        return all(
            channel.caught_up(heads[date]) if date in heads else channel.status == SYNCED
            for date, channel in self.session.channels.items()
        )

    def expect_heads(self, heads: dict[str, Position]) -> None:
        """Tell the session where the channels stand (as a heartbeat would)."""
        if not self.connected:
            return
        now = time.monotonic()
        for date, head in heads.items():
            channel = self.session.channels.get(date)
            if channel is not None:
                self._handle(channel.on_head(head, now))
        self._wake.set()

    def known_heads(self) -> dict[str, Position]:
        """The positions this client has reached (used when no database is available)."""
        return {
            date: position
            for date, channel in self.session.channels.items()
            if (position := channel.position) is not None
        }

    def write_final(self) -> None:
        """Record the ``final`` state of every date."""
        for channel in self.session.channels.values():
            self.history.write(self.client_id, channel.final_record())

    async def close(self) -> None:
        """Stop writing, close the connection (1000) and wait for the loop to end."""
        await self.stop_writing()
        self._closing.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await self._task

    # ------------------------------------------------------------------ connection loop

    async def _run(self, delay: float) -> None:
        await self._pause(delay)
        config = self.config
        delays = Reconnect(config.reconnect(), self.rng)
        tls = client_context(config.url, config.ca_file)
        while not self._closing.is_set():
            self.attempts += 1
            token = config.tokens.token() if config.tokens is not None else config.token
            headers = {"Authorization": f"Bearer {token}"} if token else None
            started = time.monotonic()
            try:
                url = (
                    config.urls[(self.attempts - 1) % len(config.urls)]
                    if config.urls
                    else config.url
                )
                ws = await connect(
                    # The client id names the actor of this client's writes (no JWT).
                    with_client_id(url, self.client_id),
                    additional_headers=headers,
                    ssl=tls,
                    compression=None,
                    open_timeout=config.open_timeout,
                    close_timeout=CLOSE_TIMEOUT_S,
                    max_size=MAX_FRAME,
                    proxy=None,
                )
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self._record(rec.ConnectFailed(self.attempts, _describe(exc)))
                refused = is_refusal(exc, time.monotonic() - started)
                await self._pause(delays.after_refused() if refused else delays.after_failure())
                continue
            if self._closing.is_set():
                # close() ran while the handshake was in flight.
                await ws.close()
                return
            self.connects += 1
            answer = ws.response
            self._record(
                rec.Connect(self.attempts, answer.headers.get(node.HEADER) if answer else None)
            )
            opened = time.monotonic()
            await self._serve(ws)
            if time.monotonic() - opened >= HEALTHY_AFTER_S:
                delays.healthy()
            if not self._closing.is_set():
                await self._pause(delays.after_failure())

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._outbox.clear()
        self._handle(self.session.on_connected(time.monotonic()))
        self._wake.set()
        pump = asyncio.create_task(self._pump(ws))
        try:
            async for frame in ws:
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._ws = None
            self.session.on_disconnected()
            self._record(rec.Disconnect(ws.close_code, ws.close_reason or ""))

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = parse_frame(frame)
        except ProtocolError as exc:
            self._handle(self.session.on_malformed(exc, frame))
            self._wake.set()
            return
        self._handle(self.session.on_message(message, time.monotonic()))
        self._poke()

    def _poke(self) -> None:
        """Wake the pump only if it has something to do sooner than it planned: most events
        only extend an ack that is already due, and a wake-up per event per client is a
        large share of a fleet's CPU."""
        if self._outbox or (self._ack_at is None and self.session.acks_due()):
            self._wake.set()
            return
        deadline = self.session.next_deadline()
        if deadline is not None and (self._pump_until is None or deadline < self._pump_until):
            self._wake.set()

    async def _pump(self, ws: ClientConnection) -> None:
        """Send the outbox and the batched acks; run ``tick`` at the session's deadline.

        Acks wait up to ``ack_delay`` (like TCP's delayed ack) unless something else is
        being sent anyway: far below the server's ack timeout, and at a high event rate one
        cumulative ack then covers many events. One timer per client wakes the pump at its
        next deadline; it is moved only when that deadline changes."""
        self._ack_at = None
        self._pump_until = None
        try:
            while True:
                deadlines = [
                    d for d in (self.session.next_deadline(), self._ack_at) if d is not None
                ]
                until = min(deadlines) if deadlines else None
                if until is None or until > time.monotonic():
                    self._sleep_until(until)
                    await self._wake.wait()
                self._wake.clear()
                now = time.monotonic()
                self._handle(self.session.tick(now))
                outgoing = self._outbox
                self._outbox = []
                if outgoing or (self._ack_at is not None and now >= self._ack_at):
                    outgoing.extend(self.session.flush_acks())
                    self._ack_at = None
                elif self._ack_at is None and self.session.acks_due():
                    self._ack_at = now + self.config.ack_delay
                try:
                    for message in outgoing:
                        await ws.send(dumps(message.to_wire()))
                except ConnectionClosed:
                    return
        finally:
            self._sleep_until(None)
            self._ack_at = None

    def _sleep_until(self, until: float | None) -> None:
        """Have the timer wake the pump at ``until`` (monotonic; None: no timer)."""
        self._pump_until = until
        timer = self._timer
        if timer is not None and until is not None and timer.when() == until:
            return
        if timer is not None:
            timer.cancel()
        # The loop's clock is time.monotonic, the session's too.
        self._timer = (
            None if until is None else asyncio.get_running_loop().call_at(until, self._fire)
        )

    def _fire(self) -> None:
        self._timer = None
        self._wake.set()

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closing.wait()

    # ------------------------------------------------------------------ writes

    async def _write_loop(self) -> None:
        """Writes at ``write_rate``: one in flight at a time, each waited for (bounded)."""
        config = self.config
        interval = 1.0 / config.write_rate
        # Bounded: the session gives a write up after its last attempt times out.
        session = config.session
        wait_limit = session.write_timeout * (session.max_write_attempts + 1)
        next_at = time.monotonic() + self.rng.uniform(0, interval)
        while self._writing:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            # After a stall, do not burst to catch up: the rate is a ceiling.
            next_at = max(next_at + interval, time.monotonic())
            if not self._writing or not self.connected:
                continue
            choice = self._pick_write()
            if choice is None:
                continue
            appointment_id, state, version = choice
            self._writes += 1
            request_id = f"{self.client_id}-{self._writes}"
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._write_waiters[request_id] = future
            self._handle(
                self.session.begin_write(
                    appointment_id, state, request_id, time.monotonic(), version
                )
            )
            self._wake.set()
            try:
                async with asyncio.timeout(wait_limit):
                    await future
            except TimeoutError:
                pass
            finally:
                self._write_waiters.pop(request_id, None)

    def _pick_write(self) -> tuple[str, str, int | None] | None:
        """A random appointment of a synced date, not already being written, and a valid
        next state for what this client sees."""
        channels = [c for c in self.session.channels.values() if c.status == SYNCED and c.rows]
        if not channels:
            return None
        channel = self.rng.choice(channels)
        appointment_id = self.rng.choice(list(channel.rows))
        if appointment_id in channel.optimistic:
            return None
        row = channel.rows[appointment_id]
        targets = allowed_targets(row.state)
        if not targets:
            return None
        version = row.version if self.config.expected_version else None
        return appointment_id, self.rng.choice(targets), version

    # ------------------------------------------------------------------ effects

    def _handle(self, effects: Effects) -> None:
        self._outbox.extend(effects.send)
        client_id = self.client_id
        for record in effects.records:
            self.history.write(client_id, record)
            if isinstance(record, rec.WriteResult):
                future = self._write_waiters.get(record.request_id)
                if future is not None and not future.done():
                    future.set_result(record.ok)

    def _record(self, record: rec.Record) -> None:
        self.history.write(self.client_id, record)


_parsed: dict[str | bytes, ServerMessage] = {}
_parsed_large: dict[str | bytes, ServerMessage] = {}


def parse_frame(frame: str | bytes) -> ServerMessage:
    """``parse_server_message`` with a small shared cache.

    The server serialises an event (and a snapshot at a given position) once and sends the
    same bytes to every client, so the clients of one process share the parsed, immutable
    message instead of each decoding it: with hundreds of clients per process this is most
    of the parsing cost. Large frames (snapshots, replays) get their own, shorter cache."""
    cache, limit = (
        (_parsed, PARSE_CACHE_SIZE)
        if len(frame) <= LARGE_FRAME
        else (_parsed_large, PARSE_CACHE_LARGE)
    )
    message = cache.get(frame)
    if message is None:
        message = parse_server_message(frame)
        if len(cache) >= limit:
            # Oldest first: dicts keep insertion order.
            del cache[next(iter(cache))]
        cache[frame] = message
    return message


def is_refusal(exc: BaseException, elapsed: float) -> bool:
    """The attempt, which failed after ``elapsed`` seconds, cost no server anything: the
    kernel refused it, or it was closed or reset before any HTTP answer within
    ``REFUSED_WITHIN_S`` (a proxy whose server is gone). Time-outs and HTTP errors are
    answers from a server that is there."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, TimeoutError):
        return False
    return isinstance(exc, OSError | InvalidMessage) and elapsed < REFUSED_WITHIN_S


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
