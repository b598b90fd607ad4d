"""The client core and the server core against each other, in memory (no sockets): writes,
acks, a dropped connection and its resume, a lost live event (a gap), an epoch reset. Every
client must apply every event exactly once, in order, and end with the store's rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synccli.protocol import messages as m
from synccli.protocol.channel import Effects as ClientEffects
from synccli.protocol.messages import ClientMessage, parse_server_message
from synccli.protocol.session import ClientSession, SessionConfig
from tests.protocol.server_peer import DATE, Backend, Peer, appointment_id


class Link:
    """One client and its current server session; frames travel when ``pump`` runs, and
    the next live event can be lost in transit (``lose_next_live``)."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.client = ClientSession(SessionConfig(name, (DATE,), gap_timeout=1.0))
        # The records in their on-disk form (docs/history.md).
        self.records: list[dict[str, Any]] = []
        self.peer: Peer | None = None
        self.read = 0
        self.lose_next_live = False
        self.lost: list[int] = []

    def connect(self, now: float) -> None:
        self.peer = Peer(self.backend, now=now)
        self.read = 0
        self.pump(self.client.on_connected(now), now)

    def drop(self) -> None:
        assert self.peer is not None
        self.peer.session.close()
        self.peer = None
        self.client.on_disconnected()

    def write(self, appointment: int, state: str, request_id: str, now: float) -> None:
        effects = self.client.begin_write(appointment_id(appointment), state, request_id, now)
        self.pump(effects, now)

    def pump(self, effects: ClientEffects | None, now: float) -> None:
        """Deliver frames both ways until both sides are quiet, acks included."""
        outbox: list[ClientMessage] = []
        if effects is not None:
            self._take(effects, outbox)
        while self.peer is not None:
            frames = self.peer.frames
            if self.read < len(frames):
                frame = frames[self.read]
                self.read += 1
                message = parse_server_message(frame)
                if self.lose_next_live and isinstance(message, m.EventMessage):
                    self.lose_next_live = False
                    self.lost.append(message.event.seq)
                    continue
                self._take(self.client.on_message(message, now), outbox)
            elif outbox:
                self.peer.send(m.dumps(outbox.pop(0).to_wire()), now)
            elif self.client.acks_due():
                outbox.extend(self.client.flush_acks())
            else:
                return

    def tick(self, now: float) -> None:
        self.pump(self.client.tick(now), now)

    def _take(self, effects: ClientEffects, outbox: list[ClientMessage]) -> None:
        outbox.extend(effects.send)
        self.records.extend(r.to_json() for r in effects.records)

    def applied(self) -> list[tuple[Any, Any]]:
        return [(r["epoch"], r["seq"]) for r in self.records if r["k"] == "apply"]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path, count=6)
    yield b
    b.close()


def test_two_clients_apply_every_event_once_in_order(backend: Backend) -> None:
    a, b = Link(backend, "a"), Link(backend, "b")
    links = (a, b)

    def everyone(now: float) -> None:
        for link in links:
            link.pump(None, now)

    a.connect(0.0)
    b.connect(0.0)
    epoch = backend.store.channel(DATE).epoch

    # Writes from both sides, answered and fanned out; acks empty the trackers.
    a.write(1, "Present", "a-1", 1.0)
    b.write(2, "Present", "b-1", 1.0)
    everyone(1.0)
    assert a.client.stats.writes_ok == 1 and b.client.stats.writes_ok == 1
    for link in links:
        assert link.peer is not None and len(link.peer.session.acks) == 0

    # b drops; a keeps writing; b resumes from its position and gets what it missed.
    b.drop()
    for request_id, appointment, state in (
        ("a-2", 1, "Seated"),
        ("a-3", 3, "Present"),
        ("a-4", 3, "Seated"),
    ):
        a.write(appointment, state, request_id, 2.0)
    b.connect(3.0)
    assert [r["recovered"] for r in b.records if r["k"] == "subscribed"] == [False, True]

    # A live event lost on the way to b: the next one shows the gap, the replay fills it.
    b.lose_next_live = True
    a.write(4, "Present", "a-5", 4.0)
    a.write(5, "Present", "a-6", 4.0)
    everyone(4.0)
    assert b.lost == [6]
    assert [r["k"] for r in b.records if r["k"].startswith("gap")] == ["gap", "gap_recovered"]

    # The date's history is reset: both resubscribe and continue in the new epoch.
    new = backend.reset()
    everyone(5.0)
    a.write(6, "Present", "a-7", 6.0)
    everyone(6.0)

    expected = [(epoch, seq) for seq in range(1, 8)] + [(new, 1)]
    _, rows = backend.store.snapshot(DATE)
    for link in links:
        assert link.applied() == expected, link.client.config.client_id
        assert link.client.stats.resyncs == 1
        view = link.client.channels[DATE]
        assert (view.epoch, view.seq) == (new, 1)
        assert {k: (r.state, r.version) for k, r in view.rows.items()} == {
            r.appointment_id: (r.state, r.version) for r in rows
        }
        assert link.peer is not None and len(link.peer.session.acks) == 0
    assert a.client.stats.writes_ok == 7 and not a.client.pending
