"""Wire protocol v1 codec: every message type round-trips, and every malformed field is
refused with the right code."""

from __future__ import annotations

from typing import Any

import pytest

from synccli.domain.values import Event, Position, Row
from synccli.errors import ProtocolError
from synccli.protocol.messages import (
    Ack,
    ErrorMessage,
    EventMessage,
    GetSnapshot,
    Heartbeat,
    MissedEvents,
    RequestMissedEvents,
    Result,
    ResyncRequired,
    Snapshot,
    Subscribe,
    Subscribed,
    Unsubscribe,
    UpdateAppointmentState,
    dumps,
    loads,
    parse_client_message,
    parse_server_message,
)

ROW = Row("2026-11-26-0001", "2026-11-26", "Ada", "Present", "2026-11-26T09:00:00.000Z", 2,
          "2026-11-26T09:00:00.000Z")  # fmt: skip
EVENT = Event("2026-11-26", "e1", 7, ROW, "c001-1", "2026-11-26T09:00:00.123Z")

CLIENT_MESSAGES = [
    Subscribe("2026-11-26"),
    Subscribe("2026-11-26", Position("e1", 5)),
    Unsubscribe("2026-11-26"),
    Ack(message_id="2026-11-26:e1:7"),
    Ack(date="2026-11-26", seq=7, epoch="e1"),
    RequestMissedEvents("2026-11-26", 3, "e1"),
    GetSnapshot("2026-11-26"),
    UpdateAppointmentState("r-1", "2026-11-26-0001", "Present", 1),
]
SERVER_MESSAGES = [
    EventMessage(EVENT, replay=True),
    Subscribed("2026-11-26", "e1", 7, True, [EVENT]),
    Subscribed("2026-11-26", "e1", 7, False, [], [ROW]),
    MissedEvents("2026-11-26", "e1", 7, [EVENT]),
    ResyncRequired("2026-11-26", "epoch_changed"),
    Snapshot("2026-11-26", "e1", 7, [ROW]),
    Result("r-1", True, ROW, 7),
    Result("r-2", False, error_code="conflict", error_message="version 2, expected 1"),
    Heartbeat({"2026-11-26": Position("e1", 7)}),
    ErrorMessage("bad_message", "'date' must be a date YYYY-MM-DD", "ref-1"),
]


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=lambda m: type(m).__name__)
def test_client_messages_round_trip(message: Any) -> None:
    assert parse_client_message(loads(dumps(message.to_wire()))) == message


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_messages_round_trip(message: Any) -> None:
    assert parse_server_message(dumps(message.to_wire())) == message


def test_an_event_is_serialised_once_and_names_its_message_id() -> None:
    event = Event("2026-11-26", "e9", 3, ROW, None, "2026-11-26T09:00:00.000Z")
    first = event.wire_json(replay=False)
    assert event.wire_json(replay=False) is first
    assert '"id":"2026-11-26:e9:3"' in first and '"replay":false' in first
    assert '"replay":true' in event.wire_json(replay=True)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"date": "2026-11-26"}', "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe"}', "bad_message"),
        ('{"type": "subscribe", "date": "2026-13-40"}', "bad_message"),
        ('{"type": "subscribe", "date": "26-11-2026"}', "bad_message"),
        ('{"type": "subscribe", "date": "2026-11-26", "since": 5}', "bad_message"),
        ('{"type": "subscribe", "date": "2026-11-26", "since": {"epoch": "e"}}', "bad_message"),
        ('{"type": "ack"}', "bad_message"),
        ('{"type": "ack", "date": "2026-11-26", "sequenceNum": -1}', "bad_message"),
        ('{"type": "ack", "date": "2026-11-26", "sequenceNum": true}', "bad_message"),
        ('{"type": "request_missed_events", "date": "2026-11-26"}', "bad_message"),
        ('{"type": "update_appointment_state", "requestId": "r"}', "bad_message"),
        (
            '{"type": "update_appointment_state", "requestId": "' + "x" * 129 + '", '
            '"appointmentId": "a", "state": "Present"}',
            "bad_message",
        ),
        (
            '{"type": "update_appointment_state", "requestId": "r", "appointmentId": "a", '
            '"state": "Present", "expectedVersion": "1"}',
            "bad_message",
        ),
    ],
)
def test_malformed_client_frames_are_refused_with_their_code(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(loads(frame))
    assert caught.value.code == code


def test_a_malformed_server_event_is_refused() -> None:
    wire = EVENT.to_wire()
    del wire["appointment"]["version"]
    with pytest.raises(ProtocolError, match="version"):
        parse_server_message(dumps(wire))
