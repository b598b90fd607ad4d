"""How nodes share committed events: the polling relay (one node) or a Redis bus.

``open_bus(None, …)`` is the local default; ``open_bus("redis://HOST:PORT/DB", …)`` the Redis
bus. Either way the relay (``Relay``) catches the hub up with the database log.
"""

from __future__ import annotations

from synccli.bus.base import (
    Bus,
    BusStatus,
    Counters,
    HubView,
    LocalBus,
    OnChange,
    OnEvent,
    RelayHost,
)
from synccli.bus.relay import Relay

__all__ = [
    "Bus",
    "BusStatus",
    "Counters",
    "HubView",
    "LocalBus",
    "OnChange",
    "OnEvent",
    "Relay",
    "RelayHost",
    "open_bus",
]


def open_bus(
    url: str | None,
    metrics: Counters,
    fast_poll_s: float,
    safety_poll_s: float,
    node_name: str | None = None,
) -> Bus:
    """The bus at ``url`` (not yet started), or the local one when ``url`` is None."""
    if url is None:
        return LocalBus(fast_poll_s)
    from synccli.bus.redis_bus import RedisBus

    return RedisBus(url, metrics, fast_poll_s, safety_poll_s, node_name)
