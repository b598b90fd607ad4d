"""What every part of a running server shares: config, store, hub, counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
