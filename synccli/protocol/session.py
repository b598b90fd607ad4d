"""Everything one simulated client connection needs, without I/O: ``ClientSession``.

The session owns a ``ChannelState`` per date (kept across reconnects) and the writes this
client has in flight. The adapter feeds it what happens (``on_connected``, ``on_message``,
``on_disconnected``, ``tick``) and does what comes back (``Effects``: messages to send,
history records to append). Time is always passed in as ``now`` (monotonic seconds).

Writes are optimistic: ``begin_write`` shows the new state at once (processing), a
``result`` with ``ok: true`` confirms it, ``ok: false`` rolls it back. A write without an
answer is re-sent with the SAME ``requestId`` after ``write_timeout`` and after every
reconnect (the server's idempotency record makes that safe), at most ``max_write_attempts``
times; then it is given up (``write_result`` with code ``timeout``).

A frame that does not follow the protocol (``on_malformed``) is reported and never raises;
what it carried is lost, so the dates it may have carried resync from a snapshot
(``malformed_dates``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from synccli.errors import ProtocolError
from synccli.history import records as rec
from synccli.protocol.bugs import ChannelPolicy
from synccli.protocol.channel import ChannelState, Effects
from synccli.protocol.messages import (
    Ack,
    ErrorMessage,
    EventMessage,
    Heartbeat,
    MissedEvents,
    Result,
    ResyncRequired,
    ServerMessage,
    Snapshot,
    Subscribed,
    UpdateAppointmentState,
)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How one client behaves. ``bugs``: client bug names (``synccli.injection``), each
    channel gets a ``ChannelPolicy`` for them (harness self-test)."""

    client_id: str
    dates: tuple[str, ...]
    bugs: frozenset[str] = frozenset()
    gap_timeout: float = 2.0
    write_timeout: float = 5.0
    max_write_attempts: int = 5


@dataclass(slots=True)
class PendingWrite:
    """A write sent but not answered."""

    message: UpdateAppointmentState
    date: str
    first_sent: float
    last_sent: float
    attempt: int = 1


@dataclass(slots=True)
class SessionStats:
    """Counters the fleet aggregates for its progress line."""

    applied: int = 0
    writes_ok: int = 0
    writes_failed: int = 0
    gaps: int = 0
    resyncs: int = 0


class ClientSession:
    """The sans-I/O client: channels, acks, optimistic writes."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.channels = {
            date: ChannelState(
                date, policy=ChannelPolicy.for_bugs(config.bugs), gap_timeout=config.gap_timeout
            )
            for date in config.dates
        }
        self.pending: dict[str, PendingWrite] = {}
        self.stats = SessionStats()
        self.connected = False

    # ------------------------------------------------------------------ connection

    def on_connected(self, now: float) -> Effects:
        """Subscribe every date (resuming from its position) and re-send pending writes."""
        self.connected = True
        effects = Effects(send=[channel.subscribe() for channel in self.channels.values()])
        # A copy: a write out of attempts is given up, which removes it from ``pending``.
        for pending in list(self.pending.values()):
            self._send_write(pending, now, effects)
        return effects

    def on_disconnected(self) -> None:
        self.connected = False
        for channel in self.channels.values():
            channel.on_disconnected()

    def on_message(self, msg: ServerMessage, now: float) -> Effects:
        """Apply one server message."""
        if isinstance(msg, EventMessage):
            effects = self._channel_call(
                msg.event.date, lambda c: c.on_event(msg.event, msg.replay, now)
            )
        elif isinstance(msg, Subscribed):
            effects = self._channel_call(msg.date, lambda c: c.on_subscribed(msg, now))
        elif isinstance(msg, MissedEvents):
            effects = self._channel_call(msg.date, lambda c: c.on_missed(msg, now))
        elif isinstance(msg, Snapshot):
            effects = self._channel_call(msg.date, lambda c: c.on_snapshot(msg, now))
        elif isinstance(msg, ResyncRequired):
            effects = self._channel_call(msg.date, lambda c: c.on_resync(msg, now))
        elif isinstance(msg, Heartbeat):
            effects = Effects()
            for date, head in msg.positions.items():
                channel = self.channels.get(date)
                if channel is not None:
                    effects.extend(channel.on_head(head, now))
        elif isinstance(msg, Result):
            effects = self._on_result(msg, now)
        else:
            effects = self._on_error(msg)
        self._count(effects.records)
        return effects

    def on_malformed(self, error: ProtocolError, frame: str | bytes) -> Effects:
        """A frame the client could not parse: an ``error`` record, then a resync
        (reason ``malformed_frame``) of every date it may have carried."""
        effects = Effects(records=[rec.ErrorReceived(error.code, f"server sent: {error.message}")])
        for date in malformed_dates(frame, self.channels):
            self.channels[date].resync(MALFORMED, effects)
        self._count(effects.records)
        return effects

    def flush_acks(self) -> list[Ack]:
        """One cumulative ack per date with something new to acknowledge."""
        if not self.connected:
            return []
        return [ack for c in self.channels.values() if (ack := c.take_ack()) is not None]

    def acks_due(self) -> bool:
        """Whether ``flush_acks`` would return anything."""
        return self.connected and any(c.ack_due for c in self.channels.values())

    def tick(self, now: float) -> Effects:
        """Time-outs: overdue missed-events requests and unanswered writes."""
        effects = Effects()
        if not self.connected:
            return effects
        for channel in self.channels.values():
            effects.extend(channel.tick(now))
        for pending in list(self.pending.values()):
            if now - pending.last_sent >= self.config.write_timeout:
                self._send_write(pending, now, effects)
        self._count(effects.records)
        return effects

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which ``tick`` has something to do."""
        deadlines = [c.missed_deadline for c in self.channels.values() if c.missed_deadline]
        deadlines += [p.last_sent + self.config.write_timeout for p in self.pending.values()]
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ writes

    def date_of(self, appointment_id: str) -> str | None:
        """The date whose channel holds ``appointment_id``."""
        for date, channel in self.channels.items():
            if appointment_id in channel.rows:
                return date
        return None

    def begin_write(
        self,
        appointment_id: str,
        state: str,
        request_id: str,
        now: float,
        expected_version: int | None = None,
    ) -> Effects:
        """Send a state change and show it locally at once. ``Effects.send`` holds the
        ``UpdateAppointmentState``; the records hold its ``write`` entry."""
        date = self.date_of(appointment_id)
        if date is None:
            raise ValueError(f"appointment {appointment_id!r} is not in this client's view")
        if request_id in self.pending:
            raise ValueError(f"request id {request_id!r} is already in flight")
        message = UpdateAppointmentState(request_id, appointment_id, state, expected_version)
        self.channels[date].begin_optimistic(appointment_id, request_id, state)
        pending = PendingWrite(message, date, now, now, attempt=0)
        self.pending[request_id] = pending
        effects = Effects()
        if self.connected:
            self._send_write(pending, now, effects)
        return effects

    def _send_write(self, pending: PendingWrite, now: float, effects: Effects) -> None:
        message = pending.message
        if pending.attempt >= self.config.max_write_attempts:
            self._finish_write(message.request_id, False, now, effects, code="timeout")
            return
        pending.attempt += 1
        pending.last_sent = now
        effects.send.append(message)
        effects.records.append(
            rec.Write(
                message.request_id,
                message.appointment_id,
                message.state,
                pending.date,
                pending.attempt,
            )
        )

    def _on_result(self, msg: Result, now: float) -> Effects:
        effects = Effects()
        if msg.request_id in self.pending:
            self._finish_write(msg.request_id, msg.ok, now, effects, msg.error_code, msg.seq)
        return effects

    def _finish_write(
        self,
        request_id: str,
        ok: bool,
        now: float,
        effects: Effects,
        code: str | None = None,
        seq: int | None = None,
    ) -> None:
        pending = self.pending.pop(request_id)
        message = pending.message
        channel = self.channels[pending.date]
        effects.records.append(
            rec.WriteResult(request_id, ok, code, seq, round((now - pending.first_sent) * 1000, 3))
        )
        if ok:
            channel.confirm(message.appointment_id, request_id, seq)
        elif channel.rollback(message.appointment_id, request_id):
            effects.records.append(rec.Rollback(request_id, message.appointment_id))

    # ------------------------------------------------------------------ helpers

    def _on_error(self, msg: ErrorMessage) -> Effects:
        # A bare error means this client sent something the server refused: worth a record,
        # never a crash.
        return Effects(records=[rec.ErrorReceived(msg.code, msg.message, msg.ref)])

    def _channel_call(self, date: str, call: ChannelCall) -> Effects:
        channel = self.channels.get(date)
        # Messages for a date this client never subscribed to are ignored.
        return Effects() if channel is None else call(channel)

    def _count(self, records: list[rec.Record]) -> None:
        stats = self.stats
        for record in records:
            if isinstance(record, rec.Apply):
                stats.applied += 1
            elif isinstance(record, rec.WriteResult):
                if record.ok:
                    stats.writes_ok += 1
                else:
                    stats.writes_failed += 1
            elif isinstance(record, rec.Gap):
                stats.gaps += 1
            elif isinstance(record, rec.Resync):
                stats.resyncs += 1


ChannelCall = Callable[[ChannelState], Effects]

MALFORMED: Final = "malformed_frame"
# Frames that carry no channel state: a lost ``result`` is recovered by re-sending the
# write with its request id, a lost ``error`` needs nothing.
DATELESS_TYPES: Final = frozenset({"result", "error"})


def malformed_dates(frame: str | bytes, subscribed: Iterable[str]) -> list[str]:
    """The subscribed dates a malformed frame may have carried: those it names (``date``,
    or a heartbeat's ``positions``), none for a ``result`` or ``error``, else every one
    (an unreadable frame could have been about any)."""
    dates = list(subscribed)
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return dates
    if not isinstance(data, dict):
        return dates
    kind = data.get("type")
    if isinstance(kind, str) and kind in DATELESS_TYPES:
        return []
    named = {data["date"]} if isinstance(data.get("date"), str) else set()
    positions = data.get("positions")
    if isinstance(positions, dict):
        named.update(positions)
    return [date for date in dates if date in named] or dates
