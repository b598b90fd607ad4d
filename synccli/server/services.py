"""What every part of a running server shares: config, store, hub, counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from synccli.bus.base import Bus
from synccli.domain.channels import Channel
from synccli.domain.values import Event
from synccli.server.bugs import NO_BUGS, ServerPolicy, WritePath
from synccli.server.config import ServerConfig
from synccli.server.db import DbRunner
from synccli.server.framing import Fanout
from synccli.server.hub import Hub
from synccli.server.metrics import Metrics
from synccli.store import Store


@dataclass(slots=True)
class Services:
    """One per server; built by ``SyncServer.start``."""

    config: ServerConfig
    store: Store  # what the server reads and writes through (``policy.wrap_store``)
    db: DbRunner
    hub: Hub
    metrics: Metrics
    bus: Bus
    policy: ServerPolicy = NO_BUGS
    #: The write path (``writes.perform_write`` through ``policy.wrap_write``); set by
    #: ``SyncServer.start``.
    write: WritePath = field(init=False)
    relay_wake: asyncio.Event = field(default_factory=asyncio.Event)
    fanout: Fanout = field(default_factory=Fanout)

    def publish(self, event: Event) -> None:
        """Hand a committed event to the hub; wake the relay if a gap must be filled."""
        if self.hub.publish(event):
            self.relay_wake.set()

    async def read_heads(self, dates: list[str]) -> dict[str, Channel]:
        """The durable position of each of ``dates``, read in the database thread."""
        return await self.db.run(self.store.heads_of, dates)

    async def read_events(self, date: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of ``date`` after ``after``, read in the database thread."""
        return await self.db.run(self.store.events_since, date, after, limit)

    def committed(self, event: Event) -> None:
        """An event this node committed: to its own hub, then to the other nodes."""
        self.publish(event)
        self.bus.publish(event)

    def heard(self, event: Event) -> None:
        """An event another node committed, heard on the bus. A date the hub does not know
        yet is started from it (a subscribe that reads the database meanwhile then finds the
        channel ahead, never behind); one of another epoch wakes the relay, which resets."""
        position = self.hub.position(event.date)
        if position is not None and position.epoch != event.epoch:
            self.relay_wake.set()
            return
        self.publish(event)
