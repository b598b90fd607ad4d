"""``ClientSession``: subscriptions, batched acks, optimistic writes, and the property that
any mix of duplicates, reorders and drops ends exactly-once, in order, equal to the source."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synccli.domain.values import Event, Position, Row
from synccli.errors import ConfigError
from synccli.protocol.bugs import NO_DEDUPE as BUG_NO_DEDUPE
from synccli.protocol.messages import (
    Ack,
    EventMessage,
    Heartbeat,
    MissedEvents,
    RequestMissedEvents,
    Result,
    Subscribe,
    Subscribed,
    UpdateAppointmentState,
)
from synccli.protocol.session import ClientSession, SessionConfig
from tests.client.builders import DATE, EPOCH, applied, as_json, event, kinds, row

OTHER = "2026-11-27"


def session(**kw: object) -> ClientSession:
    config = SessionConfig("c001", (DATE, OTHER), **kw)  # type: ignore[arg-type]
    s = ClientSession(config)
    s.on_connected(0)
    s.on_message(Subscribed(DATE, EPOCH, 0, False, snapshot=[row("a1"), row("a2")]), 0)
    s.on_message(Subscribed(OTHER, EPOCH, 0, False, snapshot=[row("b1", date=OTHER)]), 0)
    return s


def test_connect_subscribes_every_date_and_resumes_from_positions() -> None:
    s = ClientSession(SessionConfig("c001", (DATE, OTHER)))
    assert s.on_connected(0).send == [Subscribe(DATE), Subscribe(OTHER)]
    s.on_message(Subscribed(DATE, EPOCH, 4, False, snapshot=[]), 0)
    s.on_disconnected()
    assert s.on_connected(1).send == [Subscribe(DATE, Position(EPOCH, 4)), Subscribe(OTHER)]


def test_acks_are_one_cumulative_ack_per_date_per_flush() -> None:
    s = session()
    for seq in (1, 2, 3):
        s.on_message(EventMessage(event(seq)), 0)
    s.on_message(EventMessage(event(1, "b1", date=OTHER)), 0)
    assert s.flush_acks() == [
        Ack(date=DATE, seq=3, epoch=EPOCH),
        Ack(date=OTHER, seq=1, epoch=EPOCH),
    ]
    assert s.flush_acks() == []
    s.on_disconnected()
    s.on_message(EventMessage(event(4)), 0)
    assert s.flush_acks() == []


def test_heartbeat_reaches_every_listed_channel() -> None:
    s = session()
    effects = s.on_message(
        Heartbeat(
            {DATE: Position(EPOCH, 2), OTHER: Position(EPOCH, 0), "2026-01-01": Position("x", 9)}
        ),
        0,
    )
    assert effects.send == [RequestMissedEvents(DATE, 0, EPOCH)]


def test_write_is_optimistic_then_confirmed() -> None:
    s = session()
    effects = s.begin_write("a1", "Present", "c001-1", 1.0)
    assert effects.send == [UpdateAppointmentState("c001-1", "a1", "Present")]
    assert as_json(effects.records) == [
        {
            "k": "write",
            "requestId": "c001-1",
            "appointmentId": "a1",
            "state": "Present",
            "date": DATE,
            "attempt": 1,
        }
    ]
    assert s.channels[DATE].view_state("a1") == "Present"
    result = s.on_message(Result("c001-1", True, row("a1", 2, "Present"), 1), 1.25)
    assert as_json(result.records) == [
        {
            "k": "write_result",
            "requestId": "c001-1",
            "ok": True,
            "code": None,
            "seq": 1,
            "ms": 250.0,
        }
    ]
    assert s.stats.writes_ok == 1
    assert not s.pending


def test_refused_write_is_rolled_back() -> None:
    s = session()
    s.begin_write("a2", "Seated", "c001-2", 0)
    effects = s.on_message(Result("c001-2", False, error_code="invalid_transition"), 0.1)
    assert kinds(effects.records) == ["write_result", "rollback"]
    assert effects.records[1].to_json() == {
        "k": "rollback",
        "requestId": "c001-2",
        "appointmentId": "a2",
    }
    assert s.channels[DATE].view_state("a2") == "Scheduled"
    assert s.stats.writes_failed == 1


def test_pending_write_is_resent_with_the_same_request_id_after_reconnect() -> None:
    s = session()
    s.begin_write("a1", "Present", "c001-3", 0)
    s.on_disconnected()
    effects = s.on_connected(1)
    assert effects.send[-1] == UpdateAppointmentState("c001-3", "a1", "Present")
    assert effects.records[-1].to_json()["attempt"] == 2
    assert effects.records[-1].to_json()["requestId"] == "c001-3"


def test_a_reconnect_gives_up_writes_out_of_attempts_and_resends_the_others() -> None:
    s = session(max_write_attempts=2)
    s.begin_write("a1", "Present", "c001-5", 0)
    s.begin_write("a2", "Present", "c001-6", 0)
    s.on_disconnected()
    s.on_connected(1)  # both re-sent: attempt 2 of 2
    s.begin_write("b1", "Present", "c001-7", 1)
    s.on_disconnected()
    effects = s.on_connected(2)  # c001-5 and c001-6 are out of attempts; c001-7 is not
    given_up = [r["requestId"] for r in as_json(effects.records) if r["k"] == "write_result"]
    assert given_up == ["c001-5", "c001-6"]
    assert effects.send[-1] == UpdateAppointmentState("c001-7", "b1", "Present")
    assert list(s.pending) == ["c001-7"]


def test_unanswered_write_is_resent_after_timeout_then_given_up() -> None:
    s = session(write_timeout=1.0, max_write_attempts=2)
    s.begin_write("a1", "Present", "c001-4", 0)
    assert s.next_deadline() == 1.0
    assert s.tick(0.5).send == []
    assert s.tick(1.0).send == [UpdateAppointmentState("c001-4", "a1", "Present")]
    given_up = s.tick(2.0)
    assert given_up.send == []
    assert kinds(given_up.records) == ["write_result", "rollback"]
    assert given_up.records[0].to_json()["code"] == "timeout"
    assert not s.pending


def test_unknown_appointment_or_reused_request_id_is_refused() -> None:
    s = session()
    with pytest.raises(ValueError, match="not in this client's view"):
        s.begin_write("zz", "Present", "r", 0)
    s.begin_write("a1", "Present", "r", 0)
    with pytest.raises(ValueError, match="already in flight"):
        s.begin_write("a2", "Present", "r", 0)


def test_unknown_bug_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown client bug 'no-such-bug'"):
        ClientSession(SessionConfig("c", (DATE,), frozenset({"no-such-bug"})))
    with pytest.raises(ConfigError, match="unknown client bug 'skip-events'"):
        ClientSession(SessionConfig("c", (DATE,), frozenset({"skip-events"})))


def test_session_bug_no_dedupe_applies_twice() -> None:
    s = session(bugs=frozenset({BUG_NO_DEDUPE}))
    s.on_message(EventMessage(event(1)), 0)
    s.on_message(EventMessage(event(1)), 0)
    assert s.stats.applied == 2


# ---------------------------------------------------------------------- property


def source_stream(n: int, seed: int) -> tuple[list[Row], list[Event]]:
    """A snapshot at seq 0 and ``n`` events over a few appointments, versions increasing."""
    rng = random.Random(seed)
    rows = {f"a{i}": row(f"a{i}") for i in range(4)}
    initial = list(rows.values())
    events = []
    for seq in range(1, n + 1):
        aid = rng.choice(sorted(rows))
        old = rows[aid]
        new = Row(
            aid, DATE, old.patient, rng.choice(["Present", "Seated"]), None, old.version + 1, "t"
        )
        rows[aid] = new
        events.append(Event(DATE, EPOCH, seq, new, None, "2026-11-26T10:00:00.000Z"))
    return initial, events


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 25),
    seed=st.integers(0, 1000),
    data=st.data(),
    answer_at_once=st.booleans(),
)
def test_any_dup_reorder_drop_then_replay_applies_each_event_once_in_order(
    n: int, seed: int, data: st.DataObject, answer_at_once: bool
) -> None:
    initial, events = source_stream(n, seed)
    delivery = data.draw(st.lists(st.integers(1, n), max_size=3 * n))
    s = ClientSession(SessionConfig("c001", (DATE,), gap_timeout=1.0))
    s.on_connected(0)
    records = s.on_message(Subscribed(DATE, EPOCH, 0, False, snapshot=initial), 0).records
    requests: list[RequestMissedEvents] = []

    def feed(message: object, now: float) -> None:
        effects = s.on_message(message, now)  # type: ignore[arg-type]
        records.extend(effects.records)
        requests.extend(m for m in effects.send if isinstance(m, RequestMissedEvents))
        assert not any(isinstance(m, Subscribe) for m in effects.send)

    def answer(now: float) -> None:
        while requests:
            last = requests.pop(0).last_seq
            feed(MissedEvents(DATE, EPOCH, n, events[last:]), now)

    for step, seq in enumerate(delivery):
        feed(EventMessage(events[seq - 1]), step)
        if answer_at_once:
            answer(step)
    # The end of the stream: a heartbeat tells the client the head; it fetches the rest.
    for _ in range(3):
        answer(1000)
        feed(Heartbeat({DATE: Position(EPOCH, n)}), 1000)
    answer(1000)

    assert applied(records) == list(range(1, n + 1))
    channel = s.channels[DATE]
    assert channel.status == "synced"
    assert channel.seq == n
    expected = {r.appointment_id: r for r in initial} | {
        e.row.appointment_id: e.row for e in events
    }
    assert channel.rows == expected
    assert s.flush_acks() == [Ack(date=DATE, seq=n, epoch=EPOCH)]
