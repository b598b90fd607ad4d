"""Serving a resume: every event after a position, contiguous, or a reason why not.

Recovery is all or nothing (guarantee 4): either every event after the position comes back,
in order, or a refusal with the ``resync_required`` reason. The tail cache answers first; the
durable log answers when the cache cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from synccli.domain.channels import Channel
from synccli.domain.values import Event, Position
from synccli.server.services import Services


@dataclass(frozen=True, slots=True)
class Replay:
    """Every event after the asked position; ``position`` is where they end."""

    events: list[Event]
    position: Position


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


def contiguous(events: list[Event], channel: Channel, after: int) -> bool:
    """Whether ``events`` are exactly ``after+1 .. head`` of the channel's epoch."""
    if len(events) != channel.head_seq - after:
        return False
    return all(
        event.seq == after + 1 + index and event.epoch == channel.epoch
        for index, event in enumerate(events)
    )


async def replay(services: Services, date: str, epoch: str | None, after: int) -> Replay | str:
    """The events of ``date`` after ``after`` (in ``epoch`` if given), or a refusal reason.
    Raises ``DatabaseUnavailable`` when the cache cannot answer and the database is down."""
    limit = services.config.max_replay
    position = services.hub.position(date)
    cache_epoch = epoch if epoch is not None else (position.epoch if position else None)
    if cache_epoch is not None:
        cached = services.hub.cached(date, cache_epoch, after)
        if cached is not None and len(cached) <= limit:
            return Replay(
                services.bugs.replay_filter(cached), Position(cache_epoch, after + len(cached))
            )
    channel = await services.db.run(services.store.channel, date)
    reason = refusal(channel, epoch, after, limit)
    if reason is not None:
        return reason
    events: list[Event] = []
    if channel.head_seq > after:
        events = await services.db.run(
            services.store.events_since, date, after, channel.head_seq - after
        )
    if not contiguous(events, channel, after):
        return "history_truncated"  # pruned between the two reads
    return Replay(services.bugs.replay_filter(events), Position(channel.epoch, channel.head_seq))
