"""Honest health: ``/livez``, ``/readyz`` (503 with the reason on a full disk, and back),
``/healthz`` as its alias, a corrupt database page logged and counted, and log floods
(asyncio's accept() errors on EMFILE among them) limited to one line a second per kind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.server.logs import FloodFilter, Suppressed
from tests.conftest import require, seconds
from tests.server.helpers import DATE, aio, client, days_back, running_server
from tests.server.test_auth import SECRET, bearer, http, token
from tests.server.test_lifecycle import http_get
from tests.server.test_limits import seed_events


@aio
async def test_livez_readyz_and_healthz_answer_when_all_is_well(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        assert await http_get(server.port, "/livez") == (200, '{"status": "alive"}\n')
        status, body = await http_get(server.port, "/readyz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, alias = await http_get(server.port, "/healthz")
        assert status == 200 and json.loads(alias).keys() == json.loads(body).keys()
        assert not list(tmp_path.glob(".*probe"))  # the disk probe cleans up after itself


@aio
async def test_the_reason_of_not_ready_is_only_for_trusted_callers(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET) as server:
        assert server.services is not None
        gone = tmp_path.with_name(tmp_path.name + "-gone")
        os.rename(tmp_path, gone)  # the database's folder vanishes under the server
        try:
            server.services.store.close()  # the next call reconnects, and fails
            bare = await readyz_until(server.port, 503)
            assert bare == {"status": "db_unavailable"}  # no paths for anonymous callers
            status, body = await asyncio.to_thread(http, server.port, "/readyz", bearer(token()))
            assert status == 503 and "sync.db" in json.loads(body)["reason"]
            assert (await http_get(server.port, "/livez"))[0] == 200
        finally:
            os.rename(gone, tmp_path)


# ---------------------------------------------------------------------- a full disk


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (root only); unmounted afterwards."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    require(shutil.which("mount") is not None, "no mount command")
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    require(done.returncode == 0, f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full."""
    filler = folder / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
    return filler


async def readyz_until(port: int, status: int) -> dict[str, object]:
    async with asyncio.timeout(seconds(10)):
        while True:
            got, body = await http_get(port, "/readyz")
            if got == status:
                answer: dict[str, object] = json.loads(body)
                return answer
            await asyncio.sleep(0.1)


@aio
async def test_readyz_is_503_on_a_full_disk_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        seed_events(disk / "sync.db", 20)
        config = ServerConfig(db_url=f"sqlite:///{disk / 'sync.db'}", port=0, days_back=days_back())
        async with SyncServer(config) as server:
            assert (await readyz_until(server.port, 200))["status"] == "ok"
            filler = fill(disk)
            answer = await readyz_until(server.port, 503)
            assert answer["status"] == "db_unavailable"
            assert "No space left on device" in str(answer["reason"])
            assert (await http_get(server.port, "/healthz"))[0] == 503
            assert (await http_get(server.port, "/livez"))[0] == 200  # the process answers
            filler.unlink()
            assert (await readyz_until(server.port, 200))["status"] == "ok"
            async with client(server) as a:
                assert (await a.write(1, request_id="after-the-disk"))["ok"] is True


# ---------------------------------------------------------------------- corruption


def corrupt_events_table(path: Path) -> None:
    """Overwrite the root page of the events table with garbage."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
    conn.close()
    with path.open("r+b") as db:
        db.seek((root[0] - 1) * page_size)
        db.write(b"\xa5" * page_size)


@aio
async def test_a_corrupt_page_is_logged_as_an_error_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_events(tmp_path / "sync.db", 200)
    corrupt_events_table(tmp_path / "sync.db")
    async with running_server(tmp_path) as server, client(server) as a:
        with caplog.at_level(logging.ERROR, logger="synccli.store.sql"):
            await a.send({"type": "request_missed_events", "date": DATE, "lastSequenceNum": 0})
            error = await a.expect("error")
        assert error["code"] == "db_unavailable" and "corrupt" in error["message"]
        (record,) = [r for r in caplog.records if "corrupt" in r.getMessage()]
        assert record.levelno == logging.ERROR
        _, metrics = await http_get(server.port, "/metrics")
        assert "synccli_db_corrupt_total 1" in metrics.splitlines()


# ---------------------------------------------------------------------- log floods


def record(message: str, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_a_flood_is_one_line_a_second_per_kind_with_the_count() -> None:
    now = [0.0]
    counter = Suppressed()
    flood = FloodFilter(1.0, clock=lambda: now[0], counter=counter)
    accept = "socket.accept() out of system resource"
    passed = [flood.filter(record(accept)) for _ in range(1000)]
    assert passed.count(True) == 1 and passed[0]
    assert flood.filter(record("another kind"))  # kinds are limited separately
    assert flood.filter(record(accept, name="other.logger"))
    now[0] = 1.0
    line = record(accept)
    assert flood.filter(line)
    assert line.getMessage() == f"{accept} (999 similar lines suppressed)"
    assert counter.total == 999
    now[0] = 2.5
    quiet = record(accept)
    assert flood.filter(quiet) and quiet.getMessage() == accept  # nothing was suppressed
    debug = [record(accept) for _ in range(3)]
    for line in debug:
        line.levelno = logging.DEBUG
    assert all(flood.filter(line) for line in debug)  # debug output is never thinned


def test_a_filter_on_several_handlers_decides_once_per_record() -> None:
    flood = FloodFilter(1.0, clock=lambda: 0.0, counter=Suppressed())
    handlers = [logging.Handler(), logging.Handler()]
    for handler in handlers:
        handler.addFilter(flood)
    first, again = record("same"), record("same")
    assert [h.filter(first) for h in handlers] == [True, True]  # both handlers log it
    assert [h.filter(again) for h in handlers] == [False, False]


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


def _serves_again(port: int) -> bool:
    """Whether ``/livez`` answers 200 within a few seconds: the server notices the closed
    connections (and frees their descriptors) at its own pace."""
    deadline = time.monotonic() + seconds(10)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as r:
                status: int = r.status
                return status == 200
        except OSError:
            time.sleep(0.1)  # polling another process, bounded by the deadline
    return False


@pytest.mark.slow
@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_accept_errors_on_emfile_are_limited(tmp_path: Path, event_loop: str) -> None:
    """asyncio's loop logs every failed accept (thinned here to about one a second); uvloop's
    libuv accepts and closes the extra connection itself and logs nothing. Either way the
    server serves again once descriptors are free."""
    log_file = tmp_path / "serve.err"
    command = [sys.executable, "-m", "synccli", "serve", "--port", "0", "--event-loop", event_loop]
    with log_file.open("w") as err:
        proc = subprocess.Popen(
            [*command, "--db", f"sqlite:///{tmp_path / 'x.db'}"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=_few_descriptors,
        )
    sockets: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[4].split(":")[2].split("/")[0])
        for _ in range(100):  # far more than the 40 descriptors the server may open
            sockets.append(socket.create_connection(("127.0.0.1", port)))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=seconds(3))  # the server runs on; this is just the wait
        for sock in sockets:
            sock.close()
        sockets.clear()
        assert _serves_again(port)
    finally:
        for sock in sockets:
            sock.close()
        proc.terminate()
        proc.wait(timeout=seconds(10))
    text = log_file.read_text()
    tracebacks = text.count("Too many open files")
    if event_loop == "uvloop":
        assert tracebacks == 0, text[:2000]
        return
    assert 1 <= tracebacks <= seconds(3) * 2 + 2, text[:2000]  # about one per second
    assert "similar lines suppressed" in text
