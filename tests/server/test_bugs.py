"""Injected bugs really misbehave (so the harness's checker has something to catch)."""

from __future__ import annotations

from pathlib import Path

from synccli.store import open_store
from tests.server.helpers import DATE, aio, client, db_url, running_server, seeded_store


@aio
async def test_skip_events_drops_every_seventh_live_and_in_replays(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, inject_bugs=("skip-events",)) as server,
        client(server) as a,
        client(server) as w,
    ):
        epoch = (await a.subscribe())["epoch"]
        for state in ["Present", "Seated"] * 4 + ["Present"]:
            assert (await w.write(1, state))["ok"]
        await a.send(
            {
                "type": "request_missed_events",
                "date": DATE,
                "lastSequenceNum": 0,
                "epoch": epoch,
            }
        )
        missed = await a.expect("missed_events")
        live = [m["sequenceNum"] for m in a.stash if m["type"] == "appointments_updated"]
        assert 7 not in live and live == [1, 2, 3, 4, 5, 6, 8, 9]
        assert [e["sequenceNum"] for e in missed["events"]] == [1, 2, 3, 4, 5, 6, 8, 9]


@aio
async def test_broadcast_before_commit_sends_a_phantom(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, inject_bugs=("broadcast-before-commit",)) as server,
        client(server) as a,
    ):
        await a.subscribe()
        results = [await a.write(n) for n in range(1, 6)]
        assert [r["ok"] for r in results] == [True] * 4 + [False]
        events = [await a.expect("appointments_updated") for _ in range(5)]
    assert events[4]["actionId"] == results[4]["requestId"]  # broadcast, never committed
    store = open_store(db_url(tmp_path))
    assert [e.seq for e in store.events_since(DATE, 0, 100)] == [1, 2, 3, 4]
    store.close()


@aio
async def test_stale_epoch_resets_the_log_but_keeps_serving_the_old_epoch(tmp_path: Path) -> None:
    seeded_store(tmp_path, count=25).close()
    async with (
        running_server(tmp_path, inject_bugs=("stale-epoch",)) as server,
        client(server) as a,
    ):
        epoch = (await a.subscribe())["epoch"]
        for n in range(1, 23):
            assert (await a.write(n))["ok"]
        events = [await a.expect("appointments_updated") for _ in range(22)]
        assert {e["epoch"] for e in events} == {epoch}
        assert [e["sequenceNum"] for e in events] == list(range(1, 23))
        assert not [m for m in a.stash if m["type"] == "resync_required"]
    store = open_store(db_url(tmp_path))
    assert store.channel(DATE).epoch != epoch  # the database's history was reset
    store.close()


@aio
async def test_duplicate_and_reorder_sends_deliver_every_event(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, inject_bugs=("duplicate-sends",)) as server,
        client(server) as a,
    ):
        await a.subscribe()
        await a.write(1)
        twice = [await a.expect("appointments_updated") for _ in range(2)]
        assert twice[0] == twice[1]
    async with (
        running_server(tmp_path, inject_bugs=("reorder-sends",), bug_seed=1) as server,
        client(server) as a,
        client(server) as w,
    ):
        await a.subscribe()
        for n in range(2, 6):  # appointment 1 is Present already: seq 1 is in the log
            assert (await w.write(n))["ok"]
        seqs = [(await a.expect("appointments_updated"))["sequenceNum"] for _ in range(4)]
        assert sorted(seqs) == [2, 3, 4, 5]
