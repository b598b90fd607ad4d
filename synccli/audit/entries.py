"""What the log holds per committed change (``LogEntry``), and what a read of it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from synccli.domain.channels import Channel
from synccli.domain.values import Row

#: The raw decoder: ``json.loads`` adds two whitespace regex matches per call, a third of
#: its cost on a short payload, and a tool may read a day of 100,000 events.
_decode = json.JSONDecoder().raw_decode


class LogEntry(NamedTuple):
    """One committed change: the event and its audit columns, in the order the log query
    returns them (a tuple: a day of 100,000 entries is built without a Python ``__init__``
    per entry). ``actor`` is who asked for it; ``from_*`` is the row just before it (None for
    an event written before schema 2: the log did not record it then). ``row`` and
    ``before`` parse the payload on each use: tools read them once per entry they show."""

    seq: int
    #: ``date:epoch:seq``.
    event_id: str
    appointment_id: str
    request_id: str | None
    #: The appointment after the change as stored: its wire JSON.
    payload: str
    committed_at: str
    actor: str | None
    from_state: str | None
    from_state_time: str | None
    from_updated_at: str | None

    @property
    def epoch(self) -> str:
        return self.event_id.split(":")[1]

    @property
    def wire(self) -> dict[str, Any]:
        """The appointment after the change, as its wire object."""
        data: dict[str, Any] = _decode(self.payload)[0]
        return data

    @property
    def row(self) -> Row:
        """The appointment after the change."""
        data = self.wire
        return Row(
            data["appointmentId"],
            data["date"],
            data["patient"],
            data["state"],
            data.get("stateTime"),
            data["version"],
            data["updatedAt"],
        )

    @property
    def knows_before(self) -> bool:
        """Whether the log recorded the row before the change (schema 2 onwards)."""
        return self.from_state is not None and self.from_updated_at is not None

    @property
    def before(self) -> Row | None:
        """The appointment just before the change: ``row`` with the ``from_*`` columns and
        the previous version; None when the log did not record it."""
        if self.from_state is None or self.from_updated_at is None:
            return None
        row = self.row
        return Row(
            row.appointment_id,
            row.date,
            row.patient,
            self.from_state,
            self.from_state_time,
            row.version - 1,
            self.from_updated_at,
        )


class LogLine(NamedTuple):
    """What ``synccli events`` shows of one entry (``None``: the log did not record it).
    The database can hand these over as JSON text, one value per page or row, which a
    driver converts far faster than ten cells per entry (``Store.log_lines``)."""

    seq: int
    committed_at: str
    appointment_id: str
    patient: str
    from_state: str | None
    to_state: str
    version: int
    actor: str | None
    request_id: str | None

    @classmethod
    def of(cls, entry: LogEntry) -> LogLine:
        after = entry.wire
        return cls(
            entry.seq,
            entry.committed_at,
            entry.appointment_id,
            after["patient"],
            entry.from_state,
            after["state"],
            after["version"],
            entry.actor,
            entry.request_id,
        )


@dataclass(frozen=True, slots=True)
class LogPage:
    """Entries of one date in order, and the date's channel (None: nothing was ever written
    on that date)."""

    date: str
    channel: Channel | None
    entries: list[LogEntry]


@dataclass(frozen=True, slots=True)
class LinePage:
    """``LogPage`` as the lines a tool shows."""

    date: str
    channel: Channel | None
    lines: list[LogLine]


@dataclass(frozen=True, slots=True)
class DayLog:
    """A whole day as one read transaction saw it: its channel, its stored rows and every
    entry the log still keeps (``channel.min_seq`` onwards); or, when ``at`` is set, only
    the entries that decide the board at ``at``: per appointment its last entry at or below
    ``at``, its first above, and its first of all (``Store.board_log``)."""

    date: str
    channel: Channel | None
    rows: list[Row]
    entries: list[LogEntry]
    at: int | None = None

    @property
    def head(self) -> int:
        return 0 if self.channel is None else self.channel.head_seq

    @property
    def min_seq(self) -> int:
        return 1 if self.channel is None else self.channel.min_seq


def decisive(entries: list[LogEntry], at: int) -> list[LogEntry]:
    """Of ``entries`` (in order), those that decide the board at ``at``: per appointment
    the last at or below ``at``, the first above it and the first of all (what
    ``select_board_log`` asks the database for)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    after: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = entry.appointment_id
        first.setdefault(key, index)
        if entry.seq <= at:
            last[key] = index
        else:
            after.setdefault(key, index)
    keep = sorted({*first.values(), *last.values(), *after.values()})
    return [entries[index] for index in keep]
