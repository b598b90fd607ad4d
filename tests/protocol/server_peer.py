"""Driving ``ServerSession``s without sockets: a real SQLite store and a real ``Hub`` run the
store operations synchronously, as the server's adapter does through its executor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synccli.domain.channels import WriteRequest
from synccli.domain.values import Event
from synccli.errors import WriteRejected
from synccli.protocol.authz import FULL_ACCESS, Authorisation
from synccli.protocol.messages import Result
from synccli.protocol.server_ops import (
    SEND_AS_IS,
    Close,
    Effects,
    ReadChannel,
    ReadEvents,
    ReadSnapshot,
    SendPolicy,
    ServerSessionConfig,
    StoreOp,
    Write,
)
from synccli.protocol.server_session import ServerSession
from synccli.server.hub import Hub
from synccli.store import Store, open_store

DATE = "2026-11-26"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Backend:
    """The shared part of a server: store and hub. ``perform`` runs one store operation."""

    def __init__(self, folder: Path, count: int = 10, tail: int = 2048) -> None:
        self.store: Store = open_store(f"sqlite:///{folder / 'sync.db'}")
        self.store.init_schema()
        self.store.seed(DATE, count)
        self.hub = Hub(tail)
        self.fail_next: Exception | None = None

    def perform(self, op: StoreOp) -> Any:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        if isinstance(op, ReadChannel):
            return self.store.channel(op.date)
        if isinstance(op, ReadSnapshot):
            return self.store.snapshot(op.date)
        if isinstance(op, ReadEvents):
            return self.store.events_since(op.date, op.after, op.limit)
        assert isinstance(op, Write)
        try:
            outcome = self.store.write(op.request.to_request(), NOW)
        except WriteRejected as exc:
            return Result(op.request.request_id, False, error_code=exc.code)
        if outcome.event is not None:
            self.hub.publish(outcome.event)
        return Result(op.request.request_id, True, outcome.row, outcome.seq)

    def commit(self, appointment: int, state: str, request_id: str) -> Event:
        """A write by someone else (no session), published to the hub."""
        outcome = self.store.write(
            WriteRequest(request_id, appointment_id(appointment), state), NOW
        )
        assert outcome.event is not None
        self.hub.publish(outcome.event)
        return outcome.event

    def reset(self) -> str:
        """A new epoch for ``DATE``: the hub tells every subscriber to resync."""
        channel = self.store.reset_channel(DATE)
        self.hub.reset(channel)
        return channel.epoch

    def close(self) -> None:
        self.store.close()


def appointment_id(n: int) -> str:
    return f"{DATE}-{n:04d}"


class Peer:
    """One connection's session plus what it sent (decoded) and whether it closed."""

    def __init__(
        self,
        backend: Backend,
        config: ServerSessionConfig | None = None,
        policy: SendPolicy = SEND_AS_IS,
        now: float = 0.0,
        auth: Authorisation = FULL_ACCESS,
    ) -> None:
        self.backend = backend
        self.now = now
        self.frames: list[bytes] = []
        self.closed: Close | None = None
        self.relay_woken = False
        self.session = ServerSession(
            config or ServerSessionConfig(),
            backend.hub,
            self,
            now,
            policy,
            today=NOW.date,
            auth=auth,
        )

    # The hub's side (``Subscriber``).
    def deliver(self, event: Event, frame: bytes) -> None:
        if self.session.shapes_live:
            self.take(self.session.live(event, self.now))
        elif self.session.deliver(event, self.now):
            self.frames.append(frame)
        elif self.session.close_due is not None:
            self.closed = self.session.close_due

    def resync(self, date: str, reason: str) -> None:
        self.take(self.session.resync(date, reason))

    def needs(self, date: str) -> int | None:
        return self.session.needs(date)

    # The client's side.
    def take(self, effects: Effects) -> None:
        self.frames.extend(effects.send)
        self.relay_woken |= effects.wake_relay
        if effects.close is not None:
            self.closed = effects.close

    def send(self, message: dict[str, Any] | str, now: float | None = None) -> list[dict[str, Any]]:
        """Feed one frame, run its store operations to the end; the messages it produced."""
        start = len(self.frames)
        if now is not None:
            self.now = now
        frame = message if isinstance(message, str) else json.dumps(message)
        for _ in self.steps(self.session.receive(frame, self.now)):
            pass
        return self.decoded(start)

    def steps(self, effects: Effects) -> Iterator[Effects]:
        """Apply ``effects`` and run each store operation, yielding before each one runs."""
        while True:
            self.take(effects)
            op = effects.op
            if op is None:
                return
            yield effects
            try:
                result = self.backend.perform(op)
            except Exception as exc:
                effects = self.session.fail(exc, self.now)
            else:
                effects = self.session.resume(result, self.now)

    def tick(self, now: float) -> list[dict[str, Any]]:
        start = len(self.frames)
        self.now = now
        self.take(self.session.tick(now))
        return self.decoded(start)

    def decoded(self, start: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [json.loads(frame) for frame in self.frames[start:]]
        return out

    def subscribe(self, since: tuple[str, int] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "date": DATE}
        if since is not None:
            message["since"] = {"epoch": since[0], "sequenceNum": since[1]}
        (answer,) = self.send(message)
        return answer
