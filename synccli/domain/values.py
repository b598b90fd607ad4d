"""The domain values every layer shares: rows, events, positions.

An appointment is always the same object on the wire (``Row.to_wire``), in snapshots and in
events. An ``Event`` is one committed change of one channel (a date); its wire form is built
once and reused for every client (``Event.wire_json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from synccli.errors import ProtocolError

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# C0 and C1 controls (a newline forges a log line), lone surrogates (not encodable as UTF-8,
# so no database or log can hold them) and the Unicode line separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

MAX_FIELD_LEN = 64
MAX_ID_LEN = 128


def check_date(value: object, field_name: str = "date") -> str:
    """Return ``value`` if it is a valid ``YYYY-MM-DD`` date, else raise ``bad_message``."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ProtocolError("bad_message", f"{field_name!r} must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ProtocolError(
            "bad_message", f"{field_name!r} is not a calendar date: {value}"
        ) from None
    return value


def check_text(value: object, field_name: str, limit: int = MAX_FIELD_LEN) -> str:
    """Return ``value`` if it is a non-empty string of at most ``limit`` characters with no
    control character or lone surrogate (it names something), else raise ``bad_message``."""
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_message", f"{field_name!r} must be a non-empty string")
    if len(value) > limit:
        raise ProtocolError("bad_message", f"{field_name!r} is longer than {limit} characters")
    if _UNSAFE.search(value):
        raise ProtocolError(
            "bad_message", f"{field_name!r} contains a control character or a lone surrogate"
        )
    return value


def check_object(value: object, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object, else raise ``bad_message`` naming ``what``."""
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", f"{what} must be an object")
    return value


def check_seq(value: object, field_name: str) -> int:
    """Return ``value`` if it is an integer in ``[0, 2**53)`` (exact in JavaScript too), else
    raise ``bad_message``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise ProtocolError("bad_message", f"{field_name!r} must be an integer >= 0")
    return value


def iso_ms(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-11-26T10:15:30.123Z``."""
    # isoformat truncates to milliseconds like ``microsecond // 1000`` and is twice as fast
    # as strftime; the write path stamps every check-in.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso_ms(text: str) -> datetime:
    """Inverse of ``iso_ms``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def message_id(date_: str, epoch: str, seq: int) -> str:
    """The id of an event: the same on every re-send."""
    return f"{date_}:{epoch}:{seq}"


@dataclass(frozen=True, slots=True)
class Row:
    """One appointment, as stored and as sent."""

    appointment_id: str
    date: str
    patient: str
    state: str
    state_time: str | None
    version: int
    updated_at: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "appointmentId": self.appointment_id,
            "date": self.date,
            "patient": self.patient,
            "state": self.state,
            "stateTime": self.state_time,
            "version": self.version,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Row:
        data = check_object(value, "an appointment")
        state_time = data.get("stateTime")
        return cls(
            appointment_id=_string(data, "appointmentId"),
            date=check_date(data.get("date")),
            patient=_string(data, "patient"),
            state=_string(data, "state"),
            state_time=None if state_time is None else _string(data, "stateTime"),
            version=check_seq(data.get("version"), "version"),
            updated_at=_string(data, "updatedAt"),
        )


@dataclass(frozen=True, slots=True)
class Position:
    """Where a channel (or a client's view of it) stands: an epoch and a sequence number."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change on one channel."""

    date: str
    epoch: str
    seq: int
    row: Row
    action_id: str | None
    committed_at: str
    _wire: dict[bool, str] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def message_id(self) -> str:
        return message_id(self.date, self.epoch, self.seq)

    def to_wire(self, replay: bool = False) -> dict[str, Any]:
        """The full ``appointments_updated`` message for this event."""
        return {
            "type": "appointments_updated",
            "id": self.message_id,
            "date": self.date,
            "epoch": self.epoch,
            "sequenceNum": self.seq,
            "requiresAck": True,
            "actionId": self.action_id,
            "appointment": self.row.to_wire(),
            "committedAt": self.committed_at,
            "replay": replay,
        }

    def wire_json(self, replay: bool = False) -> str:
        """The serialised message, built once per event and flag and then shared."""
        cached = self._wire.get(replay)
        if cached is None:
            cached = json.dumps(self.to_wire(replay), separators=(",", ":"))
            self._wire[replay] = cached
        return cached

    @classmethod
    def from_wire(cls, value: Any) -> Event:
        data = check_object(value, "an event")
        action_id = data.get("actionId")
        return cls(
            date=check_date(data.get("date")),
            epoch=check_text(data.get("epoch"), "epoch"),
            seq=check_seq(data.get("sequenceNum"), "sequenceNum"),
            row=Row.from_wire(data.get("appointment")),
            action_id=None if action_id is None else check_text(action_id, "actionId", MAX_ID_LEN),
            committed_at=check_text(data.get("committedAt"), "committedAt"),
        )


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"{name!r} must be a string")
    return value
