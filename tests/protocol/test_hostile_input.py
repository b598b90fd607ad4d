"""The codec against hostile input: whatever a peer sends, both parsers raise only
``ProtocolError``, with ``bad_json`` for frames that do not decode and ``bad_message`` for
values that must never reach a database or a log line."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synccli.domain.values import Event, Position, Row
from synccli.errors import ProtocolError
from synccli.protocol.messages import (
    CLIENT_TYPES,
    MAX_DEPTH,
    SERVER_TYPES,
    Ack,
    ErrorMessage,
    EventMessage,
    Heartbeat,
    MissedEvents,
    Result,
    Snapshot,
    Subscribe,
    Subscribed,
    UpdateAppointmentState,
    dumps,
    loads,
    parse_client_message,
    parse_server_message,
    valid_id,
)

ROW = Row("2026-11-26-0001", "2026-11-26", "Ada", "Present", None, 2, "2026-11-26T09:00:00.000Z")
EVENT = Event("2026-11-26", "e1", 7, ROW, "c001-1", "2026-11-26T09:00:00.123Z")
WRITE = {"type": "update_appointment_state", "appointmentId": "a", "state": "Present"}


def code_of(frame: str | bytes, server: bool = False) -> str:
    with pytest.raises(ProtocolError) as caught:
        if server:
            parse_server_message(frame)
        else:
            parse_client_message(loads(frame))
    return caught.value.code


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_frame_is_bad_json_without_recursion(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    frame = opener * 30_000 + closer * 30_000  # 60 KB for "[": within the frame limit
    started = time.perf_counter()
    assert code_of(frame) == "bad_json"
    assert code_of(frame.encode(), server=True) == "bad_json"
    assert time.perf_counter() - started < 1.0


def test_nesting_up_to_the_limit_is_decoded_and_brackets_in_strings_do_not_count() -> None:
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert loads('{"type": "x", "v": ' + inner + "}")["type"] == "x"
    assert code_of('{"type": "x", "v": [' + inner + "]}") == "bad_json"
    brackets = "[{" * 5_000
    assert loads(json.dumps({"type": "x", "note": brackets}))["note"] == brackets


@pytest.mark.parametrize(
    "bad",
    ["\ud800", "a\udfffb", "line\nforged", "tab\there", "nul\x00", "del\x7f", "c1\x85", "\u2028"],
    ids=repr,
)
def test_ids_with_control_characters_or_lone_surrogates_are_bad_messages(bad: str) -> None:
    assert not valid_id(bad)
    for frame in (
        {**WRITE, "requestId": bad},
        {**WRITE, "requestId": "r-1", "appointmentId": bad},
        {"type": "ack", "messageId": bad},
        {"type": "subscribe", "date": "2026-11-26", "since": {"epoch": bad, "sequenceNum": 1}},
    ):
        assert code_of(json.dumps(frame)) == "bad_message", frame
    event = EVENT.to_wire()
    event["epoch"] = bad
    assert code_of(json.dumps(event), server=True) == "bad_message"


def test_the_refusal_never_echoes_the_bad_value() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(loads(json.dumps({**WRITE, "requestId": "x\nINFO forged"})))
    assert "forged" not in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize(
    "date", ["2026-11-26\n", "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0666", " 2026-11-26"]
)
def test_a_date_is_ascii_digits_and_nothing_after(date: str) -> None:
    assert code_of(json.dumps({"type": "get_snapshot", "date": date})) == "bad_message"


def test_printable_unicode_ids_are_fine() -> None:
    message = parse_client_message(loads(json.dumps({**WRITE, "requestId": "Zoë-名前-1"})))
    assert isinstance(message, UpdateAppointmentState) and message.request_id == "Zoë-名前-1"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "missed_events", "date": "2026-11-26", "epoch": "e", "sequenceNum": 1,
         "events": [5]},
        {"type": "snapshot", "date": "2026-11-26", "epoch": "e", "sequenceNum": 1,
         "appointments": [[]]},
        {"type": "subscribed", "date": "2026-11-26", "epoch": "e", "sequenceNum": 1,
         "recovered": True, "events": [None]},
        {"type": "appointments_updated", **{k: v for k, v in EVENT.to_wire().items()
                                             if k != "type"}, "appointment": "x"},
        {"type": "heartbeat", "positions": {"2026-11-26": [1]}},
        {"type": "result", "requestId": "r", "ok": False, "error": {"code": ["x"]}},
        {"type": "error", "code": "bad_json", "message": {"a": 1}},
    ],
)  # fmt: skip
def test_a_malformed_server_message_is_a_protocol_error(frame: dict[str, Any]) -> None:
    assert code_of(json.dumps(frame), server=True) == "bad_message"


def test_bytes_frames_decode_like_text_and_bad_bytes_are_bad_json() -> None:
    wire = dumps(Subscribe("2026-11-26").to_wire())
    assert parse_client_message(loads(wire.encode())) == Subscribe("2026-11-26")
    assert parse_client_message(loads(wire.encode("utf-16"))) == Subscribe("2026-11-26")
    assert code_of(b"\xff\xfe\xfd{") == "bad_json"


# --------------------------------------------------------------------------- property

VALID_WIRE = [
    message.to_wire()
    for message in (
        Subscribe("2026-11-26", Position("e1", 5)),
        Ack(date="2026-11-26", seq=7, epoch="e1"),
        UpdateAppointmentState("r-1", "2026-11-26-0001", "Present", 1),
        EventMessage(EVENT, replay=True),
        Subscribed("2026-11-26", "e1", 7, True, [EVENT]),
        Subscribed("2026-11-26", "e1", 7, False, [], [ROW]),
        MissedEvents("2026-11-26", "e1", 7, [EVENT]),
        Snapshot("2026-11-26", "e1", 7, [ROW]),
        Result("r-1", True, ROW, 7),
        Result("r-2", False, error_code="conflict", error_message="no"),
        Heartbeat({"2026-11-26": Position("e1", 7)}),
        ErrorMessage("bad_message", "no", "ref-1"),
    )
]


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in _all_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in _all_keys(item)}
    return set()


WIRE_KEYS = sorted(set().union(*(_all_keys(wire) for wire in VALID_WIRE)))
TYPES = sorted(set(CLIENT_TYPES) | set(SERVER_TYPES))
# Every character, lone surrogates and controls included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | st.sampled_from(["2026-11-26", "2026-02-30", "e1", "Present", *TYPES])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(WIRE_KEYS) | TEXT, inner, max_size=6)
    ),
    max_leaves=20,
)


def _replace_somewhere(value: Any, path: list[int], new: Any) -> Any:
    """``value`` with the leaf or subtree picked by ``path`` replaced by ``new``."""
    if not path or not isinstance(value, dict | list) or not value:
        return new
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _replace_somewhere(value[key], path[1:], new)
    return copy


def only_protocol_errors(frame: str) -> None:
    for parse in (lambda: parse_client_message(loads(frame)), lambda: parse_server_message(frame)):
        try:
            parse()
        except ProtocolError as exc:
            assert exc.code in {"bad_json", "bad_message", "unknown_type"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(WIRE_KEYS), JSON, max_size=8))
def test_random_fields_under_a_real_type_raise_only_protocol_errors(
    kind: str, fields: dict[str, Any]
) -> None:
    only_protocol_errors(json.dumps({**fields, "type": kind}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID_WIRE),
    st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=4),
    JSON,
)
def test_a_valid_message_with_one_part_replaced_raises_only_protocol_errors(
    wire: dict[str, Any], path: list[int], new: Any
) -> None:
    only_protocol_errors(json.dumps(_replace_somewhere(wire, path, new)))


@settings(max_examples=200, deadline=None)
@given(JSON | TEXT)
def test_any_json_or_text_raises_only_protocol_errors(value: Any) -> None:
    only_protocol_errors(value if isinstance(value, str) else json.dumps(value))
