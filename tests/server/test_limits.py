"""Bounded resources on a real server over loopback: connections (503), the send queue in
bytes (4001), reads that never write a channel row, a relay that polls only what somebody
subscribes to, and the server's memory during and after a replay flood (a subprocess whose
RSS is read from /proc)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from synccli.domain.channels import Channel, WriteRequest
from synccli.domain.states import PRESENT, SCHEDULED
from synccli.store import Store
from synccli.store.sqlite import SqliteStore
from tests.conftest import listen_backlog, seconds, somaxconn
from tests.server.helpers import DATE, ServerProcess, aio, client, db_url, running_server

#: The stated bounds of the replay flood (3 connections x 120 replays of 10,000 events).
FLOOD_PEAK_MIB = 192  # RSS above the idle server while the flood is served
FLOOD_AFTER_MIB = 64  # RSS above the idle server once the flooding clients are gone
FLOOD_REPEAT_MIB = 16  # growth of that after a second, identical flood


def seed_events(path: Path, count: int, appointments: int = 10) -> None:
    """``count`` events on DATE (synchronous=NORMAL: a test fixture, not durability)."""
    store = SqliteStore(path, synchronous="NORMAL")
    try:
        store.init_schema()
        store.seed(DATE, appointments)
        now = datetime.now(UTC)
        for i in range(count):
            state = PRESENT if (i // appointments) % 2 == 0 else SCHEDULED
            number = i % appointments + 1
            store.write(WriteRequest(f"r{i}", f"{DATE}-{number:04d}", state), now)
    finally:
        store.close()


def channel_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM channels").fetchone()[0]
    return count


def missed(after: int = 0) -> str:
    return json.dumps({"type": "request_missed_events", "date": DATE, "lastSequenceNum": after})


async def drain(ws: ClientConnection) -> int | None:
    """Read until the server closes; its close code."""
    try:
        async with asyncio.timeout(seconds(20)):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    return ws.close_code


# ---------------------------------------------------------------------- connections


@aio
async def test_connections_beyond_the_limit_are_refused_503(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_connections=2) as server:
        assert server.services is not None
        async with client(server) as a, client(server) as b:
            await a.subscribe()
            await b.subscribe()
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url):
                    pass
            assert refused.value.response.status_code == 503
            assert server.services.metrics.counts["connections_refused_total"] == 1
        async with asyncio.timeout(seconds(5)):
            while server.services.metrics.connections:
                await asyncio.sleep(0.01)
        async with client(server) as c:  # room again once the others left
            assert (await c.subscribe())["type"] == "subscribed"


@aio
async def test_the_kernel_queues_as_many_connections_as_the_backlog_says(
    tmp_path: Path,
) -> None:
    """Room for a fleet coming back at once: 2048 by default (asyncio's own is 100, and a
    connection that finds the queue full waits a second for its SYN to be sent again)."""
    async with running_server(tmp_path) as server:
        assert listen_backlog(server.port) == min(2048, somaxconn())
    async with running_server(tmp_path, backlog=37) as server:
        assert listen_backlog(server.port) == 37


# ---------------------------------------------------------------------- send queue


@aio
async def test_a_client_that_does_not_read_is_closed_4001_at_the_byte_bound(
    tmp_path: Path,
) -> None:
    seed_events(tmp_path / "sync.db", 2000)
    async with running_server(
        tmp_path, send_queue_bytes=256 * 1024, ack_timeout_s=seconds(0.5), replay_page=200
    ) as server:
        assert server.services is not None
        metrics = server.services.metrics
        async with connect(server.url, max_queue=1) as ws:
            for _ in range(20):
                await ws.send(missed())
            async with asyncio.timeout(seconds(15)):
                while not metrics.counts["slow_consumer_closes_total"]:
                    await asyncio.sleep(0.05)
            assert await drain(ws) == 4001
        assert metrics.counts["replays_total"] < 20 * 2000  # paused, never built whole


@aio
async def test_a_client_that_reads_gets_every_page_of_a_large_replay(tmp_path: Path) -> None:
    seed_events(tmp_path / "sync.db", 1200)
    config = {"send_queue_bytes": 64 * 1024, "replay_page": 100}
    async with running_server(tmp_path, **config) as server, client(server) as a:
        await a.send(missed())
        seqs: list[int] = []
        while len(seqs) < 1200:
            page = await a.expect("missed_events")
            assert len(page["events"]) <= 100
            seqs += [event["sequenceNum"] for event in page["events"]]
            assert page["sequenceNum"] == seqs[-1]
        assert seqs == list(range(1, 1201))


@aio
async def test_a_client_that_never_acks_is_closed_4002_and_resumes_without_loss(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, max_unacked=3) as server:
        assert server.services is not None
        async with client(server) as writer, client(server) as silent:
            epoch = (await silent.subscribe())["epoch"]
            for n in range(1, 6):
                assert (await writer.write(n))["ok"] is True
            received = []
            for _ in range(3):
                received.append((await silent.expect("appointments_updated"))["sequenceNum"])
            assert received == [1, 2, 3]
            assert await drain(silent.ws) == 4002
            assert silent.ws.close_reason == "too many unacked events"
            assert server.services.metrics.counts["unacked_closes_total"] == 1
            async with client(server) as back:
                answer = await back.subscribe(since=(epoch, 3))
                assert answer["recovered"] is True
                assert [e["sequenceNum"] for e in answer["events"]] == [4, 5]


# ---------------------------------------------------------------------- reads never write


def unused_dates(count: int) -> list[str]:
    today = date.today()
    return [(today + timedelta(days=1 + n % 700)).isoformat() for n in range(count)]


@aio
async def test_5000_subscribes_to_unused_dates_create_no_rows(tmp_path: Path) -> None:
    async with running_server(tmp_path, message_rate=1e6, message_burst=1e6) as server:
        assert channel_rows(tmp_path / "sync.db") == 1  # the seeded date
        async with client(server) as a:
            for day in unused_dates(5000):
                await a.send({"type": "subscribe", "date": day})
                answer = await a.expect("subscribed")
                assert (answer["date"], answer["sequenceNum"], answer["snapshot"]) == (day, 0, [])
                await a.send({"type": "unsubscribe", "date": day})
            await a.send({"type": "get_snapshot", "date": unused_dates(1)[0]})
            assert (await a.expect("snapshot"))["appointments"] == []
        assert channel_rows(tmp_path / "sync.db") == 1


@aio
async def test_the_first_write_tells_a_subscriber_of_the_empty_channel_to_resync(
    tmp_path: Path,
) -> None:
    day = unused_dates(1)[0]
    async with running_server(tmp_path, relay_poll_s=0.01) as server, client(server) as a:
        await a.send({"type": "subscribe", "date": day})
        empty = await a.expect("subscribed")
        assert (empty["sequenceNum"], empty["snapshot"]) == (0, [])
        assert channel_rows(tmp_path / "sync.db") == 1
        other = SqliteStore(tmp_path / "sync.db")
        other.seed(day, 2)  # the first write of that date: the row, with a fresh epoch
        other.close()
        resync = await a.expect("resync_required")
        assert (resync["date"], resync["reason"]) == (day, "epoch_changed")
        await a.send({"type": "subscribe", "date": day})
        fresh = await a.expect("subscribed")
        assert fresh["epoch"] != empty["epoch"] and len(fresh["snapshot"]) == 2


class RecordedHeads:
    """Delegates to a store and records the dates each relay poll asks for."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.asked: list[list[str]] = []

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        wanted = sorted(dates)
        self.asked.append(wanted)
        return self._store.heads_of(wanted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@aio
async def test_the_relay_polls_only_subscribed_dates(tmp_path: Path) -> None:
    async with running_server(tmp_path, relay_poll_s=0.01) as server:
        services = server.services
        assert services is not None
        for day in unused_dates(300):  # idle channels, as older versions left them
            await services.db.run(services.store.reset_channel, day)
        recorded = RecordedHeads(services.store)
        services.store = recorded  # type: ignore[assignment]
        await asyncio.sleep(seconds(0.2))
        assert recorded.asked == []  # nobody subscribes: the relay reads nothing
        async with client(server) as a, client(server) as b:
            await a.subscribe()
            async with asyncio.timeout(seconds(5)):
                while len(recorded.asked) < 5:
                    await asyncio.sleep(0.01)
            assert all(asked == [DATE] for asked in recorded.asked)
            # Another process writes: the relay still publishes it.
            other = SqliteStore(tmp_path / "sync.db")
            other.write(WriteRequest("elsewhere", f"{DATE}-0001", PRESENT), datetime.now(UTC))
            other.close()
            event = await a.expect("appointments_updated")
            assert event["actionId"] == "elsewhere"
            await b.send({"type": "get_snapshot", "date": DATE})
            assert (await b.expect("snapshot"))["sequenceNum"] == 1


# ---------------------------------------------------------------------- memory


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def flood(url: str, pid: int) -> tuple[float, float]:
    """Three clients each ask for 120 replays from 0 and never read; the peak RSS while
    the server serves them, and the RSS once they are gone."""
    peak = 0.0
    conns = [await connect(url, max_queue=1) for _ in range(3)]
    try:
        for ws in conns:
            for _ in range(120):
                await ws.send(missed())
        deadline = time.monotonic() + seconds(8)
        while time.monotonic() < deadline:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.05)
    finally:
        for ws in conns:
            ws.transport.abort()
    await asyncio.sleep(seconds(2))
    return peak, rss_mib(pid)


@pytest.mark.slow
def test_a_replay_flood_is_bounded_in_memory_and_returned(tmp_path: Path) -> None:
    # Seeding is outside the time bound, and the bound covers the two floods' own 20 time
    # units with room for a loaded machine.
    seed_events(tmp_path / "sync.db", 10_000)
    asyncio.run(asyncio.wait_for(_two_floods(tmp_path), seconds(60)))


async def _two_floods(tmp_path: Path) -> None:
    server = ServerProcess(db_url(tmp_path), "--ack-timeout", "1")
    try:
        await asyncio.sleep(seconds(0.5))
        before = rss_mib(server.proc.pid)
        peak, after = await flood(server.url, server.proc.pid)
        assert peak - before < FLOOD_PEAK_MIB, (before, peak)
        assert after - before < FLOOD_AFTER_MIB, (before, after)
        _, again = await flood(server.url, server.proc.pid)
        assert again - after < FLOOD_REPEAT_MIB, (after, again)  # no growth per flood
        port = server.url.split(":")[2].split("/")[0]
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = (await reader.read()).decode()
        writer.close()
        assert "synccli_connections 0" in text  # every flooding connection was closed
    finally:
        server.stop()
