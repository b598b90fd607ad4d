"""The board of a day at any sequence number, rebuilt from the log.

Rules:

* The board at ``seq`` is every appointment as it was just after the commit numbered ``seq``
  (0: before the day's first event, the seeded day).
* An appointment's row there is the ``row`` of its last entry at or below ``seq``; with none,
  the ``before`` of its first entry above ``seq``; with no entry at all, its stored row (no
  committed change touched it).
* So the log can rebuild every board from ``min_seq - 1`` (retention pruned what is older)
  up to the head, except below an entry whose ``before`` it does not know (written before
  schema 2) when that is the first kept entry of its appointment: ``earliest_seq``.
* Seeding writes rows, not events: an appointment seeded after ``seq`` shows as seeded.
* So only three entries per appointment decide a board (its last at or below ``seq``, its
  first above, its first of all): ``Store.board_log`` reads just those (``DayLog.at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from datetime import date as date_type

from synccli.audit.entries import DayLog, LogEntry
from synccli.domain.values import Row, iso_ms
from synccli.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rebuild:
    """The board at ``seq``; ``committed_at`` is when that commit happened (None at 0 or
    when the log no longer keeps it)."""

    seq: int
    rows: list[Row]
    committed_at: str | None


def earliest_seq(day: DayLog) -> int:
    """The lowest sequence number whose board ``day``'s log can rebuild."""
    floor = day.min_seq - 1
    seen: set[str] = set()
    for entry in day.entries:
        if entry.appointment_id not in seen:
            seen.add(entry.appointment_id)
            if not entry.knows_before:
                floor = max(floor, entry.seq)
    return floor


def seq_at(day: DayLog, moment: str) -> int:
    """The highest sequence number committed at or before ``moment`` (``iso_ms`` text);
    ``ConfigError`` when ``moment`` is before the first kept event."""
    found: int | None = None
    for entry in day.entries:
        if entry.committed_at <= moment:
            found = entry.seq
    if found is None:
        first = day.entries[0].committed_at if day.entries else None
        where = f"the first event ({first})" if first else "any event"
        raise ConfigError(f"{moment} is before {where} of {day.date}; pick a later --at")
    return found


def target_seq(day: DayLog, moment: str | None, seq: int | None) -> int:
    """The sequence number a board asks for: at ``moment`` (``seq_at``), else ``seq``,
    else the head."""
    if moment is not None:
        return seq_at(day, moment)
    return day.head if seq is None else seq


def rebuild(day: DayLog, seq: int) -> Rebuild:
    """The board of ``day`` at ``seq`` (see the module rules); ``ConfigError`` outside the
    range the log can rebuild."""
    if day.at is not None and seq != day.at:
        raise ValueError(f"this log of {day.date} decides the board at {day.at} only, not {seq}")
    low, head = earliest_seq(day), day.head
    if not low <= seq <= head:
        pruned = f"; events up to {day.min_seq - 1} were pruned" if day.min_seq > 1 else ""
        raise ConfigError(
            f"the log of {day.date} can rebuild the board from sequence {low} to {head}, "
            f"not {seq}{pruned}"
        )
    board = {row.appointment_id: row for row in day.rows}
    committed_at: str | None = None
    # Entries are in sequence order: those at or below ``seq`` come first. Only the entries
    # that decide a row are parsed (``LogEntry.row`` and ``before`` are lazy).
    decided: dict[str, LogEntry] = {}
    for entry in day.entries:
        key = entry.appointment_id
        if entry.seq <= seq:
            decided[key] = entry
            if entry.seq == seq:
                committed_at = entry.committed_at
        elif key not in decided:
            # The first change after ``seq``: the row as it was then is its ``before``
            # (known: ``earliest_seq`` is at or above every first entry without one).
            decided[key] = entry
    for key, entry in decided.items():
        row = entry.row if entry.seq <= seq else entry.before
        assert row is not None, "seq is at or above earliest_seq"
        board[key] = row
    return Rebuild(seq, [board[key] for key in sorted(board)], committed_at)


def check_head(day: DayLog) -> list[str]:
    """Where the log disagrees with itself or with the stored rows, one sentence each
    (empty: it agrees). An entry's ``before`` must be the ``row`` of the previous entry of
    its appointment, and the board rebuilt at the head must be the stored rows. Needs the
    whole day (``day.at`` None)."""
    if day.at is not None:
        raise ValueError(f"the head check of {day.date} needs every entry, not a board's")
    problems: list[str] = []
    last: dict[str, Row] = {}
    for entry in day.entries:
        previous = last.get(entry.appointment_id)
        if previous is not None and entry.before is not None and entry.before != previous:
            problems.append(
                f"event {entry.seq} of {entry.appointment_id} starts from version "
                f"{entry.before.version} ({entry.before.state}), not from the previous event's "
                f"version {previous.version} ({previous.state})"
            )
        last[entry.appointment_id] = entry.row
    stored = {row.appointment_id: row for row in day.rows}
    for key, row in sorted(last.items()):
        now = stored.get(key)
        if now is None:
            problems.append(f"{key} is in the log but not among the stored rows")
        elif now != row:
            problems.append(
                f"{key} is stored at version {now.version} ({now.state}) but the log ends at "
                f"version {row.version} ({row.state})"
            )
    return problems


def parse_moment(text: str, date: str) -> str:
    """``--at``: an ISO 8601 time as ``iso_ms`` text (UTC unless it has an offset; a time
    alone is on ``date``); ``ConfigError`` when it is not one."""
    try:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = datetime.combine(date_type.fromisoformat(date), time.fromisoformat(text))
    except ValueError:
        raise ConfigError(
            f"--at {text!r} is not a time; use ISO 8601, e.g. {date}T10:15:00Z or 10:15"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_ms(moment)
