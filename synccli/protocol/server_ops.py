"""What a ``ServerSession`` is given and asks its adapter to do, and its sending hook.

The session never touches a socket, a clock or the database. Each call returns ``Effects``:
frames to send (in order), at most one close, and at most one store operation. The adapter
runs the operation (in its database executor) and feeds the result back with
``ServerSession.resume`` (or the exception with ``ServerSession.fail``), which returns the
next ``Effects``. A connection serves one request at a time, so one operation is pending at
most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Position
from synccli.protocol.limits import MAX_UNACKED
from synccli.protocol.messages import UpdateAppointmentState


class Subscriber(Protocol):
    """What the hub calls on a connection (``synccli.server.hub.Subscriber``)."""

    def deliver(self, event: Event, frame: bytes) -> None: ...

    def resync(self, date: str, reason: str) -> None: ...

    def needs(self, date: str) -> int | None: ...


class Channels(Protocol):
    """What the session needs from the hub (pure bookkeeping, shared by connections)."""

    def known(self, date: str) -> bool: ...

    def sync(self, durable: Channel) -> bool: ...

    def position(self, date: str) -> Position | None: ...

    def cached(self, date: str, epoch: str, after: int) -> list[Event] | None: ...

    def subscribe(self, date: str, subscriber: Subscriber) -> None: ...

    def unsubscribe(self, date: str, subscriber: Subscriber) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerSessionConfig:
    """The protocol limits of one connection (from ``ServerConfig``)."""

    heartbeat: float = 5.0
    ack_timeout: float = 5.0
    max_retries: int = 3
    malformed_limit: int = 10
    max_replay: int = 10000
    #: Events per replay page (``subscribed``/``missed_events`` frame, one log read).
    replay_page: int = 500
    #: Dates one connection may subscribe to at once.
    max_subscriptions: int = 100
    #: Client messages per second (token bucket) and the burst above it.
    message_rate: float = 1000.0
    message_burst: float = 2000.0
    #: Refused messages without a quiet second before the connection is closed 1008.
    rate_strikes: int = 100
    #: The dates a client may read: this many days before today and after it.
    days_back: int = 366
    days_ahead: int = 731
    #: Live events awaiting an ack before the connection is closed 4002.
    max_unacked: int = MAX_UNACKED


@dataclass(frozen=True, slots=True)
class ReadChannel:
    """``Store.channel(date)``; resume with the ``Channel``."""

    date: str


@dataclass(frozen=True, slots=True)
class ReadSnapshot:
    """``Store.snapshot(date)``; resume with its ``(Channel, rows)``."""

    date: str


@dataclass(frozen=True, slots=True)
class ReadEvents:
    """``Store.events_since(date, after, limit)``; resume with the events."""

    date: str
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class Write:
    """The server's write path (commit, publish); resume with its ``Result``."""

    request: UpdateAppointmentState


StoreOp = ReadChannel | ReadSnapshot | ReadEvents | Write


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code and reason."""

    code: int
    reason: str


@dataclass(slots=True)
class Effects:
    """What to do now: send ``send`` in order, then close or run ``op``; wake the relay
    when a channel read showed the hub behind the log."""

    send: list[bytes] = field(default_factory=list)
    close: Close | None = None
    op: StoreOp | None = None
    wake_relay: bool = False


class SendPolicy:
    """How a session shapes the events it sends. This one sends every event once, as it
    is; the server's bug injection (``synccli.server.bugs``) subclasses it, so the
    session's own paths carry no bug switches. With ``shapes_live`` False, the live path
    never calls ``live``, ``due`` or ``deadline`` (the fan-out fast path)."""

    shapes_live = False
    copies = 1

    def replay(self, events: list[Event]) -> list[Event]:
        """The events of a replay, as sent."""
        return events

    def live(self, event: Event, now: float) -> list[Event]:
        """The live events to send now that ``event`` arrived."""
        return [event]

    def due(self, now: float) -> list[Event]:
        """Live events held back whose time has come."""
        return []

    def deadline(self) -> float | None:
        """When ``due`` has something to release, or None."""
        return None


SEND_AS_IS = SendPolicy()
