"""Serving a resume, decided without I/O: every event after a position, or why not.

Recovery is all or nothing (guarantee 4): either every event after the position comes back,
in order, or a refusal with the ``resync_required`` reason. The tail cache answers first
(``from_cache``); when it cannot, the adapter reads the channel and the log and
``from_log`` decides on what it read. ``serve_replay`` puts the steps together as a
generator that yields those reads as store operations (``server_ops``) for the session's
adapter to run. The log is read in pages of at most ``page`` events (``read_page`` reads
the next one), so a replay is streamed, never built whole: a page that is no longer
contiguous (pruned meanwhile) ends it with ``history_truncated``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Position
from synccli.protocol.server_ops import Channels, ReadChannel, ReadEvents, SendPolicy, StoreOp


@dataclass(frozen=True, slots=True)
class Replay:
    """Events after the asked position; ``position`` is where they end, ``target`` the head
    the replay must reach (more pages follow while ``position.seq < target``)."""

    events: list[Event]
    position: Position
    target: int = -1

    @property
    def complete(self) -> bool:
        return self.position.seq >= self.target


def refusal(channel: Channel, epoch: str | None, after: int, max_replay: int) -> str | None:
    """Why a resume from ``(epoch, after)`` cannot be served from ``channel``, or None."""
    if epoch is not None and epoch != channel.epoch:
        return "epoch_changed"
    if after > channel.head_seq:
        return "epoch_changed"  # ahead of the head: the client saw another history
    if after < channel.min_seq - 1:
        return "history_truncated"
    if channel.head_seq - after > max_replay:
        return "too_far_behind"
    return None


def contiguous(events: list[Event], epoch: str, after: int, count: int) -> bool:
    """Whether ``events`` are exactly ``after+1 .. after+count`` of ``epoch``."""
    if len(events) != count:
        return False
    return all(
        event.seq == after + 1 + index and event.epoch == epoch
        for index, event in enumerate(events)
    )


def cache_epoch(epoch: str | None, published: Position | None) -> str | None:
    """The epoch the tail cache is asked about: the client's, else the published one."""
    if epoch is not None:
        return epoch
    return None if published is None else published.epoch


def from_cache(cached: list[Event] | None, epoch: str, after: int, limit: int) -> Replay | None:
    """The replay the tail cache answers (``Hub.cached``), or None: ask the log."""
    if cached is None or len(cached) > limit:
        return None
    end = after + len(cached)
    return Replay(cached, Position(epoch, end), end)


def from_log(channel: Channel, events: list[Event], after: int, page: int) -> Replay | str:
    """The first page read from the log (``events_since`` after a ``refusal``-free channel
    read), or ``history_truncated`` when the log was pruned between the two reads."""
    count = min(page, channel.head_seq - after)
    if not contiguous(events, channel.epoch, after, count):
        return "history_truncated"
    return Replay(events, Position(channel.epoch, after + count), channel.head_seq)


def read_page(
    date: str, position: Position, target: int, page: int, policy: SendPolicy
) -> Generator[StoreOp, Any, Replay | str]:
    """The page of the log after ``position`` towards ``target`` (yields its read)."""
    count = min(page, target - position.seq)
    events: list[Event] = yield ReadEvents(date, position.seq, count)
    if not contiguous(events, position.epoch, position.seq, count):
        return "history_truncated"
    end = Position(position.epoch, position.seq + count)
    return Replay(policy.replay(events), end, target)


def serve_replay(
    channels: Channels,
    policy: SendPolicy,
    limit: int,
    page: int,
    date: str,
    epoch: str | None,
    after: int,
) -> Generator[StoreOp, Any, Replay | str]:
    """The events of ``date`` after ``after`` (in ``epoch`` if given), or a refusal: all of
    them from the tail cache when it can answer, else the first page of the log (yields the
    reads to run; ``read_page`` continues)."""
    asked = cache_epoch(epoch, channels.position(date))
    if asked is not None:
        cached = from_cache(channels.cached(date, asked, after), asked, after, limit)
        if cached is not None:
            return Replay(policy.replay(cached.events), cached.position, cached.target)
    channel: Channel = yield ReadChannel(date)
    reason = refusal(channel, epoch, after, limit)
    if reason is not None:
        return reason
    events: list[Event] = []
    if channel.head_seq > after:
        events = yield ReadEvents(date, after, min(page, channel.head_seq - after))
    outcome = from_log(channel, events, after, page)
    if isinstance(outcome, str):
        return outcome
    return Replay(policy.replay(outcome.events), outcome.position, outcome.target)
