"""``ServerSession``: every server rule without a socket (a real SQLite store and ``Hub``
answer its store operations, synchronously)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synccli.domain.channels import Channel
from synccli.domain.values import Position
from synccli.errors import DatabaseUnavailable
from synccli.protocol.replay import Replay, from_cache, from_log, refusal
from synccli.protocol.server_ops import ReadChannel, ReadEvents, ReadSnapshot, ServerSessionConfig
from synccli.server.bugs import SKIP_EVERY, Bugs
from tests.client.builders import event
from tests.protocol.server_peer import DATE, Backend, Peer, appointment_id


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path)
    yield b
    b.close()


def commits(backend: Backend, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        backend.commit(n, "Present", f"r{n}")


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["sequenceNum"] for m in messages if m["type"] == "appointments_updated"]


# ---------------------------------------------------------------------- subscribe


def test_fresh_subscribe_answers_the_snapshot_and_registers(backend: Backend) -> None:
    peer = Peer(backend)
    answer = peer.subscribe()
    assert answer["type"] == "subscribed" and answer["recovered"] is False
    assert answer["sequenceNum"] == 0 and len(answer["snapshot"]) == 10
    assert backend.hub.has_subscribers(DATE)
    commits(backend, 1)
    assert seqs(peer.decoded(1)) == [1]
    assert peer.session.counts["snapshots_total"] == 1


def test_resume_is_recovered_from_the_cache_or_else_the_log(tmp_path: Path) -> None:
    for tail, reads in ((2048, []), (1, [ReadChannel, ReadEvents])):
        (tmp_path / str(tail)).mkdir()
        backend = Backend(tmp_path / str(tail), tail=tail)
        epoch = Peer(backend).subscribe()["epoch"]
        commits(backend, 3)
        peer = Peer(backend)
        effects = peer.session.receive(
            f'{{"type":"subscribe","date":"{DATE}","since":{{"epoch":"{epoch}","sequenceNum":1}}}}',
            0.0,
        )
        ops = [type(step.op) for step in peer.steps(effects)]
        assert ops == reads
        (answer,) = peer.decoded()
        assert answer["recovered"] is True and answer["sequenceNum"] == 3
        assert [e["sequenceNum"] for e in answer["events"]] == [2, 3]
        assert all(e["replay"] for e in answer["events"])
        assert len(peer.session.acks) == 2  # replayed events await acks too
        backend.close()


def test_refused_resume_falls_back_to_a_snapshot(backend: Backend) -> None:
    epoch = Peer(backend).subscribe()["epoch"]
    commits(backend, 5)
    for since in (("other-epoch", 1), (epoch, 9), (epoch, 1)):
        peer = Peer(backend, ServerSessionConfig(max_replay=2))
        answer = peer.subscribe(since)
        assert answer["recovered"] is False and answer["sequenceNum"] == 5
        assert len(answer["snapshot"]) == 10
        assert peer.session.counts["resyncs_total"] == 1


def test_resubscribing_drops_the_old_subscription_and_its_acks(backend: Backend) -> None:
    peer = Peer(backend)
    peer.subscribe()
    commits(backend, 2)
    assert len(peer.session.acks) == 2
    peer.subscribe()
    assert len(peer.session.acks) == 0


def test_a_database_failure_answers_an_error_and_leaves_no_subscription(
    backend: Backend,
) -> None:
    peer = Peer(backend)
    backend.fail_next = DatabaseUnavailable("down")
    (error,) = peer.send({"type": "subscribe", "date": DATE})
    assert error["type"] == "error" and error["code"] == "db_unavailable"
    assert error["ref"] == "subscribe"
    assert not backend.hub.known(DATE) and not peer.session.subs
    backend.fail_next = RuntimeError("boom")
    (error,) = peer.send({"type": "subscribe", "date": DATE})
    assert error["code"] == "internal" and not backend.hub.has_subscribers(DATE)
    assert peer.session.counts["internal_errors_total"] == 1


# ---------------------------------------------------------------------- dedupe


def test_live_events_during_a_subscribe_are_sent_after_it_and_only_past_it(
    backend: Backend,
) -> None:
    Peer(backend).subscribe()  # the hub knows the channel
    peer = Peer(backend)
    effects = peer.session.receive(f'{{"type":"subscribe","date":"{DATE}"}}', 0.0)
    assert isinstance(effects.op, ReadSnapshot)
    commits(backend, 1)  # registered already: buffered, and covered by the snapshot
    snapshot = backend.perform(effects.op)
    commits(backend, 2, start=2)  # after the snapshot read: must follow the answer
    peer.take(peer.session.resume(snapshot, 0.0))
    answer, *live = peer.decoded()
    assert answer["type"] == "subscribed" and answer["sequenceNum"] == 1
    assert seqs(live) == [2, 3]
    commits(backend, 1, start=4)
    assert seqs(peer.decoded(3)) == [4]


def test_live_events_at_or_below_the_position_are_never_sent(backend: Backend) -> None:
    peer = Peer(backend)
    epoch = peer.subscribe()["epoch"]
    commits(backend, 2)
    assert peer.session.deliver(event(2, epoch=epoch), 0.0) is False
    assert peer.session.deliver(event(3, epoch="old"), 0.0) is False
    assert peer.session.deliver(event(3, epoch=epoch), 0.0) is True


# ---------------------------------------------------------------------- replay ranges


def test_missed_events_answers_the_range_or_a_resync(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(max_replay=3))
    epoch = peer.subscribe()["epoch"]
    commits(backend, 5)
    start = len(peer.frames)

    def missed(last: int, epoch_: str) -> dict[str, Any]:
        message = {"type": "request_missed_events", "date": DATE, "lastSequenceNum": last}
        (answer,) = peer.send({**message, "epoch": epoch_})
        return answer

    answer = missed(3, epoch)
    assert answer["type"] == "missed_events" and answer["sequenceNum"] == 5
    assert [e["sequenceNum"] for e in answer["events"]] == [4, 5]
    assert missed(5, epoch)["events"] == []
    assert missed(1, epoch) == {"type": "resync_required", "date": DATE, "reason": "too_far_behind"}
    assert missed(2, "x")["reason"] == "epoch_changed"
    assert missed(6, epoch)["reason"] == "epoch_changed"  # ahead of the head
    assert len(peer.frames) == start + 5


def test_replay_decisions() -> None:
    channel = Channel(DATE, "e1", head_seq=10, min_seq=5)
    assert refusal(channel, "e1", 4, 100) is None
    assert refusal(channel, "e1", 3, 100) == "history_truncated"
    assert refusal(channel, "e2", 8, 100) == "epoch_changed"
    assert refusal(channel, None, 11, 100) == "epoch_changed"
    assert refusal(channel, None, 4, 5) == "too_far_behind"
    events = [event(seq, epoch="e1") for seq in (9, 10)]
    assert from_log(channel, events, 8, 100) == Replay(events, Position("e1", 10), 10)
    assert from_log(channel, events[:1], 8, 1) == Replay(events[:1], Position("e1", 9), 10)
    assert from_log(channel, events[1:], 8, 100) == "history_truncated"  # pruned meanwhile
    assert from_log(channel, [event(9, epoch="e1"), event(10, epoch="e0")], 8, 100) == (
        "history_truncated"
    )
    assert from_cache(None, "e1", 8, 10) is None
    assert from_cache(events, "e1", 8, 1) is None  # more than a replay may carry
    replay = from_cache(events, "e1", 8, 2)
    assert replay is not None and replay.position.seq == 10


# ---------------------------------------------------------------------- acks


def test_unacked_events_are_resent_then_the_connection_closes_4000(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(ack_timeout=1.0, max_retries=2, heartbeat=100))
    peer.subscribe()
    commits(backend, 1)
    assert peer.session.next_deadline() == 1.0
    assert peer.tick(0.5) == []
    assert seqs(peer.tick(1.0)) == [1] and seqs(peer.tick(2.0)) == [1]
    assert peer.closed is None
    assert peer.tick(3.0) == [] and peer.closed is not None
    assert (peer.closed.code, peer.closed.reason) == (4000, "ack retries exhausted")
    counts = peer.session.counts
    assert counts["retries_total"] == 2 and counts["ack_exhausted_closes_total"] == 1


def test_acks_by_id_or_cumulative_stop_the_resends(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(ack_timeout=1.0, max_retries=0, heartbeat=100))
    epoch = peer.subscribe()["epoch"]
    commits(backend, 3)
    assert peer.send({"type": "ack", "messageId": f"{DATE}:{epoch}:1"}) == []
    peer.send({"type": "ack", "date": DATE, "sequenceNum": 3, "epoch": "other"})
    assert len(peer.session.acks) == 2  # an ack of another epoch is ignored
    peer.send({"type": "ack", "date": DATE, "sequenceNum": 3, "epoch": epoch})
    assert len(peer.session.acks) == 0 and peer.session.counts["acks_total"] == 3
    assert peer.tick(5.0) == [] and peer.closed is None


def test_a_client_that_does_not_ack_is_closed_4002_at_the_unacked_limit(
    backend: Backend,
) -> None:
    peer = Peer(backend, ServerSessionConfig(max_unacked=3, heartbeat=100))
    epoch = peer.subscribe()["epoch"]
    commits(backend, 3)
    assert seqs(peer.decoded(1)) == [1, 2, 3] and peer.closed is None
    commits(backend, 2, start=4)  # the fourth unacked event is not sent: the client closes
    assert seqs(peer.decoded(1)) == [1, 2, 3]
    assert peer.closed is not None
    assert (peer.closed.code, peer.closed.reason) == (4002, "too many unacked events")
    assert peer.session.counts["unacked_closes_total"] == 1
    # It resumes from its position and gets everything after it, in a replay that does not
    # count against the limit (five events over a limit of three).
    again = Peer(backend, ServerSessionConfig(max_unacked=3, heartbeat=100))
    answer = again.subscribe(since=(epoch, 0))
    assert answer["recovered"] is True
    assert [e["sequenceNum"] for e in answer["events"]] == [1, 2, 3, 4, 5]
    assert again.closed is None and again.session.acks.live == 0
    commits(backend, 1, start=6)
    assert seqs(again.decoded(1)) == [6] and again.closed is None


def test_acks_keep_a_busy_client_under_the_unacked_limit(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(max_unacked=2, heartbeat=100))
    peer.subscribe()
    for n in range(1, 11):
        commits(backend, 1, start=n)
        peer.send({"type": "ack", "date": DATE, "sequenceNum": n})
    assert seqs(peer.decoded(1)) == list(range(1, 11)) and peer.closed is None


def test_the_unacked_limit_also_holds_when_the_policy_shapes_live_events(
    backend: Backend,
) -> None:
    policy = Bugs(("duplicate-sends",)).send_policy()
    peer = Peer(backend, ServerSessionConfig(max_unacked=2, heartbeat=100), policy)
    assert peer.session.shapes_live
    peer.subscribe()
    commits(backend, 3)
    assert peer.closed is not None and peer.closed.code == 4002
    assert sorted(set(seqs(peer.decoded(1)))) == [1, 2]


# ---------------------------------------------------------------------- malformed


def test_the_malformed_budget_closes_1008_and_a_good_message_refills_it(
    backend: Backend,
) -> None:
    peer = Peer(backend, ServerSessionConfig(malformed_limit=2))
    codes = [peer.send(frame)[0]["code"] for frame in ("{", "[]", '{"type":"nope"}')]
    assert codes == ["bad_json", "bad_message", "unknown_type"]
    assert peer.closed is not None and peer.closed.code == 1008
    peer = Peer(backend, ServerSessionConfig(malformed_limit=2))
    for frame in ("{", "{", '{"type":"ack","messageId":"x"}', "{", "{"):
        peer.send(frame)
    assert peer.closed is None and peer.session.counts["malformed_total"] == 4


# ---------------------------------------------------------------------- heartbeats


def test_heartbeats_carry_answered_subscriptions_in_their_epoch(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(heartbeat=5.0))
    assert peer.tick(4.9) == []
    assert peer.tick(5.0) == [{"type": "heartbeat", "positions": {}}]
    epoch = peer.subscribe()["epoch"]
    commits(backend, 2)
    (beat,) = [m for m in peer.tick(10.0) if m["type"] == "heartbeat"]
    assert beat["positions"] == {DATE: {"epoch": epoch, "sequenceNum": 2}}
    # A subscription still waiting for its answer is left out.
    effects = peer.session.receive(f'{{"type":"subscribe","date":"{DATE}"}}', 11.0)
    assert isinstance(effects.op, ReadSnapshot)
    assert peer.session.heartbeat().positions == {}


# ---------------------------------------------------------------------- writes


def test_writes_are_routed_by_request_id(backend: Backend) -> None:
    reader, writer = Peer(backend), Peer(backend)
    reader.subscribe()
    write = {"type": "update_appointment_state", "appointmentId": appointment_id(1)}
    (result,) = writer.send({**write, "requestId": "w1", "state": "Present"})
    assert result["type"] == "result" and result["ok"] is True and result["sequenceNum"] == 1
    assert seqs(reader.decoded(1)) == [1]
    (bad,) = writer.send({**write, "requestId": "w2"})  # no state: still a result
    assert bad["type"] == "result" and bad["ok"] is False
    assert bad["error"]["code"] == "bad_message"
    assert writer.session.writes_failed["bad_message"] == 1
    (error,) = writer.send({**write, "state": "Present"})  # no requestId: an error
    assert error["type"] == "error" and error["code"] == "bad_message"
    backend.fail_next = RuntimeError("boom")
    (failed,) = writer.send({**write, "requestId": "w3", "state": "Seated"})
    assert failed["ok"] is False and failed["error"]["code"] == "internal"
    assert writer.session.malformed == 0  # an answered write refills the budget


# ---------------------------------------------------------------------- epochs


def test_an_epoch_change_asks_for_a_resync_and_forgets_the_acks(backend: Backend) -> None:
    peer = Peer(backend, ServerSessionConfig(ack_timeout=1.0, heartbeat=100))
    old = peer.subscribe()["epoch"]
    commits(backend, 2)
    new = backend.reset()
    assert peer.decoded(3) == [{"type": "resync_required", "date": DATE, "reason": "epoch_changed"}]
    assert len(peer.session.acks) == 0 and peer.tick(5.0) == []
    answer = peer.subscribe((old, 2))
    assert answer["epoch"] == new != old and answer["recovered"] is False


def test_an_epoch_change_during_a_subscribe_sends_no_stale_answer(backend: Backend) -> None:
    Peer(backend).subscribe()
    peer = Peer(backend)
    effects = peer.session.receive(f'{{"type":"subscribe","date":"{DATE}"}}', 0.0)
    assert effects.op is not None
    snapshot = backend.perform(effects.op)
    backend.reset()
    peer.take(peer.session.resume(snapshot, 0.0))
    assert [m["type"] for m in peer.decoded()] == ["resync_required"]
    assert not peer.session.subs


# ---------------------------------------------------------------------- policy


def test_the_send_policy_shapes_live_and_replayed_events(backend: Backend) -> None:
    peer = Peer(backend, policy=Bugs(("skip-events", "duplicate-sends")).send_policy())
    epoch = peer.subscribe()["epoch"]
    commits(backend, SKIP_EVERY)
    assert seqs(peer.decoded(1)) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    (missed,) = peer.send(
        {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 0, "epoch": epoch}
    )
    assert [e["sequenceNum"] for e in missed["events"]] == [1, 2, 3, 4, 5, 6]
