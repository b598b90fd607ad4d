"""Injected bugs really misbehave (so the harness's checker has something to catch)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from synccli.errors import ConfigError
from synccli.protocol.server_ops import SEND_AS_IS
from synccli.server.bugs import NO_BUGS, REORDER_FLUSH_S, Bugs, ReorderWindow
from synccli.server.config import ServerConfig
from synccli.store import open_store
from tests.client.builders import event
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


def test_reorder_window_releases_every_full_window_in_a_new_order() -> None:
    seen = set()
    for seed in range(60):
        window = ReorderWindow(random.Random(seed))
        assert window.add(event(1), 0.0) == [] and window.add(event(2), 0.01) == []
        released = [e.seq for e in window.add(event(3), 0.02)]
        assert sorted(released) == [1, 2, 3] and released != [1, 2, 3]
        assert window.held == [] and window.deadline is None
        seen.add(tuple(released))
    # Every order but the original one is chosen.
    assert seen == set(itertools.permutations([1, 2, 3])) - {(1, 2, 3)}


def test_reorder_window_sends_a_partial_window_at_its_deadline() -> None:
    window = ReorderWindow(random.Random(0))
    assert window.add(event(1), 10.0) == []
    assert window.deadline == 10.0 + REORDER_FLUSH_S
    assert window.add(event(2), 10.1) == []
    assert window.due(10.0 + REORDER_FLUSH_S / 2) == []
    assert [e.seq for e in window.due(10.0 + REORDER_FLUSH_S)] == [2, 1]
    window.add(event(3), 20.0)
    assert [e.seq for e in window.due(21.0)] == [3]  # alone: nothing to reorder
    assert window.due(30.0) == []


def test_each_connection_gets_its_own_window_reproducible_from_the_seed() -> None:
    def orders(seed: int) -> list[list[int]]:
        bugs = Bugs(("reorder-sends",), seed)
        out = []
        for _ in range(4):
            window = bugs.reorder_window()
            assert window is not None
            for seq in (1, 2, 3):
                released = window.add(event(seq), 0.0)
            out.append([e.seq for e in released])
        return out

    assert orders(7) == orders(7)
    assert any(orders(7) != orders(seed) for seed in range(8, 12))
    assert Bugs(("duplicate-sends",), 7).reorder_window() is None


@aio
async def test_reorder_sends_reorders_sparse_traffic(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, inject_bugs=("reorder-sends",), bug_seed=3) as server,
        client(server) as a,
        client(server) as w,
    ):
        await a.subscribe()
        # One write at a time, each answered before the next: the sparsest traffic there is.
        for n in (1, 2, 3):
            assert (await w.write(n))["ok"]
        seqs = [(await a.expect("appointments_updated"))["sequenceNum"] for _ in range(3)]
        assert sorted(seqs) == [1, 2, 3] and seqs != [1, 2, 3]
        assert (await w.write(4))["ok"]
        # Alone in its window: sent when the window's flush deadline passes.
        assert (await a.expect("appointments_updated"))["sequenceNum"] == 4


@aio
async def test_duplicate_sends_still_duplicates_with_reorder_sends(tmp_path: Path) -> None:
    bugs = ("duplicate-sends", "reorder-sends")
    async with (
        running_server(tmp_path, inject_bugs=bugs, bug_seed=1) as server,
        client(server) as a,
        client(server) as w,
    ):
        await a.subscribe()
        for n in (1, 2, 3):
            assert (await w.write(n))["ok"]
        seqs = [(await a.expect("appointments_updated"))["sequenceNum"] for _ in range(6)]
        assert sorted(seqs) == [1, 1, 2, 2, 3, 3]
        assert seqs != sorted(seqs)


def test_server_policies_take_only_server_bug_names() -> None:
    with pytest.raises(ConfigError, match="unknown server bug 'no-dedupe'"):
        Bugs(("no-dedupe",))
    with pytest.raises(ConfigError, match="unknown server bug 'nope'"):
        ServerConfig(db_url="sqlite:///x.db", inject_bugs=("nope",))
    assert NO_BUGS.send_policy() is SEND_AS_IS and not NO_BUGS.names
