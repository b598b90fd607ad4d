"""Client bug injection as a policy handed to ``ChannelState``, for the harness self-test.

A channel asks its policy at the three places a client bug can change its rules: a resync
(``resync_required``, or an epoch change), a duplicate, and an event arriving at all. The
default ``ChannelPolicy`` does what the rules say; ``InjectedBugs`` misbehaves for the bugs
it was given (names from the registry, ``synccli.injection.CLIENT_BUGS``), each one really
applying events wrongly so the checker must catch it. A policy holds per-channel state:
give every channel its own (``ChannelPolicy.for_bugs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from synccli.domain.values import Event
from synccli.injection import check_bugs

if TYPE_CHECKING:
    from synccli.protocol.channel import ChannelState, Effects

NO_DEDUPE = "no-dedupe"
NO_REORDER = "no-reorder-buffer"
IGNORE_RESYNC = "ignore-resync"


class ChannelPolicy:
    """The correct client: every rule of ``ChannelState`` applies as written."""

    names: frozenset[str] = frozenset()

    @staticmethod
    def for_bugs(names: Iterable[str] = ()) -> ChannelPolicy:
        """The policy for ``names`` (client bugs; an unknown name is a ``ConfigError``)."""
        bugs = frozenset(names)
        return InjectedBugs(bugs) if bugs else ChannelPolicy()

    def resync(self, channel: ChannelState, reason: str, effects: Effects) -> bool:
        """The server asked for a resync, or the epoch changed: start over from a snapshot.
        False when the channel carries on as if nothing happened."""
        channel.resync(reason, effects)
        return True

    def receive(self, channel: ChannelState, event: Event, replay: bool, effects: Effects) -> bool:
        """Take an event of the channel's epoch before the ordering rules see it; True when
        handled here (the rules then leave it alone)."""
        return False

    def duplicate(
        self, channel: ChannelState, event: Event, replay: bool, effects: Effects
    ) -> None:
        """An event at or below the position arrived again (already recorded as ``dup``)."""

    def replaced(self, seq: int) -> None:
        """The channel took a snapshot at ``seq``."""


class InjectedBugs(ChannelPolicy):
    """Deliberate client bugs: ``no-dedupe`` applies a duplicate again, ``no-reorder-buffer``
    applies events in arrival order, ``ignore-resync`` ignores resyncs and epoch changes."""

    def __init__(self, names: frozenset[str]) -> None:
        check_bugs(names, "client")
        self.names = names
        # Only the no-reorder-buffer bug needs every applied seq (and the last snapshot's).
        self._seen: set[int] = set()
        self._snapshot_seq = 0

    def resync(self, channel: ChannelState, reason: str, effects: Effects) -> bool:
        return False if IGNORE_RESYNC in self.names else super().resync(channel, reason, effects)

    def receive(self, channel: ChannelState, event: Event, replay: bool, effects: Effects) -> bool:
        if NO_REORDER not in self.names:
            return False
        if event.seq in self._seen or event.seq <= self._snapshot_seq:
            channel.record_duplicate(event, effects)
            return True
        self._seen.add(event.seq)
        channel.apply(event, replay, effects, advance=False)
        channel.seq = max(channel.seq, event.seq)
        return True

    def duplicate(
        self, channel: ChannelState, event: Event, replay: bool, effects: Effects
    ) -> None:
        if NO_DEDUPE in self.names:
            channel.apply(event, replay, effects, advance=False)

    def replaced(self, seq: int) -> None:
        self._snapshot_seq = seq
        self._seen.clear()
