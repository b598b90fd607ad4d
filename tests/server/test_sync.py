"""Broadcast, resume and resync rules against a real server and a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

from synccli.clock import utc_now
from synccli.domain.channels import WriteOutcome, WriteRequest
from synccli.server.app import SyncServer
from synccli.store import open_store
from tests.conftest import seconds
from tests.server.helpers import DATE, Client, aio, appt, client, db_url, running_server


@aio
async def test_broadcast_then_resume_with_exactly_the_missed_events(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        async with client(server) as a, client(server) as writer:
            sub = await a.subscribe()
            assert sub["recovered"] is False and len(sub["snapshot"]) == 5
            epoch = sub["epoch"]
            result = await writer.write(1)
            assert result["ok"] and result["sequenceNum"] == 1
            event = await a.expect("appointments_updated")
            assert (event["sequenceNum"], event["epoch"], event["replay"]) == (1, epoch, False)
            assert event["id"] == f"{DATE}:{epoch}:1"
            assert event["appointment"]["state"] == "Present"
        async with client(server) as writer:
            for n, state in ((2, "Present"), (1, "Seated"), (3, "Cancelled")):
                assert (await writer.write(n, state))["ok"]
        async with client(server) as a:
            sub = await a.subscribe(since=(epoch, 1))
            assert sub["recovered"] is True and sub["sequenceNum"] == 4
            assert [e["sequenceNum"] for e in sub["events"]] == [2, 3, 4]
            assert all(e["replay"] for e in sub["events"])
            assert [e["appointment"]["state"] for e in sub["events"]] == [
                "Present",
                "Seated",
                "Cancelled",
            ]


@aio
async def test_resume_that_cannot_be_served_gets_a_snapshot(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        sub = await a.subscribe()
        await a.write(1)
        epoch = sub["epoch"]
        wrong_epoch = await a.subscribe(since=("not-the-epoch", 0))
        assert wrong_epoch["recovered"] is False and wrong_epoch["sequenceNum"] == 1
        assert wrong_epoch["epoch"] == epoch
        ahead = await a.subscribe(since=(epoch, 99))
        assert ahead["recovered"] is False and "snapshot" in ahead
        caught_up = await a.subscribe(since=(epoch, 1))
        assert caught_up == {**caught_up, "recovered": True, "events": [], "sequenceNum": 1}


@aio
async def test_pruned_and_too_far_behind(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_replay=2, tail_cache=1) as server, client(server) as a:
        epoch = (await a.subscribe())["epoch"]
        for n in (1, 2, 3):
            await a.write(n)
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 0, "epoch": epoch}
        )
        assert (await a.expect("resync_required"))["reason"] == "too_far_behind"
        far = await a.subscribe(since=(epoch, 0))
        assert far["recovered"] is False
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 1, "epoch": epoch}
        )
        missed = await a.expect("missed_events")
        assert [e["sequenceNum"] for e in missed["events"]] == [2, 3] and missed["sequenceNum"] == 3
        store = open_store(db_url(tmp_path))
        assert store.prune(utc_now()) == 3  # the whole log is older than now
        store.close()
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 1, "epoch": epoch}
        )
        assert (await a.expect("resync_required"))["reason"] == "history_truncated"
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 9, "epoch": epoch}
        )
        assert (await a.expect("resync_required"))["reason"] == "epoch_changed"
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 3, "epoch": "x"}
        )
        assert (await a.expect("resync_required"))["reason"] == "epoch_changed"
        await a.send(
            {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 3, "epoch": epoch}
        )
        assert (await a.expect("missed_events"))["events"] == []


@aio
async def test_unused_date_answers_as_an_empty_channel(tmp_path: Path) -> None:
    unused = [(date.today() + timedelta(days=n)).isoformat() for n in (30, 31)]
    async with running_server(tmp_path) as server, client(server) as a:
        await a.send({"type": "get_snapshot", "date": unused[0]})
        snap = await a.expect("snapshot")
        assert (snap["sequenceNum"], snap["appointments"]) == (0, [])
        await a.send({"type": "request_missed_events", "date": unused[1], "lastSequenceNum": 0})
        missed = await a.expect("missed_events")
        assert (missed["sequenceNum"], missed["events"]) == (0, [])


@aio
async def test_same_request_id_is_one_event_and_reuse_is_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        await a.subscribe()
        first = await a.write(1, request_id="same")
        await a.expect("appointments_updated")
        again = await a.write(1, request_id="same")
        assert first == again
        reused = await a.write(2, request_id="same")
        assert reused["ok"] is False and reused["error"]["code"] == "request_id_reused"
        bad = await a.write(1, "Dismissed")
        assert bad["error"]["code"] == "invalid_transition"
        missing = await a.write(99)
        assert missing["error"]["code"] == "not_found"
        state = await a.write(2, "Sleeping")
        assert state["error"]["code"] == "invalid_state"
        await a.send(
            {
                "type": "update_appointment_state",
                "requestId": "v",
                "appointmentId": appt(3),
                "state": "Present",
                "expectedVersion": 7,
            }
        )
        assert (await a.expect("result"))["error"]["code"] == "conflict"
        await a.send({"type": "get_snapshot", "date": DATE})
        snap = await a.expect("snapshot")
        assert snap["sequenceNum"] == 1  # only the first write made an event


@aio
async def test_write_from_another_process_reaches_subscriber_via_relay(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        epoch = (await a.subscribe())["epoch"]

        def foreign_write() -> WriteOutcome:
            other = open_store(db_url(tmp_path))  # another writer on the same database file
            try:
                return other.write(WriteRequest("foreign-1", appt(4), "NoShow"), utc_now())
            finally:
                other.close()

        outcome = await asyncio.to_thread(foreign_write)
        event = await a.expect("appointments_updated")
        assert (event["sequenceNum"], event["epoch"], event["actionId"]) == (
            outcome.seq,
            epoch,
            "foreign-1",
        )


@aio
async def test_heartbeat_carries_positions_of_subscribed_dates(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_s=0.2) as server, client(server) as a:
        epoch = (await a.subscribe())["epoch"]
        await a.write(2)
        await a.expect("appointments_updated")
        beat = await a.expect("heartbeat")
        assert beat["positions"] == {DATE: {"epoch": epoch, "sequenceNum": 1}}


@aio
async def test_channel_reset_tells_subscribers_to_resync(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        epoch = (await a.subscribe())["epoch"]
        await a.write(1)
        await a.expect("appointments_updated")
        other = open_store(db_url(tmp_path))
        new = other.reset_channel(DATE)
        other.close()
        resync = await a.expect("resync_required")
        assert resync == {"type": "resync_required", "date": DATE, "reason": "epoch_changed"}
        again = await a.subscribe(since=(epoch, 1))
        assert again["recovered"] is False and again["epoch"] == new.epoch != epoch


@aio
async def test_subscribe_during_a_write_burst_has_no_gap_or_duplicate(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as writer:
        states = ["Present"] + ["Seated", "Present"] * 15  # every write is a valid transition
        for index, state in enumerate(states):  # pipelined: the server is still committing...
            await writer.send(
                {
                    "type": "update_appointment_state",
                    "requestId": f"s{index}",
                    "appointmentId": appt(1),
                    "state": state,
                }
            )
        async with client(server) as a:
            sub = await a.subscribe()  # ...while this subscriber registers and reads
            results = [await writer.expect("result") for _ in states]
            assert all(r["ok"] for r in results)
            head = len(states)
            seqs = [sub["sequenceNum"]]
            while seqs[-1] < head:
                seqs.append((await a.expect("appointments_updated"))["sequenceNum"])
        assert seqs == list(range(sub["sequenceNum"], head + 1))


@aio
async def test_retention_prunes_the_log_and_resumes_fall_back_to_a_snapshot(tmp_path: Path) -> None:
    retention = dict(retention_hours=1e-9, prune_every_s=0.02, tail_cache=1)
    async with running_server(tmp_path, **retention) as server, client(server) as a:
        epoch = (await a.subscribe())["epoch"]
        await a.write(1)
        await a.write(2)
        await a.send({"type": "unsubscribe", "date": DATE})
        await a.send({"type": "unsubscribe", "date": "2030-01-01"})  # not subscribed: ignored
        for _ in range(int(seconds(5) / 0.02)):
            store = open_store(db_url(tmp_path))
            left = store.events_since(DATE, 0, 10)
            store.close()
            if not left:
                break
            await asyncio.sleep(0.02)
        assert left == []
        again = await a.subscribe(since=(epoch, 0))
        assert again["recovered"] is False and again["sequenceNum"] == 2


#: Retention that finds every event old at once; the server's own pass waits an hour (the
#: tests run ``server.prune()`` themselves). A tail cache of one makes resumes read the log.
RETAIN_NOTHING = dict(
    retention_hours=1e-9, prune_every_s=3600.0, tail_cache=1, ack_timeout_s=seconds(60)
)


async def caught_up(peer: Client) -> None:
    """Every frame ``peer`` sent before has been handled by the server (one round trip)."""
    await peer.send({"type": "get_snapshot", "date": DATE})
    await peer.expect("snapshot")


async def connections_down_to(server: SyncServer, count: int) -> None:
    """Wait (bounded) until the server has let go of closed connections."""
    assert server.services is not None
    for _ in range(int(seconds(5) / 0.01)):
        if server.services.metrics.connections <= count:
            return
        await asyncio.sleep(0.01)


def kept(tmp_path: Path) -> tuple[int, int]:
    store = open_store(db_url(tmp_path))
    try:
        channel = store.channel(DATE)
        return channel.min_seq, channel.head_seq
    finally:
        store.close()


@aio
async def test_retention_keeps_what_a_connected_client_still_needs(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, **RETAIN_NOTHING) as server,
        client(server) as connected,
        client(server) as writer,
    ):
        async with client(server) as gone:
            epoch = (await connected.subscribe())["epoch"]
            await gone.subscribe()
            for n in (1, 2, 3):
                assert (await writer.write(n))["ok"]
            for peer in (connected, gone):  # both are sent 1..3; neither acks yet
                sent = [(await peer.expect("appointments_updated"))["sequenceNum"] for _ in "abc"]
                assert sent == [1, 2, 3]
            # Every event is past the retention age, but both clients still need them.
            assert await server.prune() == 0
        await connections_down_to(server, 2)  # the server noticed `gone` went away
        await connected.send({"type": "ack", "date": DATE, "sequenceNum": 1})
        await caught_up(connected)
        # `gone` holds nothing any more; `connected` acked 1 and still needs 2 and 3.
        assert await server.prune() == 1
        assert kept(tmp_path) == (2, 3)
        async with client(server) as resumed, client(server) as late:
            again = await resumed.subscribe(since=(epoch, 1))
            assert again["recovered"] is True
            assert [e["sequenceNum"] for e in again["events"]] == [2, 3]
            # Where `gone` stopped (nothing acked) was pruned: it gets a snapshot.
            snapshot = await late.subscribe(since=(epoch, 0))
            assert snapshot["recovered"] is False and snapshot["sequenceNum"] == 3


@aio
async def test_a_stuck_client_holds_the_log_only_within_the_replay_window(tmp_path: Path) -> None:
    async with running_server(tmp_path, **RETAIN_NOTHING, max_replay=2) as server:
        async with client(server) as stuck, client(server) as writer:
            epoch = (await stuck.subscribe())["epoch"]
            for n in (1, 2, 3, 4, 5):
                assert (await writer.write(n))["ok"]
            for _ in range(5):
                await stuck.expect("appointments_updated")  # never acked
            # It holds 0, but the log keeps only the last max_replay events for it.
            assert await server.prune() == 3
            assert kept(tmp_path) == (4, 5)
            async with client(server) as resumed:
                again = await resumed.subscribe(since=(epoch, 3))
                assert [e["sequenceNum"] for e in again["events"]] == [4, 5]
        await connections_down_to(server, 0)
        assert await server.prune() == 2  # nobody connected: age alone decides
