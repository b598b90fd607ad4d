"""What the log holds per committed change (``LogEntry``), and what a read of it returns."""

from __future__ import annotations

from dataclasses import dataclass

from synccli.domain.channels import Channel
from synccli.domain.values import Row


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One committed change: the event (``row`` is the appointment after it) and its audit
    columns. ``actor`` is who asked for it; ``before`` is the row just before it, None for an
    event written before schema 2 (the log did not record it then)."""

    seq: int
    epoch: str
    row: Row
    request_id: str | None
    committed_at: str
    actor: str | None
    before: Row | None

    @property
    def appointment_id(self) -> str:
        return self.row.appointment_id

    @property
    def from_state(self) -> str | None:
        return None if self.before is None else self.before.state


@dataclass(frozen=True, slots=True)
class LogPage:
    """Entries of one date in order, and the date's channel (None: nothing was ever written
    on that date)."""

    date: str
    channel: Channel | None
    entries: list[LogEntry]


@dataclass(frozen=True, slots=True)
class DayLog:
    """A whole day as one read transaction saw it: its channel, its stored rows and every
    entry the log still keeps (``channel.min_seq`` onwards)."""

    date: str
    channel: Channel | None
    rows: list[Row]
    entries: list[LogEntry]

    @property
    def head(self) -> int:
        return 0 if self.channel is None else self.channel.head_seq

    @property
    def min_seq(self) -> int:
        return 1 if self.channel is None else self.channel.min_seq
