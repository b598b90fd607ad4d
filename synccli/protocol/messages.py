"""Wire protocol v1: one dataclass per message type, each declaring its fields once.

Frames are JSON text, one message per frame, each with a ``type``. A message's ``FIELDS``
table (``Field``, ``Group``, ``Variant``, ``Inline``) drives both ``parse`` and ``to_wire``,
so the two cannot drift apart. Client messages are validated strictly (the server faces the
world); a field that is missing, of the wrong type, oversized or holding a control
character or a lone surrogate raises ``ProtocolError("bad_message")``, a frame that is not
JSON or nests deeper than ``MAX_DEPTH`` ``bad_json`` and an unknown type ``unknown_type``.
Both parsers raise nothing but ``ProtocolError`` on any input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, ClassVar

from synccli.domain.channels import WriteRequest
from synccli.domain.values import MAX_ID_LEN as MAX_ID_LEN  # re-exported: the id limit
from synccli.domain.values import (
    Event,
    Position,
    Row,
    check_text,
)
from synccli.errors import ProtocolError
from synccli.protocol.fields import (
    DATE,
    EVENT,
    EVENTS,
    FLAG,
    ID,
    NOTE,
    POSITION,
    POSITIONS,
    ROW,
    ROWS,
    SEQ,
    TEXT,
    Field,
    Group,
    Inline,
    Variant,
    WireMessage,
)

#: The deepest nesting a frame may have (v1 needs 4: ``events[].appointment``).
MAX_DEPTH = 32

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
        "forbidden",
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
CLOSE_UNACKED = 4002
CLOSE_TOKEN_EXPIRED = 4003

RESYNC_REASONS = frozenset({"epoch_changed", "history_truncated", "too_far_behind"})


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def loads(text: str | bytes) -> dict[str, Any]:
    """Decode one frame into a dict with a string ``type``."""
    try:
        if isinstance(text, bytes):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        if _too_deep(text):
            raise ProtocolError("bad_json", f"frame nests deeper than {MAX_DEPTH} levels")
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    if not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", "a message needs a string 'type'")
    return data


def _too_deep(text: str) -> bool:
    """Whether ``text`` nests deeper than ``MAX_DEPTH``, found without recursion (the JSON
    decoder recurses once per level and a small frame can hold thousands)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _BRACKETS.findall(_STRINGS.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def valid_id(value: object) -> bool:
    """Whether ``value`` is usable as a ``requestId`` (then a write is answered by ``result``)."""
    try:
        check_text(value, "requestId", MAX_ID_LEN)
    except ProtocolError:
        return False
    return True


ON_DATE = Field("date", "date", DATE)
AT = (ON_DATE, Field("epoch", "epoch", TEXT), Field("seq", "sequenceNum", SEQ))
EPOCH_IF_ANY = Field("epoch", "epoch", TEXT, optional=True)


# --------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Subscribe(WireMessage):
    """Follow a date, from ``since`` when the client already holds part of it."""

    type: ClassVar[str] = "subscribe"
    FIELDS = (ON_DATE, Field("since", "since", POSITION, optional=True))
    date: str
    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe(WireMessage):
    """Stop following a date."""

    type: ClassVar[str] = "unsubscribe"
    FIELDS = (ON_DATE,)
    date: str


@dataclass(frozen=True, slots=True)
class Ack(WireMessage):
    """Either one event (``message_id``) or everything of ``date`` up to ``seq`` (cumulative)."""

    type: ClassVar[str] = "ack"
    FIELDS = (
        Field("message_id", "messageId", ID, optional=True),
        Variant(
            "message_id",
            when=(),
            otherwise=(ON_DATE, Field("seq", "sequenceNum", SEQ), EPOCH_IF_ANY),
        ),
    )
    message_id: str | None = None
    date: str | None = None
    seq: int | None = None
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class RequestMissedEvents(WireMessage):
    """The events of ``date`` after ``last_seq``."""

    type: ClassVar[str] = "request_missed_events"
    FIELDS = (ON_DATE, Field("last_seq", "lastSequenceNum", SEQ), EPOCH_IF_ANY)
    date: str
    last_seq: int
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class GetSnapshot(WireMessage):
    """Every appointment of ``date`` as it stands."""

    type: ClassVar[str] = "get_snapshot"
    FIELDS = (ON_DATE,)
    date: str


@dataclass(frozen=True, slots=True)
class UpdateAppointmentState(WireMessage):
    """A write: move one appointment to ``state`` (idempotent by ``request_id``)."""

    type: ClassVar[str] = "update_appointment_state"
    FIELDS = (
        Field("request_id", "requestId", ID),
        Field("appointment_id", "appointmentId", TEXT),
        Field("state", "state", TEXT),
        Field("expected_version", "expectedVersion", SEQ, optional=True),
    )
    request_id: str
    appointment_id: str
    state: str
    expected_version: int | None = None
    #: Who asks (the token's ``sub``): set by the server from the connection's credential,
    #: never read from or written to the wire.
    actor: str | None = None

    def to_request(self) -> WriteRequest:
        """The domain write this message asks for."""
        return WriteRequest(
            self.request_id, self.appointment_id, self.state, self.expected_version, self.actor
        )


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
    message: ClientMessage = _parse(CLIENT_TYPES, data)
    return message


def _parse(types: dict[str, Any], data: dict[str, Any]) -> Any:
    cls = types.get(data["type"])
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {data['type'][:64]!r}")
    return cls.parse(data)


# --------------------------------------------------------------------------- server -> client


@dataclass(frozen=True, slots=True)
class EventMessage(WireMessage):
    """``appointments_updated``: one event, live or replayed."""

    type: ClassVar[str] = "appointments_updated"
    FIELDS = (Inline("event", EVENT), Field("replay", "replay", FLAG))
    event: Event
    replay: bool = False


@dataclass(frozen=True, slots=True)
class Subscribed(WireMessage):
    """The answer to ``subscribe``: the missed events if ``recovered``, else a snapshot."""

    type: ClassVar[str] = "subscribed"
    FIELDS = (
        *AT,
        Field("recovered", "recovered", FLAG),
        Variant(
            "recovered",
            when=(Field("events", "events", EVENTS),),
            otherwise=(Field("snapshot", "snapshot", ROWS),),
        ),
    )
    date: str
    epoch: str
    seq: int
    recovered: bool
    events: list[Event] = field(default_factory=list)
    snapshot: list[Row] | None = None


@dataclass(frozen=True, slots=True)
class MissedEvents(WireMessage):
    """The answer to ``request_missed_events``."""

    type: ClassVar[str] = "missed_events"
    FIELDS = (*AT, Field("events", "events", EVENTS))
    date: str
    epoch: str
    seq: int
    events: list[Event]


@dataclass(frozen=True, slots=True)
class ResyncRequired(WireMessage):
    """The date's log cannot bring the client up to date: subscribe again."""

    type: ClassVar[str] = "resync_required"
    FIELDS = (ON_DATE, Field("reason", "reason", TEXT))
    date: str
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot(WireMessage):
    """The answer to ``get_snapshot``."""

    type: ClassVar[str] = "snapshot"
    FIELDS = (*AT, Field("appointments", "appointments", ROWS))
    date: str
    epoch: str
    seq: int
    appointments: list[Row]


@dataclass(frozen=True, slots=True)
class Result(WireMessage):
    """The answer to a write: the committed row and its sequence number, or an error."""

    type: ClassVar[str] = "result"
    FIELDS = (
        Field("request_id", "requestId", ID),
        Field("ok", "ok", FLAG),
        Variant(
            "ok",
            when=(
                Field("row", "appointment", ROW),
                Field("seq", "sequenceNum", SEQ, optional=True, omit=False),
            ),
            otherwise=(
                Group(
                    "error",
                    (
                        Field("error_code", "code", TEXT, optional=True, omit=False),
                        Field("error_message", "message", NOTE, optional=True, omit=False),
                    ),
                ),
            ),
        ),
    )
    request_id: str
    ok: bool
    row: Row | None = None
    seq: int | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat(WireMessage):
    """Every subscribed date's head, so an idle client notices what it missed."""

    type: ClassVar[str] = "heartbeat"
    FIELDS = (Field("positions", "positions", POSITIONS),)
    positions: dict[str, Position]


@dataclass(frozen=True, slots=True)
class ErrorMessage(WireMessage):
    """A refused message; ``ref`` names what it answers when known."""

    type: ClassVar[str] = "error"
    FIELDS = (
        Field("code", "code", TEXT),
        Field("message", "message", NOTE),
        Field("ref", "ref", ID, optional=True),
    )
    code: str
    message: str
    ref: str | None = None


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
    message: ServerMessage = _parse(SERVER_TYPES, loads(text))
    return message
