"""The server on PostgreSQL through pyodbc + psqlODBC, end to end: two ``synccli serve``
processes on one database, a server SIGKILLed mid-storm, the database cut off and back, and
the CLI's answers to bad ODBC URLs.

Every check that matters is made against the database itself: the log is gap-free, every
``ok`` result is its event, every event is one version step of its appointment, and what the
subscribers applied is exactly the log.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from synccli.cli.main import cli
from synccli.clock import utc_now
from synccli.domain.channels import WriteRequest
from synccli.errors import EXIT_INFRASTRUCTURE, EXIT_USAGE
from synccli.faults.proxy import start_in_thread
from synccli.faults.toxiproxy import ToxiproxyFaults
from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.store import open_store
from synccli.store.sql import SqlStore
from tests.conftest import seconds
from tests.server.helpers import DATE, ServerProcess, aio, appt
from tests.server.test_lifecycle import http_get
from tests.store.pg import HOST, PORT, admin_connection, empty_schema, throwaway_database, url_of

pytestmark = pytest.mark.postgres

APPOINTMENTS = 6


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database() as name:
        yield name


@pytest.fixture
def url(database: str) -> Iterator[str]:
    """A fresh, seeded schema in the module's database."""
    empty_schema(database).close()
    address = url_of(database)
    store = open_store(address)
    store.init_schema()
    store.seed(DATE, APPOINTMENTS)
    store.close()
    yield address


# ---------------------------------------------------------------------- clients


class Board:
    """A subscriber screen: applies every event of DATE it receives and acks it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.epoch = ""
        self.answer: dict[str, Any] = {}
        self.events: dict[int, dict[str, Any]] = {}
        self.order: list[int] = []  # sequence numbers in the order first received
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        return self.order[-1] if self.order else 0

    async def subscribe(self, since: tuple[str, int] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "date": DATE}
        if since is not None:
            message["since"] = {"epoch": since[0], "sequenceNum": since[1]}
        await self.ws.send(json.dumps(message))
        while True:
            async with asyncio.timeout(seconds(10)):
                answer: dict[str, Any] = json.loads(await self.ws.recv())
            if answer["type"] == "subscribed":
                break
            assert answer["type"] == "heartbeat", answer
        self.answer, self.epoch = answer, answer["epoch"]
        for event in answer.get("events", []):
            self._apply(event)
        self._reader = asyncio.create_task(self._read())
        return answer

    def _apply(self, event: dict[str, Any]) -> None:
        assert event["epoch"] == self.epoch
        seq = event["sequenceNum"]
        if seq not in self.events:
            self.events[seq] = event
            self.order.append(seq)
            self._changed.set()

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                if message["type"] == "appointments_updated":
                    self._apply(message)
                    ack = {"type": "ack", "date": DATE, "sequenceNum": message["sequenceNum"]}
                    await self.ws.send(json.dumps(ack))
        except ConnectionClosed:
            pass

    async def until(self, head: int, timeout: float = 15.0) -> None:
        """Wait until the board has applied the event ``head``."""
        async with asyncio.timeout(seconds(timeout)):
            while head not in self.events:
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


@asynccontextmanager
async def board(url: str, since: tuple[str, int] | None = None) -> AsyncIterator[Board]:
    async with connect(url, compression=None) as ws:
        screen = Board(ws)
        await screen.subscribe(since)
        try:
            yield screen
        finally:
            await screen.stop()


def update(request_id: str, n: int, state: str) -> dict[str, Any]:
    return {
        "type": "update_appointment_state",
        "requestId": request_id,
        "appointmentId": appt(n),
        "state": state,
    }


async def writer(url: str, name: str, count: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``count`` check-ins and undos on random appointments, one at a time; every
    result received (it stops early when the server goes away). A writer only knows its own
    outcomes, so it often guesses a transition another writer already made
    (``invalid_transition``): real contention on the same rows."""
    rng = random.Random(seed)
    guess = dict.fromkeys(range(1, APPOINTMENTS + 1), "Scheduled")
    results: list[dict[str, Any]] = []
    try:
        async with connect(url, compression=None) as ws:
            for index in range(count):
                n = rng.randint(1, APPOINTMENTS)
                target = "Present" if guess[n] == "Scheduled" else "Scheduled"
                await ws.send(json.dumps(update(f"{name}-{index}", n, target)))
                async with asyncio.timeout(seconds(10)):
                    result: dict[str, Any] = json.loads(await ws.recv())
                assert result["type"] == "result" and result["requestId"] == f"{name}-{index}"
                results.append(result)
                if result["ok"] or result["error"]["code"] == "invalid_transition":
                    guess[n] = target
    except ConnectionClosed:
        pass
    return results


# ---------------------------------------------------------------------- checks on the database


def log_of(store: SqlStore) -> list[dict[str, Any]]:
    """The whole log of DATE as the wire would carry it, checked gap-free from 1."""
    channel = store.channel(DATE)
    events = [e.to_wire(False) for e in store.events_since(DATE, 0, 1_000_000)]
    assert [e["sequenceNum"] for e in events] == list(range(1, channel.head_seq + 1))
    return events


def assert_log_is_the_rows(store: SqlStore, database: str) -> list[dict[str, Any]]:
    """No event without its appointment change and no change without its event: each
    appointment's events are one version step each in log order, and its last event is the
    row as it stands; one idempotency record per event."""
    events = log_of(store)
    for row in store.snapshot(DATE)[1]:
        key = row.appointment_id
        mine = [e["appointment"] for e in events if e["appointment"]["appointmentId"] == key]
        assert [r["version"] for r in mine] == list(range(2, row.version + 1))
        if mine:
            assert mine[-1] == row.to_wire()
    admin = admin_connection(database)
    requests = admin.execute("SELECT request_id, seq FROM requests").fetchall()
    admin.close()
    assert sorted((str(r[0]), int(r[1])) for r in requests) == sorted(
        (str(e["actionId"]), e["sequenceNum"]) for e in events
    )
    return events


def assert_results_are_the_log(results: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """Every ok result is the event at its sequence number: same request, same row."""
    by_seq = {e["sequenceNum"]: e for e in events}
    for result in results:
        if result["ok"]:
            event = by_seq[result["sequenceNum"]]
            assert event["actionId"] == result["requestId"]
            assert event["appointment"] == result["appointment"]


def assert_board_has(screen: Board, events: list[dict[str, Any]]) -> None:
    """The board applied exactly the log, in sequence order."""
    assert screen.order == [e["sequenceNum"] for e in events]
    for event in events:
        got = screen.events[event["sequenceNum"]]
        assert (got["id"], got["actionId"], got["appointment"]) == (
            event["id"],
            event["actionId"],
            event["appointment"],
        )


def oks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["ok"]]


# ---------------------------------------------------------------------- the tests


@pytest.mark.slow
@aio
async def test_two_servers_on_one_database_share_one_gap_free_log(url: str, database: str) -> None:
    first, second = ServerProcess(url), ServerProcess(url)
    try:
        async with board(first.url) as a, board(second.url) as b:
            batches = await asyncio.gather(
                writer(first.url, "a1", 40, 1),
                writer(first.url, "a2", 40, 2),
                writer(second.url, "b1", 40, 3),
                writer(second.url, "b2", 40, 4),
            )
            results = [result for batch in batches for result in batch]
            assert len(results) == 160
            assert {r["error"]["code"] for r in results if not r["ok"]} <= {"invalid_transition"}
            store = open_store(url)
            assert isinstance(store, SqlStore)
            events = assert_log_is_the_rows(store, database)
            store.close()
            # Every event is an ok result and every ok result is its event.
            assert len(oks(results)) == len(events)
            assert_results_are_the_log(results, events)
            assert {e["actionId"][0] for e in events} == {"a", "b"}, "both servers wrote"
            # Each board gets the other server's events through its relay.
            await a.until(len(events))
            await b.until(len(events))
            assert_board_has(a, events)
            assert_board_has(b, events)
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


@pytest.mark.slow
@aio
async def test_a_server_killed_mid_storm_loses_no_committed_event(url: str, database: str) -> None:
    victim, survivor = ServerProcess(url), ServerProcess(url)
    restarted: ServerProcess | None = None
    try:
        async with board(victim.url) as before, board(survivor.url) as other:
            storm = asyncio.gather(
                writer(victim.url, "v1", 100_000, 5),
                writer(victim.url, "v2", 100_000, 6),
                writer(survivor.url, "s1", 150, 7),
            )
            await before.until(30)
            victim.kill()
            batches = await storm
            results = [result for batch in batches for result in batch]
            store = open_store(url)
            assert isinstance(store, SqlStore)
            events = assert_log_is_the_rows(store, database)
            store.close()
            assert_results_are_the_log(results, events)
            assert len(oks(results)) <= len(events) <= len(oks(results)) + 2  # 2 in flight
            restarted = ServerProcess(url)
            async with board(restarted.url, since=(before.epoch, before.position)) as after:
                assert after.answer["recovered"] is True
                assert after.order == list(range(before.position + 1, len(events) + 1))
            resumed = Board(before.ws)
            resumed.epoch, resumed.events = before.epoch, before.events | after.events
            resumed.order = before.order + after.order
            assert_board_has(resumed, events)
            await other.until(len(events))
            assert_board_has(other, events)
    finally:
        victim.proc.kill()
        assert survivor.stop() == 0
        if restarted is not None:
            assert restarted.stop() == 0


@contextmanager
def database_link(url: str) -> Iterator[tuple[str, ToxiproxyFaults]]:
    """``url`` reached through a proxy of the embedded Toxiproxy (the shared PostgreSQL
    itself is never stopped); ``set_enabled([0], False)`` cuts it, ``True`` restores it."""
    handle = start_in_thread("127.0.0.1", 0, seed=1)
    faults = ToxiproxyFaults(handle.url, prefix="pg")
    try:
        listen = faults.create_proxies(f"{HOST}:{PORT}", 1)[0]
        yield url.replace(f"@{HOST}:{PORT}/", f"@{listen}/"), faults
    finally:
        faults.destroy()
        handle.stop()


async def healthz_until(port: int, status: int) -> dict[str, Any]:
    """Poll ``/healthz`` until it answers ``status`` (bounded)."""
    async with asyncio.timeout(seconds(10)):
        while True:
            got, body = await http_get(port, "/healthz")
            if got == status:
                answer: dict[str, Any] = json.loads(body)
                return answer
            await asyncio.sleep(0.02)


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message``; its answer (heartbeats skipped)."""
    await ws.send(json.dumps(message))
    async with asyncio.timeout(seconds(10)):
        while True:
            answer: dict[str, Any] = json.loads(await ws.recv())
            if answer["type"] != "heartbeat":
                return answer


@aio
async def test_database_down_then_back(url: str, database: str) -> None:
    direct = open_store(url)
    assert isinstance(direct, SqlStore)
    with database_link(url) as (proxied, link):
        config = ServerConfig(db_url=proxied, port=0, relay_poll_s=0.02, retention_hours=None)
        async with (
            SyncServer(config) as server,
            board(server.url) as live,
            connect(server.url, compression=None) as ws,
        ):
            for n in (1, 2, 3):
                assert (await request(ws, update(f"up-{n}", n, "Present")))["ok"]
            await live.until(3)

            await asyncio.to_thread(link.set_enabled, [0], False)
            assert (await healthz_until(server.port, 503))["status"] == "db_unavailable"
            failed = await request(ws, update("down-1", 4, "Present"))
            assert (failed["ok"], failed["error"]["code"]) == (False, "db_unavailable")
            # A resume within the tail cache is still served.
            async with board(server.url, since=(live.epoch, 1)) as resumed:
                assert resumed.answer["recovered"] is True
                assert resumed.order == [2, 3]
                # Reads that need the database say so.
                for read in ("get_snapshot", "subscribe"):
                    answer = await request(ws, {"type": read, "date": DATE})
                    assert (answer["type"], answer["code"]) == ("error", "db_unavailable")
                # Another process keeps writing while this server cannot see the database.
                for n in (5, 6):
                    request_id = f"elsewhere-{n}"
                    message = WriteRequest(request_id, appt(n), "Present")
                    await asyncio.to_thread(direct.write, message, utc_now())

                await asyncio.to_thread(link.set_enabled, [0], True)
                assert (await healthz_until(server.port, 200))["status"] == "ok"
                again = await request(ws, update("down-1", 4, "Present"))
                assert (again["ok"], again["sequenceNum"]) == (True, 6)
                await live.until(6)
                await resumed.until(6)
        events = assert_log_is_the_rows(direct, database)
        assert [e["actionId"] for e in events] == [
            "up-1",
            "up-2",
            "up-3",
            "elsewhere-5",
            "elsewhere-6",
            "down-1",
        ]
        assert_board_has(live, events)
        resumed_all = [e for e in events if e["sequenceNum"] >= 2]
        assert_board_has(resumed, resumed_all)
    direct.close()


@aio
async def test_a_silent_database_is_answered_in_time_then_recovers(url: str, database: str) -> None:
    """The database stops answering without closing anything (the proxy swallows every byte
    to it): writes are still answered, ``/healthz`` turns 503, and all is well once the link
    is back."""
    direct = open_store(url)
    assert isinstance(direct, SqlStore)
    with database_link(url) as (proxied, link):
        config = ServerConfig(
            db_url=proxied, port=0, relay_poll_s=0.02, retention_hours=None, db_timeout_s=1.0
        )
        async with (
            SyncServer(config) as server,
            board(server.url) as live,
            connect(server.url, compression=None) as ws,
        ):
            assert (await request(ws, update("before", 1, "Present")))["ok"]
            await live.until(1)
            [silence] = await asyncio.to_thread(
                link.add_toxic, [0], "timeout", "upstream", {"timeout": 0}
            )
            failed = await request(ws, update("silent", 2, "Present"))
            assert (failed["ok"], failed["error"]["code"]) == (False, "db_unavailable")
            assert "did not answer within 1 s" in failed["error"]["message"]
            assert (await healthz_until(server.port, 503))["status"] == "db_unavailable"
            # Removing the toxic closes the stuck connections; the store reconnects.
            await asyncio.to_thread(link.remove_toxic, [0], silence)
            assert (await healthz_until(server.port, 200))["status"] == "ok"
            again = await request(ws, update("silent", 2, "Present"))
            assert (again["ok"], again.get("sequenceNum")) == (True, 2), again
            await live.until(2)
        events = assert_log_is_the_rows(direct, database)
        assert [e["actionId"] for e in events] == ["before", "silent"]
        assert_board_has(live, events)
    direct.close()


SCENARIO = """
description = "clients cut off through the proxy, then the server killed, on PostgreSQL"
seed = 31
duration_s = 7
clients = 4
writers = 2
rate = 10
groups = 2
drain_timeout_s = 15
[[faults]]
name = "offline"
kind = "down"
at_s = 1
for_s = 1.5
target = "50%"
[[faults]]
name = "crash"
kind = "server_kill"
at_s = 4
for_s = 1
[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
phantoms = "== 0"
delivery_rate = ">= 0.995"
"""


@pytest.mark.slow
def test_simulation_with_faults_on_postgres_passes_the_gate(url: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    synccli = [sys.executable, "-m", "synccli"]
    simulate = [*synccli, "simulate", "--db", url, "--scenario", str(scenario), "--quiet"]
    run = subprocess.run(
        [*simulate, "--out", str(out)], capture_output=True, text=True, timeout=seconds(90)
    )
    summary = json.loads((out / "summary.json").read_text())
    assert run.returncode == 0, (summary["reasons"], run.stdout[-2000:], run.stderr[-2000:])
    assert summary["truth_source"].startswith("postgresql+pyodbc://")
    assert summary["delivery_rate"] == 1.0 and summary["events_committed"] > 20
    assert [f["name"] for f in summary["faults"]] == ["offline", "crash"]
    assert not any(f["no_trace"] or f["error"] for f in summary["faults"])
    gate = subprocess.run(
        [*synccli, "report", str(out), "--gate", "--db", url, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr


DB_FAULTS = """
description = "database faults mid-write on PostgreSQL: deadlock victims, failed verifies"
seed = 23
duration_s = 6
clients = 3
writers = 2
rate = 20
drain_timeout_s = 15
[[faults]]
name = "deadlocks"
kind = "db_fault"
mode = "deadlock"
rate = 0.8
at_s = 1
for_s = 2
[[faults]]
name = "verify"
kind = "db_fault"
mode = "verify"
rate = 0.5
at_s = 3.5
for_s = 1.5
[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
phantoms = "== 0"
delivery_rate = ">= 0.995"
"""


@pytest.mark.slow
def test_database_faults_mid_write_on_postgres_leave_no_partial_write(
    url: str, tmp_path: Path
) -> None:
    """The one-round-trip write under the db-fault hook: every failed write is rolled back
    (no event without its success, none lost), and the gate passes."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(DB_FAULTS)
    out = tmp_path / "run"
    synccli = [sys.executable, "-m", "synccli"]
    simulate = [*synccli, "simulate", "--db", url, "--scenario", str(scenario), "--quiet"]
    run = subprocess.run(
        [*simulate, "--out", str(out)], capture_output=True, text=True, timeout=seconds(90)
    )
    summary = json.loads((out / "summary.json").read_text())
    assert run.returncode == 0, (summary["reasons"], run.stdout[-2000:], run.stderr[-2000:])
    assert all(f["evidence"]["db_errors"] >= 1 for f in summary["faults"])
    assert summary["writes"]["failed"].get("db_unavailable", 0) >= 1
    assert summary["events_committed"] == summary["writes"]["ok"]
    gate = subprocess.run(
        [*synccli, "report", str(out), "--gate", "--db", url, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr


# ---------------------------------------------------------------------- the CLI on bad URLs


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def bad_urls(database: str) -> list[tuple[str, int, str]]:
    """(URL, exit code, words the message must contain); every URL carries a password."""
    good = url_of(database).replace("postgres@", "postgres:hunter2@")
    return [
        (good.replace(f":{PORT}/", ":port/"), EXIT_USAGE, "bad database URL"),
        (good.replace("postgres:hunter2@127.0.0.1", "postgres:hunter2@"), EXIT_USAGE, "no host"),
        (
            good.replace("driver=PostgreSQL+Unicode", "driver=No+Such+Driver"),
            EXIT_INFRASTRUCTURE,
            "is not installed",
        ),
        (
            good.replace("postgres:hunter2@", "no_such_role:hunter2@"),
            EXIT_INFRASTRUCTURE,
            "refused the login",
        ),
        (good.replace(f"/{database}?", "/no_such_db?"), EXIT_INFRASTRUCTURE, "does not exist"),
        (
            good.replace(f":{PORT}/", f":{closed_port()}/"),
            EXIT_INFRASTRUCTURE,
            "check that the server is running",
        ),
    ]


@pytest.mark.parametrize("command", [["db", "init"], ["serve", "--port", "0"]])
def test_bad_odbc_urls_are_one_sentence_without_the_password(
    database: str, command: list[str]
) -> None:
    admin_connection().close()  # skips (fails in CI) without PostgreSQL and its driver
    for address, code, words in bad_urls(database):
        result = CliRunner().invoke(cli, [*command, "--db", address])
        output = result.output.strip()
        assert result.exit_code == code, (address, output)
        assert output.startswith("Error: ") and words in output, output
        assert len(output.splitlines()) == 1, output
        assert "hunter2" not in output and "Traceback" not in output
