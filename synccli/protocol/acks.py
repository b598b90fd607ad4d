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

Cost: a cumulative ack pops from the front of a per-date seq-ordered dict; deadlines live in
one heap with lazy deletion, so there is no timer or task per message.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from synccli.protocol.model import Event


@dataclass(slots=True)
class _Pending:
    event: Event
    deadline: float
    retries: int = 0
    alive: bool = True
    armed: int = 0  # the heap entry that is current; older ones are stale


@dataclass(slots=True)
class AckCounters:
    """What the tracker has seen: events acked, re-sends, and missed deadlines."""

    acked: int = 0
    retries: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class AckTracker:
    """Pending acks of one connection. Times are plain floats supplied by the caller."""

    ack_timeout: float
    max_retries: int
    counters: AckCounters = field(default_factory=AckCounters)
    _count: int = 0
    _by_date: dict[str, dict[int, _Pending]] = field(default_factory=dict)
    _heap: list[tuple[float, int, _Pending]] = field(
        default_factory=list
    )  # (deadline, arm id, ...)
    _arm_ids: itertools.count[int] = field(default_factory=itertools.count)
    _resend: list[_Pending] = field(default_factory=list)
    _exhausted: bool = False

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def track(self, event: Event, now: float) -> None:
        """Start (or restart) the ack deadline of ``event``, which was just sent."""
        per_date = self._by_date.get(event.date)
        if per_date is None:
            per_date = self._by_date[event.date] = {}
        pending = per_date.get(event.seq)
        if pending is not None and pending.event.epoch == event.epoch:
            pending.deadline = now + self.ack_timeout
        else:
            if pending is not None:  # the same seq of another epoch: it can never be acked
                pending.alive = False
                self._count -= 1
            pending = _Pending(event, now + self.ack_timeout)
            if per_date and event.seq < next(reversed(per_date)):
                # Out-of-order tracking is rare (a replay behind live events); keep the dict
                # sorted so cumulative acks can keep popping from the front.
                per_date[event.seq] = pending
                self._by_date[event.date] = dict(sorted(per_date.items()))
            else:
                per_date[event.seq] = pending
            self._count += 1
        self._arm(pending)

    def ack_message(self, message_id: str) -> None:
        """Acknowledge one event by id (``<date>:<epoch>:<seq>``); unknown ids are ignored."""
        date, _, rest = message_id.partition(":")
        epoch, _, seq = rest.rpartition(":")
        per_date = self._by_date.get(date)
        if per_date is None or not seq.isdigit():
            return
        pending = per_date.get(int(seq))
        if pending is not None and pending.event.epoch == epoch:
            self._forget(pending)

    def ack_upto(self, date: str, seq: int, epoch: str | None = None) -> None:
        """Acknowledge every tracked event of ``date`` with sequence number ``<= seq``.
        An ack naming another epoch than the tracked events' is ignored."""
        per_date = self._by_date.get(date)
        if not per_date:
            return
        if epoch is not None and next(iter(per_date.values())).event.epoch != epoch:
            return
        while per_date:
            first_seq = next(iter(per_date))
            if first_seq > seq:
                break
            self._forget(per_date[first_seq])

    def drop_date(self, date: str) -> None:
        """Forget every pending ack of ``date`` (unsubscribe, resubscribe, epoch change)."""
        per_date = self._by_date.pop(date, {})
        for pending in per_date.values():
            pending.alive = False
        self._count -= len(per_date)

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
            pending.deadline = now + self.ack_timeout
            self._arm(pending)
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
        while self._heap:
            deadline, armed, pending = self._heap[0]
            if pending.alive and pending.armed == armed:
                return deadline
            heapq.heappop(self._heap)
        return None

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, armed, pending = heapq.heappop(self._heap)
            if not pending.alive or pending.armed != armed:
                continue  # stale heap entry: acked, dropped or re-armed since
            self.counters.timeouts += 1
            if pending.retries >= self.max_retries:
                self._exhausted = True
            else:
                self._resend.append(pending)

    def _arm(self, pending: _Pending) -> None:
        pending.armed = next(self._arm_ids)
        heapq.heappush(self._heap, (pending.deadline, pending.armed, pending))

    def _forget(self, pending: _Pending) -> None:
        pending.alive = False
        event = pending.event
        self._count -= 1
        per_date = self._by_date[event.date]
        del per_date[event.seq]
        if not per_date:
            del self._by_date[event.date]
        self.counters.acked += 1
