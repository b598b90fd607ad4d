"""Wire protocol v1: one dataclass per message type, with ``parse`` and ``to_wire``.

Frames are JSON text, one message per frame, each with a ``type``. Client messages are
validated strictly (the server faces the world); a field that is missing, of the wrong type
or oversized raises ``ProtocolError("bad_message")``, a frame that is not JSON ``bad_json``
and an unknown type ``unknown_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from synccli.domain.channels import WriteRequest
from synccli.domain.values import Event, Position, Row, check_date
from synccli.errors import ProtocolError

MAX_ID_LEN = 128
MAX_FIELD_LEN = 64

ERROR_CODES = frozenset(
    {
        "bad_json",
        "bad_message",
        "unknown_type",
        "not_found",
        "invalid_state",
        "invalid_transition",
        "conflict",
        "request_id_reused",
        "db_unavailable",
        "rate_limited",
        "too_many_subscriptions",
        "internal",
    }
)
MALFORMED_CODES = frozenset({"bad_json", "bad_message", "unknown_type"})

CLOSE_SHUTDOWN = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_ACK_RETRIES = 4000
CLOSE_SLOW_CONSUMER = 4001

RESYNC_REASONS = frozenset({"epoch_changed", "history_truncated", "too_far_behind"})


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def loads(text: str | bytes) -> dict[str, Any]:
    """Decode one frame into a dict with a string ``type``."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    if not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", "a message needs a string 'type'")
    return data


def _str(data: dict[str, Any], name: str, limit: int = MAX_FIELD_LEN) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_message", f"{name!r} must be a non-empty string")
    if len(value) > limit:
        raise ProtocolError("bad_message", f"{name!r} is longer than {limit} characters")
    return value


def _opt_str(data: dict[str, Any], name: str, limit: int = MAX_FIELD_LEN) -> str | None:
    return None if data.get(name) is None else _str(data, name, limit)


def _seq(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**53:
        raise ProtocolError("bad_message", f"{name!r} must be an integer >= 0")
    return value


def _opt_int(data: dict[str, Any], name: str) -> int | None:
    return None if data.get(name) is None else _seq(data, name)


# --------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Subscribe:
    type: ClassVar[str] = "subscribe"
    date: str
    since: Position | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Subscribe:
        since = data.get("since")
        position = None
        if since is not None:
            if not isinstance(since, dict):
                raise ProtocolError("bad_message", "'since' must be {epoch, sequenceNum}")
            position = Position(_str(since, "epoch"), _seq(since, "sequenceNum"))
        return cls(check_date(data.get("date")), position)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "date": self.date}
        if self.since is not None:
            out["since"] = {"epoch": self.since.epoch, "sequenceNum": self.since.seq}
        return out


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    type: ClassVar[str] = "unsubscribe"
    date: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Unsubscribe:
        return cls(check_date(data.get("date")))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "date": self.date}


@dataclass(frozen=True, slots=True)
class Ack:
    """Either one event (``message_id``) or everything of ``date`` up to ``seq`` (cumulative)."""

    type: ClassVar[str] = "ack"
    message_id: str | None = None
    date: str | None = None
    seq: int | None = None
    epoch: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Ack:
        if data.get("messageId") is not None:
            return cls(message_id=_str(data, "messageId", MAX_ID_LEN))
        if data.get("date") is None or data.get("sequenceNum") is None:
            raise ProtocolError("bad_message", "an ack needs 'messageId' or 'date'+'sequenceNum'")
        return cls(
            date=check_date(data.get("date")),
            seq=_seq(data, "sequenceNum"),
            epoch=_opt_str(data, "epoch"),
        )

    def to_wire(self) -> dict[str, Any]:
        if self.message_id is not None:
            return {"type": self.type, "messageId": self.message_id}
        out: dict[str, Any] = {"type": self.type, "date": self.date, "sequenceNum": self.seq}
        if self.epoch is not None:
            out["epoch"] = self.epoch
        return out


@dataclass(frozen=True, slots=True)
class RequestMissedEvents:
    type: ClassVar[str] = "request_missed_events"
    date: str
    last_seq: int
    epoch: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> RequestMissedEvents:
        return cls(
            check_date(data.get("date")), _seq(data, "lastSequenceNum"), _opt_str(data, "epoch")
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "date": self.date,
            "lastSequenceNum": self.last_seq,
        }
        if self.epoch is not None:
            out["epoch"] = self.epoch
        return out


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    type: ClassVar[str] = "get_snapshot"
    date: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> GetSnapshot:
        return cls(check_date(data.get("date")))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "date": self.date}


@dataclass(frozen=True, slots=True)
class UpdateAppointmentState:
    type: ClassVar[str] = "update_appointment_state"
    request_id: str
    appointment_id: str
    state: str
    expected_version: int | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> UpdateAppointmentState:
        return cls(
            _str(data, "requestId", MAX_ID_LEN),
            _str(data, "appointmentId"),
            _str(data, "state"),
            _opt_int(data, "expectedVersion"),
        )

    def to_request(self) -> WriteRequest:
        """The domain write this message asks for."""
        return WriteRequest(self.request_id, self.appointment_id, self.state, self.expected_version)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "requestId": self.request_id,
            "appointmentId": self.appointment_id,
            "state": self.state,
        }
        if self.expected_version is not None:
            out["expectedVersion"] = self.expected_version
        return out


ClientMessage = (
    Subscribe | Unsubscribe | Ack | RequestMissedEvents | GetSnapshot | UpdateAppointmentState
)
CLIENT_TYPES: dict[str, Any] = {
    cls.type: cls
    for cls in (
        Subscribe,
        Unsubscribe,
        Ack,
        RequestMissedEvents,
        GetSnapshot,
        UpdateAppointmentState,
    )
}


def parse_client_message(data: dict[str, Any]) -> ClientMessage:
    """Validate a decoded client frame (from ``loads``) into its message object."""
    cls = CLIENT_TYPES.get(data["type"])
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {data['type'][:64]!r}")
    message: ClientMessage = cls.parse(data)
    return message


# --------------------------------------------------------------------------- server -> client


def _events_wire(events: list[Event], replay: bool = True) -> list[dict[str, Any]]:
    return [event.to_wire(replay) for event in events]


def _events_parse(data: dict[str, Any]) -> list[Event]:
    events = data.get("events")
    if not isinstance(events, list):
        raise ProtocolError("bad_message", "'events' must be a list")
    return [Event.from_wire(item) for item in events]


def _rows_parse(items: Any) -> list[Row]:
    if not isinstance(items, list):
        raise ProtocolError("bad_message", "a snapshot must be a list of appointments")
    return [Row.from_wire(item) for item in items]


@dataclass(frozen=True, slots=True)
class EventMessage:
    """``appointments_updated``: one event, live or replayed."""

    type: ClassVar[str] = "appointments_updated"
    event: Event
    replay: bool = False

    @classmethod
    def parse(cls, data: dict[str, Any]) -> EventMessage:
        return cls(Event.from_wire(data), bool(data.get("replay", False)))

    def to_wire(self) -> dict[str, Any]:
        return self.event.to_wire(self.replay)


@dataclass(frozen=True, slots=True)
class Subscribed:
    type: ClassVar[str] = "subscribed"
    date: str
    epoch: str
    seq: int
    recovered: bool
    events: list[Event] = field(default_factory=list)
    snapshot: list[Row] | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Subscribed:
        recovered = bool(data.get("recovered"))
        return cls(
            check_date(data.get("date")),
            _str(data, "epoch"),
            _seq(data, "sequenceNum"),
            recovered,
            _events_parse(data) if recovered else [],
            None if recovered else _rows_parse(data.get("snapshot")),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "date": self.date,
            "epoch": self.epoch,
            "sequenceNum": self.seq,
            "recovered": self.recovered,
        }
        if self.recovered:
            out["events"] = _events_wire(self.events)
        else:
            out["snapshot"] = [row.to_wire() for row in self.snapshot or []]
        return out


@dataclass(frozen=True, slots=True)
class MissedEvents:
    type: ClassVar[str] = "missed_events"
    date: str
    epoch: str
    seq: int
    events: list[Event]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> MissedEvents:
        return cls(
            check_date(data.get("date")),
            _str(data, "epoch"),
            _seq(data, "sequenceNum"),
            _events_parse(data),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "date": self.date,
            "epoch": self.epoch,
            "sequenceNum": self.seq,
            "events": _events_wire(self.events),
        }


@dataclass(frozen=True, slots=True)
class ResyncRequired:
    type: ClassVar[str] = "resync_required"
    date: str
    reason: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ResyncRequired:
        return cls(check_date(data.get("date")), _str(data, "reason"))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "date": self.date, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Snapshot:
    type: ClassVar[str] = "snapshot"
    date: str
    epoch: str
    seq: int
    appointments: list[Row]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            check_date(data.get("date")),
            _str(data, "epoch"),
            _seq(data, "sequenceNum"),
            _rows_parse(data.get("appointments")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "date": self.date,
            "epoch": self.epoch,
            "sequenceNum": self.seq,
            "appointments": [row.to_wire() for row in self.appointments],
        }


@dataclass(frozen=True, slots=True)
class Result:
    type: ClassVar[str] = "result"
    request_id: str
    ok: bool
    row: Row | None = None
    seq: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Result:
        request_id = _str(data, "requestId", MAX_ID_LEN)
        if data.get("ok"):
            row = Row.from_wire(data.get("appointment"))
            return cls(request_id, True, row, _opt_int(data, "sequenceNum"))
        raw = data.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return cls(
            request_id, False, error_code=error.get("code"), error_message=error.get("message")
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "requestId": self.request_id, "ok": self.ok}
        if self.ok:
            out["appointment"] = self.row.to_wire() if self.row else None
            out["sequenceNum"] = self.seq
        else:
            out["error"] = {"code": self.error_code, "message": self.error_message}
        return out


@dataclass(frozen=True, slots=True)
class Heartbeat:
    type: ClassVar[str] = "heartbeat"
    positions: dict[str, Position]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Heartbeat:
        raw = data.get("positions")
        if not isinstance(raw, dict):
            raise ProtocolError("bad_message", "'positions' must be an object")
        positions = {}
        for date_, pos in raw.items():
            if not isinstance(pos, dict):
                raise ProtocolError("bad_message", "a position must be {epoch, sequenceNum}")
            positions[check_date(date_)] = Position(_str(pos, "epoch"), _seq(pos, "sequenceNum"))
        return cls(positions)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "positions": {
                d: {"epoch": p.epoch, "sequenceNum": p.seq} for d, p in self.positions.items()
            },
        }


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    type: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ErrorMessage:
        return cls(_str(data, "code"), str(data.get("message", "")), data.get("ref"))

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


ServerMessage = (
    EventMessage
    | Subscribed
    | MissedEvents
    | ResyncRequired
    | Snapshot
    | Result
    | Heartbeat
    | ErrorMessage
)
SERVER_TYPES: dict[str, Any] = {
    cls.type: cls
    for cls in (
        EventMessage,
        Subscribed,
        MissedEvents,
        ResyncRequired,
        Snapshot,
        Result,
        Heartbeat,
        ErrorMessage,
    )
}


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Decode and validate one frame the server sent."""
    data = loads(text)
    cls = SERVER_TYPES.get(data["type"])
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {data['type'][:64]!r}")
    message: ServerMessage = cls.parse(data)
    return message
