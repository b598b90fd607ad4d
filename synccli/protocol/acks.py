"""Server-side ack tracking for one connection (pure: no asyncio, no clock).

Rules (DESIGN.md guarantee 6):

* Every event sent with ``requiresAck`` is tracked until acknowledged, either by its
  ``messageId`` or cumulatively (``date`` + ``sequenceNum``: every event of that date up to n).
* An event unacked ``ack_timeout`` after its last send is due for a re-send (same id, same
  sequence number). Each re-send counts one retry and restarts its deadline.
* After ``max_retries`` re-sends, a further missed deadline means the connection is
  ``exhausted``: the caller closes it (4000) and the client recovers from its position.
* Tracking the same message again (it was sent again, e.g. in a replay) restarts its deadline
  but keeps its retry count, so a client that never acks cannot reset its budget.
* ``live`` counts the pending events that were first sent live (not in a replay): the
  session closes a connection whose count reaches its limit (``protocol.limits``).

Cost, per event: O(1) amortised to track, to ack cumulatively and to expire. Each date keeps
its pending events in a deque in sequence order (a cumulative ack pops from the front) plus a
dict by sequence number (an ack by id). Deadlines are ``now + ack_timeout`` with a
non-decreasing ``now``, so they are appended to one FIFO already sorted; entries that were acked,
dropped or re-armed meanwhile are skipped when they reach the front (lazy deletion), and acks
clear them from the front at once, so an acked event is not kept alive until its deadline.
There is no timer or task per message, and no allocation per event besides its ``_Pending``.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from synccli.domain.values import Event


@dataclass(slots=True)
class _Pending:
    event: Event
    deadline: float
    retries: int = 0
    alive: bool = True
    queued: int = 0  # entries in the deadline FIFO; all but the last one are stale
    live: bool = False


@dataclass(slots=True)
class _DatePending:
    """The pending events of one date: in sequence order, and by sequence number."""

    order: deque[_Pending] = field(default_factory=deque)
    by_seq: dict[int, _Pending] = field(default_factory=dict)

    def add(self, pending: _Pending) -> None:
        order, seq = self.order, pending.event.seq
        self.by_seq[seq] = pending
        if not order or order[-1].event.seq < seq:
            order.append(pending)
            return
        # Out-of-order tracking is rare (a replay behind live events): insert in place so
        # cumulative acks can keep popping from the front.
        seqs = [p.event.seq for p in order]
        order.insert(bisect.bisect_right(seqs, seq), pending)

    def trim(self) -> None:
        """Drop acked or replaced entries from the front, so the front is always alive."""
        order = self.order
        while order and not order[0].alive:
            order.popleft()


@dataclass(slots=True)
class AckCounters:
    """What the tracker has seen: events acked, re-sends, and missed deadlines."""

    acked: int = 0
    retries: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class AckTracker:
    """Pending acks of one connection. Times are plain floats supplied by the caller and must
    not decrease (a smaller ``now`` is treated as the largest one seen)."""

    ack_timeout: float
    max_retries: int
    counters: AckCounters = field(default_factory=AckCounters)
    _count: int = 0
    #: Pending events first sent live (the rest came in replays).
    live: int = 0
    _by_date: dict[str, _DatePending] = field(default_factory=dict)
    _deadlines: deque[_Pending] = field(default_factory=deque)
    _last_deadline: float = float("-inf")
    _resend: list[_Pending] = field(default_factory=list)
    _exhausted: bool = False

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def track(self, event: Event, now: float, live: bool = False) -> None:
        """Start (or restart) the ack deadline of ``event``, which was just sent (``live``:
        as a live event, not in a replay)."""
        per_date = self._by_date.get(event.date)
        if per_date is None:
            per_date = self._by_date[event.date] = _DatePending()
        order, seq = per_date.order, event.seq
        if not order or order[-1].event.seq < seq:
            # The fan-out case, once per delivery: the date's next event, sent for the first
            # time. Appended to both orders in place (what ``add`` and ``_arm`` do, inline).
            deadline = now + self.ack_timeout
            if deadline < self._last_deadline:
                deadline = self._last_deadline
            fresh = _Pending(event, deadline, queued=1, live=live)
            per_date.by_seq[seq] = fresh
            order.append(fresh)
            self._deadlines.append(fresh)
            self._last_deadline = deadline
            self._count += 1
            self.live += live
            return
        pending = per_date.by_seq.get(seq)
        if pending is not None and pending.event.epoch == event.epoch:
            self._arm(pending, now)
            return
        if pending is not None:  # the same seq of another epoch: it can never be acked
            pending.alive = False
            self._count -= 1
            self.live -= pending.live
        pending = _Pending(event, 0.0, live=live)
        per_date.add(pending)
        per_date.trim()
        self._count += 1
        self.live += live
        self._arm(pending, now)

    def ack_message(self, message_id: str) -> None:
        """Acknowledge one event by id (``<date>:<epoch>:<seq>``); unknown ids are ignored."""
        date, _, rest = message_id.partition(":")
        epoch, _, seq = rest.rpartition(":")
        per_date = self._by_date.get(date)
        if per_date is None or not seq.isdigit():
            return
        pending = per_date.by_seq.get(int(seq))
        if pending is not None and pending.event.epoch == epoch:
            self._forget(per_date, pending)
            self._tidy(date, per_date)
            self._skip_stale()

    def ack_upto(self, date: str, seq: int, epoch: str | None = None) -> None:
        """Acknowledge every tracked event of ``date`` with sequence number ``<= seq``.
        An ack naming another epoch than the tracked events' is ignored."""
        per_date = self._by_date.get(date)
        if per_date is None:
            return
        order = per_date.order
        if epoch is not None and order[0].event.epoch != epoch:
            return
        while order and order[0].event.seq <= seq:
            pending = order.popleft()
            if pending.alive:
                self._forget(per_date, pending)
        self._tidy(date, per_date)
        self._skip_stale()

    def oldest(self, date: str) -> int | None:
        """The lowest sequence number of ``date`` still awaiting an ack, None if none does
        (the front of a date's order is always alive)."""
        per_date = self._by_date.get(date)
        return per_date.order[0].event.seq if per_date is not None and per_date.order else None

    def drop_date(self, date: str) -> None:
        """Forget every pending ack of ``date`` (unsubscribe, resubscribe, epoch change)."""
        per_date = self._by_date.pop(date, None)
        if per_date is None:
            return
        for pending in per_date.by_seq.values():
            pending.alive = False
            self.live -= pending.live
        self._count -= len(per_date.by_seq)

    def due(self, now: float) -> list[Event]:
        """Events whose deadline passed and that must be re-sent now, in deadline order.
        Each counts one retry and gets a new deadline."""
        self._expire(now)
        out: list[Event] = []
        for pending in self._resend:
            if not pending.alive:
                continue
            pending.retries += 1
            self.counters.retries += 1
            self._arm(pending, now)
            out.append(pending.event)
        self._resend.clear()
        return out

    def exhausted(self, now: float) -> bool:
        """True once an event was re-sent ``max_retries`` times and missed its deadline again."""
        self._expire(now)
        return self._exhausted

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, or None when nothing awaits an ack."""
        if self._resend:
            return min(p.deadline for p in self._resend)
        self._skip_stale()
        return self._deadlines[0].deadline if self._deadlines else None

    def _skip_stale(self) -> None:
        """Pop entries of acked or dropped events, and older entries of re-armed ones (whose
        ``deadline`` is the newer one's), until the front entry is current."""
        deadlines = self._deadlines
        while deadlines and (not deadlines[0].alive or deadlines[0].queued > 1):
            deadlines.popleft().queued -= 1

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        self._skip_stale()
        while deadlines and deadlines[0].deadline <= now:
            pending = deadlines.popleft()
            pending.queued -= 1
            self.counters.timeouts += 1
            if pending.retries >= self.max_retries:
                self._exhausted = True
            else:
                self._resend.append(pending)
            self._skip_stale()

    def _arm(self, pending: _Pending, now: float) -> None:
        # Deadlines never decrease, so appending keeps the FIFO sorted.
        deadline = now + self.ack_timeout
        if deadline < self._last_deadline:
            deadline = self._last_deadline
        self._last_deadline = pending.deadline = deadline
        pending.queued += 1
        self._deadlines.append(pending)

    def _forget(self, per_date: _DatePending, pending: _Pending) -> None:
        pending.alive = False
        del per_date.by_seq[pending.event.seq]
        self._count -= 1
        self.live -= pending.live
        self.counters.acked += 1

    def _tidy(self, date: str, per_date: _DatePending) -> None:
        per_date.trim()
        if not per_date.by_seq:
            del self._by_date[date]
