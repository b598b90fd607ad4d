"""The client and the fleet against the real server (127.0.0.1, port 0, SQLite in tmp_path)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from synccli.client.fleet import FleetConfig, live_counters, run_fleet
from synccli.client.simulated import SimulatedClient
from synccli.domain.values import Position
from synccli.history import HistoryWriter, RunEnd, RunStart, load_history
from synccli.store import Store, open_store
from tests.client.builders import RecordingSink, client_config
from tests.conftest import seconds

try:
    from synccli.server.app import SyncServer
    from synccli.server.config import ServerConfig
except ImportError:  # pragma: no cover - only while the server is being written
    SyncServer = None  # type: ignore[assignment,misc]

pytestmark = pytest.mark.skipif(SyncServer is None, reason="synccli.server is not there yet")

DATES = ["2026-11-26", "2026-11-27"]


def run(test: Callable[[], Awaitable[None]], limit: float = 60) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds(limit)):
            await test()

    asyncio.run(bounded())


def seeded(tmp_path: Path, per_date: int = 20) -> tuple[str, Store]:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    store = open_store(url)
    store.init_schema()
    for date in DATES:
        store.seed(date, per_date)
    return url, store


@contextlib.asynccontextmanager
async def server(db_url: str, *bugs: str) -> AsyncIterator[SyncServer]:
    instance = SyncServer(
        ServerConfig(db_url=db_url, port=0, heartbeat_s=0.5, inject_bugs=bugs, bug_seed=3)
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


def heads_of(store: Store) -> Callable[[], Awaitable[dict[str, tuple[str, int]]]]:
    async def heads() -> dict[str, tuple[str, int]]:
        channels = await asyncio.to_thread(store.heads)
        return {date: (c.epoch, c.head_seq) for date, c in channels.items()}

    return heads


def read_history(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The history's lines in their JSON form, and whether the last one was cut off."""
    history = load_history(path)
    return [e.to_json() for e in history.entries], history.truncated


def assert_exactly_once_and_converged(records: list[dict[str, Any]], store: Store) -> None:
    """Per client and date: every applied event is the next one after the last snapshot or
    applied event (no loss, no duplicate, no reorder), and the final state is the database's."""
    position: dict[tuple[str, str], int] = {}
    finals: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        key = (record["c"], record.get("date", ""))
        kind = record["k"]
        if (kind == "subscribed" and not record["recovered"]) or kind == "snapshot":
            position[key] = record["seq"]
        elif kind == "apply":
            assert record["seq"] == position[key] + 1, record
            position[key] = record["seq"]
        elif kind == "final":
            finals[record["c"]][record["date"]] = record
    assert finals
    for client, per_date in finals.items():
        for date, final in per_date.items():
            channel, rows = store.snapshot(date)
            truth = {row.appointment_id: [row.version, row.state] for row in rows}
            assert (final["epoch"], final["seq"]) == (channel.epoch, channel.head_seq), client
            assert final["rows"] == truth, client
            assert final["status"] == "synced"


def test_fleet_of_ten_with_two_writers_delivers_everything_and_converges(tmp_path: Path) -> None:
    db_url, store = seeded(tmp_path)

    async def body() -> None:
        async with server(db_url) as srv:
            history = HistoryWriter(tmp_path / "history.jsonl", t0=time.monotonic())
            config = FleetConfig(
                urls=[srv.url],
                clients=10,
                writers=2,
                dates=DATES,
                rate=20,
                duration_s=seconds(5),
                seed=42,
                drain_timeout_s=seconds(15),
            )
            seen: list[dict[str, int]] = []
            healed: list[int] = []

            async def heal() -> None:
                healed.append(len(seen))

            result = await run_fleet(
                config, history, asyncio.Event(), seen.append, heads_of(store), heal
            )
            history.close()
        assert healed, "before_drain was not called"
        assert result.drained
        assert result.counters["writes_ok"] >= 40
        assert result.counters["connected"] == 0  # all closed at the end
        assert len(result.seeds) == 10 and len(set(result.seeds.values())) == 10
        assert seen and seen[-1]["clients"] == 10
        assert result.loop_lag_p99_ms < 1000
        records, truncated = read_history(tmp_path / "history.jsonl")
        assert not truncated
        assert_exactly_once_and_converged(records, store)
        heads = {date: c.head_seq for date, c in store.heads().items()}
        first: dict[tuple[str, str], int] = {}
        for r in records:
            if r["k"] == "subscribed":
                first.setdefault((r["c"], r["date"]), r["seq"])
        assert len(first) == 10 * len(DATES)
        applied = sum(1 for r in records if r["k"] == "apply")
        # Every client applied every event after its snapshot, once.
        assert applied == sum(heads[date] - seq for (_, date), seq in first.items())
        assert live_counters() == {}

    run(body)


def test_fleet_split_over_two_worker_processes_merges_one_ordered_history(tmp_path: Path) -> None:
    db_url, store = seeded(tmp_path, per_date=5)

    async def body() -> None:
        async with server(db_url) as srv:
            history = HistoryWriter(tmp_path / "history.jsonl", t0=time.monotonic())
            history.write(None, RunStart(seed=7))
            config = FleetConfig(
                urls=[srv.url],
                clients=4,
                writers=1,
                dates=DATES,
                rate=10,
                duration_s=seconds(2),
                seed=7,
                workers=2,
                drain_timeout_s=seconds(15),
            )
            result = await run_fleet(config, history, asyncio.Event(), None, heads_of(store))
            history.write(None, RunEnd(interrupted=False, drained=result.drained))
            history.close()
        assert result.drained and result.workers == 2
        assert sorted(result.seeds) == ["c000", "c001", "c002", "c003"]
        records, truncated = read_history(tmp_path / "history.jsonl")
        assert not truncated
        assert records[0]["k"] == "run_start" and records[-1]["k"] == "run_end"
        assert [r["t"] for r in records] == sorted(r["t"] for r in records)
        assert {r["c"] for r in records if r["k"] == "client"} == set(result.seeds)
        assert not list(tmp_path.glob("history.jsonl.*"))
        assert_exactly_once_and_converged(records, store)

    run(body)


class Relay:
    """A TCP relay on 127.0.0.1 that can cut its connections and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


def test_killed_connection_reconnects_and_recovers_the_missed_events_via_since(
    tmp_path: Path,
) -> None:
    db_url, store = seeded(tmp_path)
    date = DATES[0]

    async def body() -> None:
        async with server(db_url) as srv:
            relay = Relay(srv.port)
            await relay.start()
            writer_sink, victim_sink = RecordingSink(), RecordingSink()
            writer = SimulatedClient(
                client_config("w", srv.url, (date,), seed=1, write_rate=100), writer_sink
            )
            victim = SimulatedClient(
                client_config(
                    "v", f"ws://127.0.0.1:{relay.port}/ws", (date,), seed=2, backoff_max=0.2
                ),
                victim_sink,
            )
            victim.start()
            await victim_sink.wait_for(lambda s: bool(s.of("subscribed")), seconds(5))
            writer.start()
            await victim_sink.wait_for(lambda s: len(s.of("apply")) >= 5, seconds(10))
            relay.refusing = True
            relay.cut()
            await victim_sink.wait_for(lambda s: bool(s.of("disconnect")), seconds(5))
            before = len(writer_sink.of("write_result"))
            await writer_sink.wait_for(
                lambda s: len(s.of("write_result")) >= before + 10, seconds(10)
            )
            relay.refusing = False
            await victim_sink.wait_for(lambda s: len(s.of("subscribed")) >= 2, seconds(10))
            await writer.stop_writing()
            await writer_sink.wait_for(lambda s: not writer.session.pending, seconds(10))
            channel = store.channel(date)
            head = {date: Position(channel.epoch, channel.head_seq)}
            await victim_sink.wait_for(lambda s: victim.caught_up(head), seconds(10))
            victim.write_final()
            await victim.close()
            await writer.close()
            await relay.close()
        resumed = victim_sink.of("subscribed")[-1]
        assert resumed["recovered"] is True and resumed["events"] >= 10
        assert victim_sink.of("connect_failed") or len(victim_sink.of("connect")) >= 2
        assert_exactly_once_and_converged(victim_sink.records, store)

    run(body)


@pytest.mark.parametrize(("client_bugs", "correct"), [((), True), (("no-reorder-buffer",), False)])
def test_correct_client_survives_a_lossy_server_a_buggy_one_does_not(
    tmp_path: Path, client_bugs: tuple[str, ...], correct: bool
) -> None:
    """``skip-events`` never sends (nor replays) every 7th event: a correct client notices
    each gap, asks, and after unfilled requests resyncs from a snapshot; a client without a
    reorder buffer applies past the hole."""
    db_url, store = seeded(tmp_path, per_date=10)
    records: list[dict[str, Any]] = []

    async def body() -> None:
        async with server(db_url, "skip-events") as srv:
            history = HistoryWriter(tmp_path / "history.jsonl", t0=time.monotonic())
            config = FleetConfig(
                urls=[srv.url],
                clients=2,
                writers=1,
                dates=DATES[:1],
                rate=20,
                duration_s=seconds(1.5),
                seed=9,
                client_bugs=client_bugs,
                gap_timeout_s=0.2,
                drain_timeout_s=seconds(5),
            )
            result = await run_fleet(config, history, asyncio.Event(), None, heads_of(store))
            history.close()
        assert result.drained or not correct
        records.extend(read_history(tmp_path / "history.jsonl")[0])

    run(body)
    if correct:
        assert any(r["k"] == "gap" for r in records)
        assert any(r["k"] == "resync" and r["reason"] == "gap_unfilled" for r in records)
        assert_exactly_once_and_converged(records, store)
    else:
        with pytest.raises(AssertionError):
            assert_exactly_once_and_converged(records, store)
