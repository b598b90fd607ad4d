"""The bus interface: how a node hears about events other nodes committed.

A bus is a fast path only. The database log is the truth: a node that misses a bus message
sees the sequence gap (the hub holds the early event and wakes the relay) and reads the
missing events from the store; presence (``synccli.bus.presence``) tells when a *last* event
may be missing, and the relay then reads the log. Ordering
per date is the hub's (by sequence number), never the bus's arrival order.

``LocalBus`` is the default for one node: nothing is published, and the relay polls the
database every ``relay_poll_s`` to notice writes of other processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Position

#: Called with every event the bus delivers (other nodes' commits, and this node's own).
OnEvent = Callable[[Event], None]
#: Called when the bus link changes state (lost or back): the relay should run a pass now.
OnChange = Callable[[], None]


class Counters(Protocol):
    """The server's counters, as the bus and the relay update them
    (``synccli.server.metrics.Metrics``)."""

    db_up: bool
    bus_up: bool
    bus_peers: int
    bus_peers_silent: int

    def inc(self, name: str, amount: int = 1) -> None: ...

    def observe_bus_lag(self, seconds: float) -> None: ...


class HubView(Protocol):
    """What the relay needs of the server's hub (``synccli.server.hub.Hub``)."""

    def subscribed_dates(self) -> list[str]: ...

    def head(self, date: str) -> int | None: ...

    def position(self, date: str) -> Position | None: ...

    def has_subscribers(self, date: str) -> bool: ...

    def sync(self, durable: Channel) -> bool: ...

    def fast_forward(self, durable: Channel) -> None: ...


class RelayConfig(Protocol):
    @property
    def max_replay(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BusStatus:
    """What ``/healthz`` says about the bus."""

    kind: str
    up: bool
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"kind": self.kind, "up": self.up}
        if self.detail:
            body["detail"] = self.detail
        return body


class Bus(Protocol):
    """One node's link to the others."""

    kind: str

    async def start(self) -> None:
        """Connect; raise ``InfrastructureError`` when the bus cannot be reached."""

    def publish(self, event: Event) -> None:
        """Send an event this node committed; never blocks and never fails the write."""

    def log_changed(self) -> None:
        """The log changed in a way no event carries (a channel reset): tell the other
        nodes to read the database."""

    async def run(self, on_event: OnEvent, on_change: OnChange) -> None:
        """Consume until cancelled, reconnecting by itself."""

    def status(self) -> BusStatus:
        """Whether the link is up right now."""

    def poll_s(self) -> float | None:
        """Seconds between the relay's database polls while nothing wakes it; None: no
        poll (the bus tells when a pass is needed)."""

    async def close(self) -> None:
        """Release the connections; idempotent."""


class LocalBus:
    """One node, no bus: the relay polls the database often."""

    kind = "local"

    def __init__(self, poll_s: float) -> None:
        self._poll_s = poll_s

    async def start(self) -> None:
        return None

    def publish(self, event: Event) -> None:
        return None

    def log_changed(self) -> None:
        return None  # the next poll reads it

    async def run(self, on_event: OnEvent, on_change: OnChange) -> None:
        return None

    def status(self) -> BusStatus:
        return BusStatus(self.kind, True)

    def poll_s(self) -> float:
        return self._poll_s

    async def close(self) -> None:
        return None


class RelayHost(Protocol):
    """The server as the relay sees it (``synccli.server.services.Services``): the bus sits
    below the server, so it knows it only by this shape."""

    @property
    def config(self) -> RelayConfig: ...

    @property
    def hub(self) -> HubView: ...

    @property
    def metrics(self) -> Counters: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def relay_wake(self) -> asyncio.Event: ...

    async def read_heads(self, dates: list[str]) -> dict[str, Channel]:
        """The durable position of each of ``dates`` (``Store.heads_of``)."""

    async def read_events(self, date: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of ``date`` after ``after`` (``Store.events_since``)."""

    def publish(self, event: Event) -> None:
        """Hand an event read from the log to the hub."""
