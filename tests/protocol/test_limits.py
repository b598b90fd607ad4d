"""The connection limits as pure rules: the message-rate bucket and its 1008, the number of
subscriptions, the served date window, and replays streamed in pages (a real SQLite store
and ``Hub`` answer the session's store operations)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from synccli.errors import ProtocolError
from synccli.protocol.limits import DateWindow, RateLimit, TokenBucket
from synccli.protocol.messages import CLOSE_POLICY
from synccli.protocol.server_ops import ReadEvents, ServerSessionConfig
from tests.protocol.server_peer import DATE, NOW, Backend, Peer, appointment_id


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path, count=12, tail=1)  # a one-event tail: replays come from the log
    yield b
    b.close()


def commits(backend: Backend, count: int) -> None:
    for n in range(1, count + 1):
        backend.commit(n, "Present", f"r{n}")


def events_of(message: dict[str, object]) -> list[object]:
    events = message["events"]
    assert isinstance(events, list)
    return [e["sequenceNum"] for e in events]


# ---------------------------------------------------------------------- message rate


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_refusals_are_sustained_only_without_a_quiet_second() -> None:
    limit = RateLimit(TokenBucket(rate=1.0, burst=1.0), strikes=2)
    assert limit.admit(0.0)
    assert not limit.admit(0.1) and not limit.admit(0.2) and not limit.sustained
    assert not limit.admit(0.3) and limit.sustained
    quiet = RateLimit(TokenBucket(rate=0.01, burst=1.0), strikes=2)
    quiet.admit(0.0)
    for now in (1.5, 3.0, 4.5, 6.0):  # refused, but more than a second apart
        assert not quiet.admit(now) and not quiet.sustained


def test_a_flood_is_answered_rate_limited_then_closed_1008(backend: Backend) -> None:
    config = ServerSessionConfig(message_rate=1.0, message_burst=3.0, rate_strikes=3)
    peer = Peer(backend, config)
    ack = {"type": "ack", "date": DATE, "sequenceNum": 0}
    assert [peer.send(ack) for _ in range(3)] == [[], [], []]  # the burst: served
    (refused,) = peer.send(ack)
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    write = {
        "type": "update_appointment_state",
        "requestId": "w1",
        "appointmentId": appointment_id(1),
        "state": "Present",
    }
    (result,) = peer.send(write)  # a refused write is still answered by its result
    assert (result["type"], result["ok"], result["error"]["code"]) == (
        "result",
        False,
        "rate_limited",
    )
    assert backend.store.channel(DATE).head_seq == 0  # and not served
    assert peer.send(ack) != [] and peer.closed is None
    assert peer.send(ack) == [] and peer.closed is not None
    assert peer.closed.code == CLOSE_POLICY
    counts = peer.session.counts
    assert (counts["rate_limited_total"], counts["rate_limit_closes_total"]) == (4, 1)
    assert peer.session.writes_failed["rate_limited"] == 1


def test_a_client_within_the_rate_is_never_refused(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(message_rate=100.0, message_burst=5.0))
    for n in range(500):  # 100 per second for 5 seconds
        assert peer.send({"type": "ack", "date": DATE, "sequenceNum": 0}, now=n / 100) == []
    assert peer.session.counts["rate_limited_total"] == 0


# ---------------------------------------------------------------------- subscriptions


def test_subscriptions_per_connection_are_capped(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(max_subscriptions=2))
    others = ["2026-11-27", "2026-11-28"]
    assert peer.subscribe()["type"] == "subscribed"
    (second,) = peer.send({"type": "subscribe", "date": others[0]})
    assert second["type"] == "subscribed"
    (third,) = peer.send({"type": "subscribe", "date": others[1]})
    assert (third["type"], third["code"]) == ("error", "too_many_subscriptions")
    assert peer.subscribe()["type"] == "subscribed"  # re-subscribing is no new date
    peer.send({"type": "unsubscribe", "date": others[0]})
    (now_ok,) = peer.send({"type": "subscribe", "date": others[1]})
    assert now_ok["type"] == "subscribed"
    assert peer.session.counts["subscription_limit_total"] == 1
    assert sorted(peer.session.subs) == [DATE, others[1]]


# ---------------------------------------------------------------------- date window


def test_the_date_window_rule() -> None:
    window = DateWindow(back=2, ahead=3)
    today = date(2026, 11, 26)
    for day in ("2026-11-24", "2026-11-26", "2026-11-29"):
        window.check(day, today)
    for day in ("2026-11-23", "2026-11-30", "0001-01-01", "9999-12-31"):
        with pytest.raises(ProtocolError, match="outside the served window") as caught:
            window.check(day, today)
        assert caught.value.code == "bad_message"


def test_reads_outside_the_window_are_bad_message_and_never_reach_the_store(
    backend: Backend,
) -> None:
    peer = Peer(backend)  # today is NOW's date; default window: 366 back, 731 ahead
    far = [
        (NOW.date() - timedelta(days=367)).isoformat(),
        (NOW.date() + timedelta(days=732)).isoformat(),
        "9999-12-31",
    ]
    kinds = [
        {"type": "subscribe", "date": far[0]},
        {"type": "get_snapshot", "date": far[1]},
        {"type": "request_missed_events", "date": far[2], "lastSequenceNum": 0},
    ]
    for message in kinds:
        effects = peer.session.receive(json.dumps(message), 0.0)
        assert effects.op is None  # refused before any store operation
        (error,) = [json.loads(frame) for frame in effects.send]
        assert (error["type"], error["code"]) == ("error", "bad_message")
    assert peer.session.counts["malformed_total"] == 3
    edge = (NOW.date() + timedelta(days=731)).isoformat()
    (answer,) = peer.send({"type": "get_snapshot", "date": edge})
    assert answer["type"] == "snapshot"


# ---------------------------------------------------------------------- paged replays


def test_missed_events_are_streamed_one_log_read_per_page(backend: Backend) -> None:
    commits(backend, 10)
    peer = Peer(backend, ServerSessionConfig(replay_page=3))
    frame = json.dumps({"type": "request_missed_events", "date": DATE, "lastSequenceNum": 0})
    reads: list[ReadEvents] = []
    for effects in peer.steps(peer.session.receive(frame, 0.0)):
        if isinstance(effects.op, ReadEvents):
            reads.append(effects.op)
    assert [(r.after, r.limit) for r in reads] == [(0, 3), (3, 3), (6, 3), (9, 1)]
    pages = peer.decoded()
    assert [p["type"] for p in pages] == ["missed_events"] * 4
    assert [events_of(p) for p in pages] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert [p["sequenceNum"] for p in pages] == [3, 6, 9, 10]
    assert peer.session.counts["replays_total"] == 10


def paged_resume(backend: Backend, after: int) -> tuple[Peer, str]:
    """8 events committed; a peer with pages of 3 and its resume from ``after``."""
    epoch = Peer(backend).subscribe()["epoch"]
    commits(backend, 8)
    peer = Peer(backend, ServerSessionConfig(replay_page=3))
    since = {"epoch": epoch, "sequenceNum": after}
    return peer, json.dumps({"type": "subscribe", "date": DATE, "since": since})


def test_a_resume_is_a_subscribed_page_then_missed_events_then_live(backend: Backend) -> None:
    peer, frame = paged_resume(backend, 1)
    for _ in peer.steps(peer.session.receive(frame, 0.0)):
        if len(peer.frames) == 1:  # the answer is out, the second page not read yet
            backend.commit(9, "Present", "r9")  # a live event meanwhile: held back
            assert len(peer.frames) == 1
    answer, *rest = peer.decoded()
    assert (answer["type"], answer["recovered"], answer["sequenceNum"]) == ("subscribed", True, 4)
    assert events_of(answer) == [2, 3, 4]
    assert [(m["type"], events_of(m)) for m in rest[:2]] == [
        ("missed_events", [5, 6, 7]),
        ("missed_events", [8]),  # the head when the replay began
    ]
    # The live event held back meanwhile follows the last page, once.
    assert [(m["type"], m["sequenceNum"]) for m in rest[2:]] == [("appointments_updated", 9)]
    backend.commit(10, "Present", "r10")
    assert [m["sequenceNum"] for m in peer.decoded(4)] == [10]


def test_a_log_pruned_under_a_paged_replay_ends_it_with_a_resync(backend: Backend) -> None:
    peer, frame = paged_resume(backend, 0)
    for _ in peer.steps(peer.session.receive(frame, 0.0)):
        if len(peer.frames) == 1:
            backend.store.prune(datetime(2100, 1, 1).astimezone())
    answer, resync = peer.decoded()
    assert answer["type"] == "subscribed" and events_of(answer) == [1, 2, 3]
    assert (resync["type"], resync["reason"]) == ("resync_required", "history_truncated")
    assert DATE not in peer.session.subs  # the client subscribes again
