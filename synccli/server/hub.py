"""The channel hub: fan-out of committed events to subscribers, in sequence order.

Rules:

* The hub keeps, per channel (date), the epoch and the *published head*: every event up to
  it has been handed to every subscriber registered at the time.
* Events are published strictly in sequence order. One that arrives early (commits finished
  out of order, or another process wrote meanwhile) waits in ``pending``; ``publish`` reports
  the gap and the relay fills it from the durable log.
* An event of another epoch is never published; the relay notices the epoch change and calls
  ``reset``, which tells every subscriber of that channel to resync and forgets them.
* A small contiguous tail of recent events serves resumes without touching the database.
* Retention asks the hub what its connected subscribers still need (``holds``): the log
  keeps every event after the lowest of their positions, within the replay window.

Pure bookkeeping: no asyncio, no I/O. Subscribers are told through the ``Subscriber``
protocol and do their own (non-blocking) queueing.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Position


class Subscriber(Protocol):
    """What the hub needs from a connection. Both calls must not block."""

    def deliver(self, event: Event, frame: bytes) -> None:
        """A live event of a channel the subscriber is registered to; ``frame`` is its
        encoded wire form, shared by every subscriber."""

    def resync(self, date: str, reason: str) -> None:
        """The channel's history changed (new epoch); the subscription is gone."""

    def needs(self, date: str) -> int | None:
        """The position the subscriber would resume ``date`` from (its client's acked
        position), None when it holds nothing there (see ``Hub.holds``)."""


@dataclass(slots=True)
class _Channel:
    epoch: str
    head: int
    min_seq: int
    tail: deque[Event]
    pending: dict[int, Event] = field(default_factory=dict)
    subscribers: set[Subscriber] = field(default_factory=set)


class Hub:
    """Every channel this server process knows about."""

    def __init__(self, tail_size: int) -> None:
        self._tail_size = tail_size
        self._channels: dict[str, _Channel] = {}

    def _new(self, epoch: str, head: int, min_seq: int) -> _Channel:
        return _Channel(epoch, head, min_seq, deque(maxlen=self._tail_size))

    def known(self, date: str) -> bool:
        """Whether the hub follows ``date`` now, i.e. it has subscribers (the relay polls only
        those); else call ``sync`` with a fresh database read first."""
        channel = self._channels.get(date)
        return bool(channel and channel.subscribers)

    def dates(self) -> list[str]:
        return list(self._channels)

    def subscribed_dates(self) -> list[str]:
        """The dates with subscribers: the only ones the relay polls."""
        return [date for date, channel in self._channels.items() if channel.subscribers]

    def head(self, date: str) -> int | None:
        channel = self._channels.get(date)
        return None if channel is None else channel.head

    def position(self, date: str) -> Position | None:
        """The published position of ``date``."""
        channel = self._channels.get(date)
        return None if channel is None else Position(channel.epoch, channel.head)

    def has_subscribers(self, date: str) -> bool:
        channel = self._channels.get(date)
        return bool(channel and channel.subscribers)

    def sync(self, durable: Channel) -> bool:
        """Align with a database read of the channel: start tracking it, take its new
        ``min_seq``, or ``reset`` on an epoch change. Returns True if the head is behind
        (the relay should read the log)."""
        channel = self._channels.get(durable.date)
        if channel is None:
            self._channels[durable.date] = self._new(
                durable.epoch, durable.head_seq, durable.min_seq
            )
            return False
        if channel.epoch != durable.epoch:
            self.reset(durable)
            return False
        if not channel.subscribers and durable.head_seq > channel.head:
            # Nobody here listened while another process wrote: jump, no log read.
            self.fast_forward(durable)
        channel.min_seq = durable.min_seq
        while channel.tail and channel.tail[0].seq < durable.min_seq:
            channel.tail.popleft()
        return durable.head_seq > channel.head

    def fast_forward(self, durable: Channel) -> None:
        """Jump a channel nobody listens to straight to the durable head (no log read)."""
        channel = self._channels[durable.date]
        if not channel.subscribers and channel.epoch == durable.epoch:
            channel.head = max(channel.head, durable.head_seq)
            channel.tail.clear()
            channel.pending.clear()

    def reset(self, durable: Channel) -> int:
        """The channel has a new epoch: tell every subscriber to resync and forget them.
        Returns how many subscribers were told."""
        old = self._channels.get(durable.date)
        self._channels[durable.date] = self._new(durable.epoch, durable.head_seq, durable.min_seq)
        if old is None:
            return 0
        for subscriber in list(old.subscribers):
            subscriber.resync(durable.date, "epoch_changed")
        return len(old.subscribers)

    def subscribe(self, date: str, subscriber: Subscriber) -> None:
        """Register ``subscriber``; the channel must be known (``sync`` first)."""
        self._channels[date].subscribers.add(subscriber)

    def unsubscribe(self, date: str, subscriber: Subscriber) -> None:
        channel = self._channels.get(date)
        if channel is not None:
            channel.subscribers.discard(subscriber)

    def publish(self, event: Event) -> bool:
        """Hand a committed event to the subscribers, in order. Returns True while a gap
        before a pending event remains (the caller asks the relay to fill it)."""
        channel = self._channels.get(event.date)
        if channel is None:
            # Nobody can be subscribed to a channel the hub does not know: just start it.
            channel = self._new(event.epoch, event.seq - 1, event.seq)
            self._channels[event.date] = channel
        if event.epoch != channel.epoch or event.seq <= channel.head:
            return bool(channel.pending)
        if event.seq > channel.head + 1:
            channel.pending[event.seq] = event
            return True
        self._advance(channel, event)
        while channel.head + 1 in channel.pending:
            self._advance(channel, channel.pending.pop(channel.head + 1))
        return bool(channel.pending)

    def _advance(self, channel: _Channel, event: Event) -> None:
        channel.head = event.seq
        if channel.tail and channel.tail[-1].seq != event.seq - 1:
            channel.tail.clear()
        channel.tail.append(event)
        if not channel.subscribers:
            return
        frame = event.wire_json(False).encode()
        for subscriber in list(channel.subscribers):
            subscriber.deliver(event, frame)

    def holds(self, max_replay: int) -> dict[str, int]:
        """Per subscribed date, the highest sequence number retention may delete: the lowest
        position a connected subscriber would resume from, but never more than
        ``max_replay`` events behind the published head (a client further behind is
        ``too_far_behind`` anyway, so a stuck client cannot pin the log forever)."""
        found: dict[str, int] = {}
        for date, channel in self._channels.items():
            needs = [n for s in channel.subscribers if (n := s.needs(date)) is not None]
            if needs:
                found[date] = max(min(needs), channel.head - max_replay, 0)
        return found

    def cached(self, date: str, epoch: str, after: int) -> list[Event] | None:
        """Every event of ``date`` after ``after`` from the tail cache, or None when the
        cache cannot answer for sure (other epoch, not cached, ahead of the head, or a
        channel nobody subscribes to, which the relay does not follow)."""
        channel = self._channels.get(date)
        if channel is None or not channel.subscribers:
            return None
        if channel.epoch != epoch or after > channel.head:
            return None
        if after < channel.min_seq - 1:
            return None
        if after == channel.head:
            return []
        if not channel.tail or channel.tail[0].seq > after + 1:
            return None
        start = after + 1 - channel.tail[0].seq
        return list(itertools.islice(channel.tail, start, None))
