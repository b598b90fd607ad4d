"""A resume's answer splices each event's shared serialised form: the bytes are exactly those
of encoding the whole message."""

from __future__ import annotations

import json

from synccli.domain.values import Event, Row
from synccli.protocol import messages as m
from synccli.protocol.server_session import _frame

DATE = "2099-01-01"


def _events(count: int) -> list[Event]:
    row = Row(f"{DATE}-0001", DATE, "P", "Present", None, 2, f"{DATE}T00:00:00.000Z")
    return [Event(DATE, "ep", s, row, f"r{s}", f"{DATE}T00:00:00.000Z") for s in range(1, count)]


def test_spliced_resume_frames_are_the_encoded_message() -> None:
    events = _events(5)
    events[0].wire_json(False)  # a live send cached first must not leak into the replay
    for message in (
        m.Subscribed(DATE, "ep", 4, True, events),
        m.MissedEvents(DATE, "ep", 4, events),
        m.Subscribed(DATE, "ep", 0, True, []),
        m.Subscribed(DATE, "ep", 0, False, [], []),
    ):
        frame = _frame(message)
        assert frame == m.dumps(message.to_wire()).encode()
        assert m.parse_server_message(frame) == message
        assert all(e["replay"] for e in json.loads(frame).get("events", []))
