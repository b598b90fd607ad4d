"""One channel (an appointment date) as a client keeps it: pure sequence tracking.

Rules (DESIGN.md guarantee 7), in the order ``ChannelState`` applies them to an event:

* While a ``subscribe`` is unanswered, events are buffered; the answer decides their fate.
* An event of another epoch means the log was reset: resubscribe fresh (a new snapshot).
* ``seq <= last applied`` is a duplicate: acked and ignored.
* ``seq == last + 1`` is applied, then any buffered successors are applied in order.
* ``seq > last + 1`` is past a gap: it is buffered and the missed range is requested ONCE
  (``request_missed_events``); the request is repeated only when ``gap_timeout`` expires.
  After ``max_missed_requests`` requests from one position without progress (counted across
  reconnects: a lossy server must not be asked forever), the channel resyncs from a snapshot.
  One ``gap`` record per gap opened, not one per event held behind it.
* A head (from a ``heartbeat``) ahead of the last applied seq, with nothing buffered, is a
  gap at the end of the stream: request the missed events.
* A snapshot replaces every row; its seq becomes the position; buffered events after it of
  the same epoch are then applied.

Every method returns ``Effects``: messages to send and history records (docs/history.md).
Acks are cumulative: the state remembers what was applied but not yet acked and
``take_ack`` turns it into one ``ack`` for the session to batch.

``policy`` (``synccli.protocol.bugs``) is asked at the three points a deliberate client bug
can change these rules (resyncs, duplicates, arrival); the default follows them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from synccli.domain.values import Event, Position, Row
from synccli.history import records as rec
from synccli.protocol.bugs import ChannelPolicy
from synccli.protocol.messages import (
    Ack,
    ClientMessage,
    MissedEvents,
    RequestMissedEvents,
    ResyncRequired,
    Snapshot,
    Subscribe,
    Subscribed,
)

SYNCED: Final = "synced"
SYNCING: Final = "syncing"
OUT_OF_SYNC: Final = "out_of_sync"


@dataclass(slots=True)
class Effects:
    """What the adapter must do after a call: send ``send``, record ``records``."""

    send: list[ClientMessage] = field(default_factory=list)
    records: list[rec.Record] = field(default_factory=list)

    def extend(self, other: Effects) -> None:
        self.send.extend(other.send)
        self.records.extend(other.records)


@dataclass(slots=True)
class Optimistic:
    """A local, unconfirmed write: shown as ``state`` (processing) until its event lands."""

    request_id: str
    state: str
    confirmed_seq: int | None = None


_apply_records: dict[tuple[int, bool], tuple[Event, rec.Apply]] = {}
APPLY_RECORD_CACHE = 4096


def apply_record(event: Event, replay: bool) -> rec.Apply:
    """The ``apply`` record of ``event``. Clients of one process share parsed events, and
    every client that applies the same event object gets the same record, so the history
    serialises it once. Keyed by identity, not by message id:
    a server that sent two different events under one id must still be caught."""
    key = (id(event), replay)
    cached = _apply_records.get(key)
    if cached is not None and cached[0] is event:
        return cached[1]
    row = event.row
    record = rec.Apply(
        date=event.date,
        epoch=event.epoch,
        seq=event.seq,
        message_id=event.message_id,
        committed_at=event.committed_at,
        replay=replay,
        appointment_id=row.appointment_id,
        version=row.version,
        state=row.state,
    )
    if len(_apply_records) >= APPLY_RECORD_CACHE:
        del _apply_records[next(iter(_apply_records))]
    # The cache holds the event, so its id cannot be reused while the entry lives.
    _apply_records[key] = (event, record)
    return record


class ChannelState:
    """The client's view of one date, kept across reconnects."""

    def __init__(
        self,
        date: str,
        *,
        policy: ChannelPolicy | None = None,
        gap_timeout: float = 2.0,
        max_buffer: int = 10_000,
        max_missed_requests: int = 3,
    ) -> None:
        self.date = date
        self.policy = ChannelPolicy() if policy is None else policy
        self.gap_timeout = gap_timeout
        self.max_buffer = max_buffer
        self.max_missed_requests = max_missed_requests
        self.epoch: str | None = None
        self.seq = 0
        self.rows: dict[str, Row] = {}
        self.optimistic: dict[str, Optimistic] = {}
        # Events held back (past a gap, or before a subscribe answer), with their replay flag.
        self.buffer: dict[int, tuple[Event, bool]] = {}
        self.awaiting_subscribe = False
        self.missed_deadline: float | None = None
        # Requests made from position ``_missed_from`` without progress: the give-up budget.
        self._missed_requests = 0
        self._missed_from: int | None = None
        self._resyncing = False
        self._gap_target: int | None = None
        self._acked = 0
        self._ack_due = False

    # ------------------------------------------------------------------ status

    @property
    def status(self) -> str:
        """``out_of_sync`` while a resync is pending, ``syncing`` while a subscribe or a
        gap is open, else ``synced``."""
        if self._resyncing:
            return OUT_OF_SYNC
        if self.awaiting_subscribe or self._gap_target is not None or self.epoch is None:
            return SYNCING
        return SYNCED

    @property
    def position(self) -> Position | None:
        return None if self.epoch is None else Position(self.epoch, self.seq)

    def caught_up(self, head: Position) -> bool:
        """Whether this channel is synced and has applied everything up to ``head``."""
        return self.status == SYNCED and self.epoch == head.epoch and self.seq >= head.seq

    def view_state(self, appointment_id: str) -> str | None:
        """The state the user sees: an unconfirmed local write wins over the stored row."""
        pending = self.optimistic.get(appointment_id)
        if pending is not None:
            return pending.state
        row = self.rows.get(appointment_id)
        return None if row is None else row.state

    def final_record(self) -> rec.Final:
        """The ``final`` history record: what this client ends up believing."""
        return rec.Final(
            date=self.date,
            epoch=self.epoch,
            seq=self.seq,
            rows={aid: [row.version, row.state] for aid, row in sorted(self.rows.items())},
            status=self.status,
        )

    # ------------------------------------------------------------------ connection

    def subscribe(self) -> Subscribe:
        """The ``subscribe`` to send on a new connection: resume from the position if any."""
        self.awaiting_subscribe = True
        return Subscribe(self.date, self.position)

    def on_disconnected(self) -> None:
        """Forget what belonged to the dead connection; rows and position stay."""
        self.buffer.clear()
        self.awaiting_subscribe = False
        self.missed_deadline = None
        # The request budget survives: a gap a reconnect's replay does not fill either is
        # still the same unfillable gap.
        self._gap_target = None
        self._acked = self.seq
        self._ack_due = False

    @property
    def ack_due(self) -> bool:
        """Whether ``take_ack`` would return an ack."""
        return self.epoch is not None and (self.seq > self._acked or self._ack_due)

    def take_ack(self) -> Ack | None:
        """One cumulative ack for everything applied (or re-received) since the last one."""
        if not self.ack_due:
            return None
        self._acked = self.seq
        self._ack_due = False
        return Ack(date=self.date, seq=self.seq, epoch=self.epoch)

    # ------------------------------------------------------------------ server messages

    def on_event(self, event: Event, replay: bool, now: float) -> Effects:
        """A live or replayed ``appointments_updated``."""
        effects = Effects()
        self._receive(event, replay, now, effects)
        return effects

    def on_subscribed(self, msg: Subscribed, now: float) -> Effects:
        effects = Effects()
        held = self._position_answered()
        effects.records.append(
            rec.Subscribed(self.date, msg.epoch, msg.seq, msg.recovered, len(msg.events))
        )
        if not msg.recovered:
            self._replace(msg.epoch, msg.seq, msg.snapshot or [])
        elif self.epoch != msg.epoch and self.policy.resync(self, "epoch_changed", effects):
            return effects
        for event in msg.events:
            self._receive(event, True, now, effects)
        self._apply_held(held, now, effects)
        self._expect_head(msg.seq, now, effects, via="subscribed")
        return effects

    def on_snapshot(self, msg: Snapshot, now: float) -> Effects:
        effects = Effects()
        held = self._position_answered()
        effects.records.append(rec.SnapshotTaken(self.date, msg.epoch, msg.seq))
        self._replace(msg.epoch, msg.seq, msg.appointments)
        self._apply_held(held, now, effects)
        return effects

    def _position_answered(self) -> list[tuple[Event, bool]]:
        """A subscribe or snapshot answer arrived: stop waiting for one, and take the events
        held meanwhile, in order, to apply after the new position."""
        self.awaiting_subscribe = False
        self._resyncing = False
        held = sorted(self.buffer.values(), key=lambda item: item[0].seq)
        self.buffer.clear()
        return held

    def _apply_held(self, held: list[tuple[Event, bool]], now: float, effects: Effects) -> None:
        for event, replay in held:
            if event.epoch == self.epoch and event.seq > self.seq:
                self._receive(event, replay, now, effects)

    def on_missed(self, msg: MissedEvents, now: float) -> Effects:
        """Apply a replay. One that does not close the gap (a lossy server) is not answered
        with an immediate new request: the deadline stands, ``tick`` re-asks."""
        effects = Effects()
        if msg.epoch != self.epoch and self.policy.resync(self, "epoch_changed", effects):
            return effects
        for event in msg.events:
            self._receive(event, True, now, effects)
        self._expect_head(msg.seq, now, effects, via="missed_events")
        return effects

    def on_resync(self, msg: ResyncRequired, now: float) -> Effects:
        effects = Effects()
        self.policy.resync(self, msg.reason, effects)
        return effects

    def on_head(self, head: Position, now: float) -> Effects:
        """A head announced by a heartbeat (or the drain): notice a missed last event."""
        effects = Effects()
        if self.awaiting_subscribe or self.epoch is None:
            return effects
        if head.epoch != self.epoch:
            self.policy.resync(self, "epoch_changed", effects)
            return effects
        if not self.buffer:
            self._expect_head(head.seq, now, effects, via="heartbeat")
        return effects

    def tick(self, now: float) -> Effects:
        """Re-ask for missed events whose answer is overdue (``_request_missed`` gives up
        into a resync once the budget is spent)."""
        effects = Effects()
        if self.missed_deadline is not None and now >= self.missed_deadline:
            self._request_missed(now, effects)
        return effects

    # ------------------------------------------------------------------ optimistic writes

    def begin_optimistic(self, appointment_id: str, request_id: str, state: str) -> None:
        self.optimistic[appointment_id] = Optimistic(request_id, state)

    def confirm(self, appointment_id: str, request_id: str, seq: int | None) -> None:
        """The write committed as ``seq``: keep showing it until that event is applied."""
        pending = self.optimistic.get(appointment_id)
        if pending is None or pending.request_id != request_id:
            return
        if seq is None or seq <= self.seq:
            del self.optimistic[appointment_id]
        else:
            pending.confirmed_seq = seq

    def rollback(self, appointment_id: str, request_id: str) -> bool:
        """Undo an optimistic change the server refused; False if there was none."""
        pending = self.optimistic.get(appointment_id)
        if pending is None or pending.request_id != request_id:
            return False
        del self.optimistic[appointment_id]
        return True

    # ------------------------------------------------------------------ internals

    def _receive(self, event: Event, replay: bool, now: float, effects: Effects) -> None:
        if self.awaiting_subscribe:
            self.buffer[event.seq] = (event, replay)
            return
        if event.epoch != self.epoch and self.policy.resync(self, "epoch_changed", effects):
            return
        if self.policy.receive(self, event, replay, effects):
            return
        if event.seq <= self.seq:
            self.record_duplicate(event, effects)
            self.policy.duplicate(self, event, replay, effects)
            return
        if event.seq == self.seq + 1:
            self.apply(event, replay, effects)
            self._drain(effects)
            return
        if len(self.buffer) >= self.max_buffer:
            self.resync("too_far_behind", effects)
            return
        if self._gap_target is None:
            effects.records.append(rec.Gap(self.date, self.seq, event.seq))
        self.buffer[event.seq] = (event, replay)
        self._gap_target = max(self._gap_target or 0, event.seq)
        if self.missed_deadline is None:
            self._request_missed(now, effects)

    def record_duplicate(self, event: Event, effects: Effects) -> None:
        """An event already applied arrived again: record it and ack it (not applied)."""
        effects.records.append(rec.Dup(self.date, event.epoch, event.seq))
        self._ack_due = True

    def apply(self, event: Event, replay: bool, effects: Effects, advance: bool = True) -> None:
        """Apply ``event`` to the rows (and, with ``advance``, move the position to it)."""
        row = event.row
        self.rows[row.appointment_id] = row
        if advance:
            self.seq = event.seq
        pending = self.optimistic.get(row.appointment_id)
        if pending is not None and (
            pending.request_id == event.action_id
            or (pending.confirmed_seq is not None and pending.confirmed_seq <= self.seq)
        ):
            del self.optimistic[row.appointment_id]
        effects.records.append(apply_record(event, replay))

    def _drain(self, effects: Effects) -> None:
        """Apply buffered successors in order; close the gap once nothing is missing."""
        for seq in [s for s in self.buffer if s <= self.seq]:
            del self.buffer[seq]
        while (held := self.buffer.pop(self.seq + 1, None)) is not None:
            self.apply(held[0], held[1], effects)
        self._close_gap_if_filled(effects)

    def _close_gap_if_filled(self, effects: Effects) -> None:
        if self._gap_target is None or self.buffer or self.seq < self._gap_target:
            return
        self._gap_target = None
        self.missed_deadline = None
        self._missed_requests = 0
        effects.records.append(rec.GapRecovered(self.date, self.seq))

    def _expect_head(self, head: int, now: float, effects: Effects, via: str) -> None:
        """The server says events up to ``head`` exist: fetch any we lack."""
        if head <= self.seq or self.awaiting_subscribe:
            self._close_gap_if_filled(effects)
            return
        if self._gap_target is None:
            effects.records.append(rec.Gap(self.date, self.seq, head, via))
        self._gap_target = max(self._gap_target or 0, head)
        if self.missed_deadline is None:
            self._request_missed(now, effects)

    def _request_missed(self, now: float, effects: Effects) -> None:
        """Ask for the events after the position, or resync once ``max_missed_requests``
        requests from this same position have not moved it."""
        if self._missed_from != self.seq:
            self._missed_from, self._missed_requests = self.seq, 0
        if self._missed_requests >= self.max_missed_requests:
            self.resync("gap_unfilled", effects)
            return
        effects.send.append(RequestMissedEvents(self.date, self.seq, self.epoch))
        self.missed_deadline = now + self.gap_timeout
        self._missed_requests += 1

    def resync(self, reason: str, effects: Effects) -> None:
        """Start over from a fresh snapshot: resubscribe without ``since``."""
        effects.records.append(rec.Resync(self.date, reason))
        self.buffer.clear()
        self.missed_deadline = None
        self._missed_requests = 0
        self._gap_target = None
        self._resyncing = True
        self.awaiting_subscribe = True
        effects.send.append(Subscribe(self.date))

    def _replace(self, epoch: str, seq: int, rows: list[Row]) -> None:
        if epoch != self.epoch:
            self.optimistic = {
                aid: o for aid, o in self.optimistic.items() if o.confirmed_seq is None
            }
        self.optimistic = {
            aid: o
            for aid, o in self.optimistic.items()
            if o.confirmed_seq is None or o.confirmed_seq > seq
        }
        self.epoch = epoch
        self.seq = seq
        self.rows = {row.appointment_id: row for row in rows}
        self.buffer.clear()
        self.missed_deadline = None
        self._missed_requests = 0
        self._gap_target = None
        self._acked = seq
        self._ack_due = False
        self.policy.replaced(seq)
