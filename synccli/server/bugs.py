"""Deliberate bugs for the harness's self-test (``--inject-bug NAME``), as a policy.

A checker that cannot fail is worthless, so the server can be told to misbehave in the ways
the checker must catch (``skip-events``, ``broadcast-before-commit``, ``stale-epoch``) and in
legal ways a correct client must absorb (``duplicate-sends``, ``reorder-sends``). The names
come from ``synccli.injection``. The server is handed a ``ServerPolicy``; the default one
changes nothing, and the server's paths carry no bug switches: ``Bugs`` plugs in through the
same hooks (the store it writes through, its write path, each session's ``SendPolicy``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from synccli.domain.channels import Channel, WriteOutcome, WriteRequest
from synccli.domain.values import Event, Row, iso_ms
from synccli.errors import WriteRejected
from synccli.injection import check_bugs
from synccli.protocol.messages import Result, UpdateAppointmentState
from synccli.protocol.server_ops import SEND_AS_IS, SendPolicy
from synccli.store import Store
from synccli.store.delegating import DelegatingStore

SKIP_EVERY = 7  # skip-events: every 7th sequence number of a date is never sent
PHANTOM_EVERY = 5  # broadcast-before-commit: every 5th write is broadcast, then rolled back
STALE_AFTER = 20  # stale-epoch: the log of a date is reset after its 20th write
REORDER_WINDOW = 3  # reorder-sends: live events are shuffled within windows of 3
# reorder-sends: a window that has not filled is sent this long after its first event, so
# sparse traffic is still reordered (at 20 writes/s a window of 3 fills in ~0.15 s) while
# no event waits anywhere near a client's gap or on-time deadlines.
REORDER_FLUSH_S = 0.3

#: The server's write path: a request in, its ``result`` out (``writes.perform_write``).
WritePath = Callable[[UpdateAppointmentState], Awaitable[Result]]
#: The broadcast-before-commit phantom: publish what the write would commit, answer failed.
PhantomWrite = Callable[[UpdateAppointmentState], Awaitable[Result]]


class ServerPolicy:
    """What the server lets a policy change; this one changes nothing."""

    names: frozenset[str] = frozenset()

    def wrap_store(self, store: Store) -> Store:
        """The store the server reads and writes through."""
        return store

    def wrap_write(self, write: WritePath, phantom: PhantomWrite) -> WritePath:
        """The write path each ``update_appointment_state`` goes through."""
        return write

    def send_policy(self) -> SendPolicy:
        """A new connection's ``SendPolicy``."""
        return SEND_AS_IS


NO_BUGS = ServerPolicy()


class Bugs(ServerPolicy):
    """Which bugs are on, and their per-run state (seeded, so a run is reproducible)."""

    def __init__(self, names: tuple[str, ...], seed: int = 0) -> None:
        check_bugs(names, "server")
        self.names = frozenset(names)
        self.seed = seed
        self.duplicate_sends = "duplicate-sends" in self.names
        self.reorder_sends = "reorder-sends" in self.names
        self.skip_events = "skip-events" in self.names
        self._writes = 0
        self._windows = 0

    def __bool__(self) -> bool:
        return bool(self.names)

    def wrap_store(self, store: Store) -> Store:
        return StaleEpochStore(store) if "stale-epoch" in self.names else store

    def wrap_write(self, write: WritePath, phantom: PhantomWrite) -> WritePath:
        if "broadcast-before-commit" not in self.names:
            return write

        async def every_fifth_a_phantom(request: UpdateAppointmentState) -> Result:
            if self.phantom_turn():
                return await phantom(request)
            return await write(request)

        return every_fifth_a_phantom

    def phantom_turn(self) -> bool:
        """True for every ``PHANTOM_EVERY``-th write when broadcast-before-commit is on."""
        if "broadcast-before-commit" not in self.names:
            return False
        self._writes += 1
        return self._writes % PHANTOM_EVERY == 0

    def send_policy(self) -> SendPolicy:
        if not (self.skip_events or self.duplicate_sends or self.reorder_sends):
            return SEND_AS_IS
        return BuggySends(self.skip_events, 2 if self.duplicate_sends else 1, self.reorder_window())

    def reorder_window(self) -> ReorderWindow | None:
        """A connection's own reorder window (None unless reorder-sends is on), with its own
        rng derived from the bug seed and the connection's number."""
        if not self.reorder_sends:
            return None
        self._windows += 1
        return ReorderWindow(random.Random(f"{self.seed}:reorder:{self._windows}"))


class BuggySends(SendPolicy):
    """skip-events (every ``SKIP_EVERY``-th event never sent, live or replayed),
    duplicate-sends (each live event sent ``copies`` times) and reorder-sends."""

    shapes_live = True

    def __init__(self, skip: bool, copies: int, window: ReorderWindow | None) -> None:
        self.skip = skip
        self.copies = copies
        self.window = window

    def replay(self, events: list[Event]) -> list[Event]:
        return [event for event in events if _skip(event)] if self.skip else events

    def live(self, event: Event, now: float) -> list[Event]:
        if self.skip and not _skip(event):
            return []
        return [event] if self.window is None else self.window.add(event, now)

    def due(self, now: float) -> list[Event]:
        return [] if self.window is None else self.window.due(now)

    def deadline(self) -> float | None:
        return None if self.window is None else self.window.deadline


class ReorderWindow:
    """The reorder-sends bug for one connection: live events are held until
    ``REORDER_WINDOW`` have arrived or ``REORDER_FLUSH_S`` has passed since the first, then
    released in a shuffled order that always differs from the original (when there are two
    or more), so every window really reorders."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.held: list[Event] = []
        self.deadline: float | None = None

    def add(self, event: Event, now: float) -> list[Event]:
        """Hold ``event``; the shuffled window when it is full, else nothing yet."""
        self.held.append(event)
        if self.deadline is None:
            self.deadline = now + REORDER_FLUSH_S
        return self.release() if len(self.held) >= REORDER_WINDOW else []

    def due(self, now: float) -> list[Event]:
        """The shuffled window once its flush deadline has passed, else nothing."""
        if self.deadline is None or now < self.deadline:
            return []
        return self.release()

    def release(self) -> list[Event]:
        """Everything held, shuffled; the window starts over empty."""
        window, self.held, self.deadline = self.held, [], None
        if len(window) < 2:
            return window
        # A uniform choice among the orders other than the original one.
        original = tuple(range(len(window)))
        orders = [order for order in itertools.permutations(original) if order != original]
        return [window[i] for i in self.rng.choice(orders)]


def _skip(event: Event) -> bool:
    return event.seq % SKIP_EVERY != 0


def build_phantom(store: Store, request: WriteRequest, now: datetime) -> Event:
    """The event the write would commit, built without writing (runs in a DB thread).
    Appointment ids start with their date (``<date>-0001``), as ``Store.seed`` makes them."""
    date = request.appointment_id[:10]
    channel, rows = store.snapshot(date)
    row = next((r for r in rows if r.appointment_id == request.appointment_id), None)
    if row is None:
        raise WriteRejected("not_found", f"no appointment {request.appointment_id!r}")
    stamp = iso_ms(now)
    new_row = Row(
        row.appointment_id, date, row.patient, request.state, stamp, row.version + 1, stamp
    )
    return Event(date, channel.epoch, channel.head_seq + 1, new_row, request.request_id, stamp)


class StaleEpochStore(DelegatingStore):
    """A store that resets a date's log after its ``STALE_AFTER``-th write but keeps
    presenting the old epoch and numbering, so no client is ever told to resync. Only the
    positions are disguised; everything else (readiness probe, pruning, the log tools)
    is the backend's own."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self._writes: dict[str, int] = {}
        self._stale: dict[str, tuple[str, int]] = {}  # date -> (old epoch, seq offset)

    def _channel(self, channel: Channel) -> Channel:
        stale = self._stale.get(channel.date)
        if stale is None:
            return channel
        epoch, offset = stale
        return Channel(channel.date, epoch, channel.head_seq + offset, channel.min_seq + offset)

    def _event(self, event: Event) -> Event:
        stale = self._stale.get(event.date)
        if stale is None:
            return event
        epoch, offset = stale
        return Event(
            event.date, epoch, event.seq + offset, event.row, event.action_id, event.committed_at
        )

    def write(self, request: WriteRequest, now: datetime) -> WriteOutcome:
        outcome = self.inner.write(request, now)
        event = outcome.event
        if event is not None and event.date not in self._stale:
            count = self._writes.get(event.date, 0) + 1
            self._writes[event.date] = count
            if count == STALE_AFTER:
                self.inner.reset_channel(event.date)
                self._stale[event.date] = (event.epoch, event.seq)
                return outcome
        offset = self._stale[outcome.row.date][1] if outcome.row.date in self._stale else 0
        return WriteOutcome(
            outcome.request_id,
            outcome.row,
            outcome.seq + offset,
            None if event is None else self._event(event),
            outcome.replayed,
        )

    def channel(self, date: str) -> Channel:
        return self._channel(self.inner.channel(date))

    def events_since(self, date: str, after_seq: int, limit: int) -> list[Event]:
        offset = self._stale.get(date, ("", 0))[1]
        events = self.inner.events_since(date, max(0, after_seq - offset), limit)
        return [self._event(event) for event in events]

    def snapshot(self, date: str) -> tuple[Channel, list[Row]]:
        channel, rows = self.inner.snapshot(date)
        return self._channel(channel), rows

    def heads(self) -> dict[str, Channel]:
        return {date: self._channel(ch) for date, ch in self.inner.heads().items()}

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        return {date: self._channel(ch) for date, ch in self.inner.heads_of(dates).items()}

    def reset_channel(self, date: str) -> Channel:
        self._stale.pop(date, None)
        return self.inner.reset_channel(date)
