"""Which node each client was on, for a cluster run (``simulate --nodes N``).

A node names itself on the WebSocket upgrade and the client records that name on its
``connect`` (docs/cluster.md). From those records: per client, the time segments it spent
connected to each node (for the timeline), and per node the clients it served, the
connections it accepted and the *moves*: connections of a client whose previous
connection was on another node (a failover, or the balancer's choice after a reconnect).
A run whose clients recorded no node (one server, browsers, ``--url``) has no node view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from synccli.history import Connect, ConnectFailed, Disconnect, Entry, Final, Record

#: ``(start, end, node)``, seconds since the run started.
NodeSegment = tuple[float, float, str]


@dataclass(slots=True)
class _NodeCounts:
    clients: set[str] = field(default_factory=set)
    connects: int = 0
    moved_in: int = 0


@dataclass(slots=True)
class _Client:
    node: str | None = None
    since: float = 0.0
    last: str | None = None
    segments: list[NodeSegment] = field(default_factory=list)
    done: bool = False


@dataclass(slots=True)
class NodeTracker:
    """Fed a run's client records in time order (``add`` or ``feed``); ``summary`` and
    ``lanes`` are what the report shows. One pass, memory per client and per node only;
    times are kept as recorded and made relative to ``w0`` on output."""

    w0: float = 0.0
    _clients: dict[str, _Client] = field(default_factory=dict)
    _nodes: dict[str, _NodeCounts] = field(default_factory=dict)

    def add(self, entry: Entry[Record]) -> None:
        self.feed(entry.w, entry.client, entry.record)

    def feed(self, w: float, client_id: str | None, record: Record) -> None:
        """One record (any kind; only a client's connects, disconnects and final count)."""
        if client_id is None:
            return
        if not isinstance(record, Connect | Disconnect | ConnectFailed | Final):
            return
        client = self._clients.setdefault(client_id, _Client())
        if client.done:
            return
        t = w
        if client.node is not None:
            client.segments.append((client.since, t, client.node))
            client.node = None
        if isinstance(record, Final):
            client.done = True
        elif isinstance(record, Connect) and record.node is not None:
            counts = self._nodes.setdefault(record.node, _NodeCounts())
            counts.clients.add(client_id)
            counts.connects += 1
            if client.last is not None and client.last != record.node:
                counts.moved_in += 1
            client.node, client.since, client.last = record.node, t, record.node

    def lanes(self, duration: float, w0: float | None = None) -> dict[str, list[NodeSegment]]:
        """Per client that was ever on a node, its segments in seconds since ``w0`` (the
        tracker's own by default; open ones end at ``duration``)."""
        base = self.w0 if w0 is None else w0
        out: dict[str, list[NodeSegment]] = {}
        for client_id, client in sorted(self._clients.items()):
            segments = [(a - base, b - base, node) for a, b, node in client.segments]
            if client.node is not None and duration > client.since - base:
                segments.append((client.since - base, duration, client.node))
            if segments:
                out[client_id] = segments
        return out

    def summary(self) -> dict[str, Any] | None:
        """``summary.json``'s ``nodes``: ``{"moves": n, "per_node": {name: {"clients",
        "connects", "moved_in"}}}``; None when no client recorded a node."""
        if not self._nodes:
            return None
        per_node = {
            name: {
                "clients": len(counts.clients),
                "connects": counts.connects,
                "moved_in": counts.moved_in,
            }
            for name, counts in sorted(self._nodes.items(), key=lambda item: _order(item[0]))
        }
        return {"moves": sum(c.moved_in for c in self._nodes.values()), "per_node": per_node}


def node_view(entries: Iterable[Entry[Record]], w0: float) -> NodeTracker:
    """A tracker fed every entry of ``entries`` (in time order)."""
    tracker = NodeTracker(w0)
    for entry in entries:
        tracker.add(entry)
    return tracker


def _order(name: str) -> tuple[int, str]:
    """``node2`` before ``node10``: by the number at the end, then by name."""
    digits = name[len(name.rstrip("0123456789")) :]
    return (int(digits) if digits else 0, name)


def node_order(names: Iterable[str]) -> list[str]:
    """Node names in their natural order (``node1``, ``node2``, … ``node10``)."""
    return sorted(set(names), key=_order)
