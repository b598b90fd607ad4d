"""A channel (one date's stream of events), its status, and a write to it."""

from __future__ import annotations

from dataclasses import dataclass

from synccli.domain.values import Event, Row


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One requested state change of one appointment. ``request_id`` makes it idempotent;
    ``expected_version``, when given, must match the row's version. ``actor`` is who asked
    (a signed token's ``sub``, else the client id the connection gave), stored with the
    event it commits; None when nobody is known."""

    request_id: str
    appointment_id: str
    state: str
    expected_version: int | None = None
    actor: str | None = None

    def fingerprint(self) -> str:
        """What makes two writes with one request id "the same content" (another user's
        request id is not the same write: its stored outcome is not theirs to read)."""
        base = f"{self.appointment_id}|{self.state}|{self.expected_version}"
        return base if self.actor is None else f"{base}|{self.actor}"


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel's durable position. ``min_seq`` is the oldest event still in the log
    (``head_seq + 1`` when the log is empty)."""

    date: str
    epoch: str
    head_seq: int
    min_seq: int


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The committed result of a write. ``event`` is None when ``replayed``: the request id
    was seen before with the same content and its stored result is returned."""

    request_id: str
    row: Row
    seq: int
    event: Event | None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """What ``synccli db status`` shows of a channel: its position and how much it holds.
    ``oldest_kept`` is when its oldest kept event (``min_seq``) was committed, None when its
    log is empty."""

    channel: Channel
    events: int
    appointments: int
    oldest_kept: str | None = None

    @property
    def pruned(self) -> int:
        """How many of the channel's events retention has deleted (all below ``min_seq``)."""
        return self.channel.min_seq - 1
