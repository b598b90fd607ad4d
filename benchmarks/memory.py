"""Server memory per connection: the RSS of ``synccli serve`` (a subprocess on a fresh SQLite
file) holding N idle and then N subscribed WebSocket connections on 127.0.0.1, against a
bare websockets server process holding the same connections, in the same run.

    python benchmarks/memory.py                              # 1,000 and 10,000 connections
    python benchmarks/memory.py --connections 1000 --workers 2

Both servers use the same websockets settings (no compression, as synccli's server). The
clients are spread over ``--workers`` processes (default 4), each with its file limit
raised (``resource.setrlimit``, as the benchmark raises its own and so the servers'). For
each N and server: the server's RSS (``/proc/PID/status``) with no connection, after all N
are open and idle, and after each has subscribed to one date (``--appointments`` rows, so
a small snapshot each) and got its answer. KB per connection is the growth over N. Every
phase is bounded by ``--timeout``. Budget: ≤ 50 KB per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import click
from tabulate import tabulate
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from synccli.harness.server_process import ServerProcess, free_port
from synccli.store import open_store

# A date of its own, inside the window the server serves (a year or so ahead).
DATE = (datetime.now(UTC).date() + timedelta(days=401)).isoformat()
_FORK = multiprocessing.get_context("fork")


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# ---------------------------------------------------------------------- client processes


async def _clients(url: str, count: int, pipe: Connection) -> None:
    sockets: list[ClientConnection] = []
    try:
        for _ in range(count):
            sockets.append(await connect(url, open_timeout=60, compression=None))
        pipe.send("open")
        await asyncio.to_thread(pipe.recv)
        subscribe = json.dumps({"type": "subscribe", "date": DATE})
        for ws in sockets:
            await ws.send(subscribe)

        async def answered(ws: ClientConnection) -> None:
            while (kind := json.loads(await ws.recv()).get("type")) != "subscribed":
                if kind == "error":
                    raise RuntimeError("the server refused the subscribe")

        await asyncio.gather(*(answered(ws) for ws in sockets))
        pipe.send("subscribed")
        await asyncio.to_thread(pipe.recv)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def client_main(url: str, count: int, pipe: Connection) -> None:
    raise_fd_limit()
    asyncio.run(_clients(url, count, pipe))


# ---------------------------------------------------------------------- the bare server


async def _bare(port: int, appointments: int, pipe: Connection) -> None:
    rows = [
        {
            "appointmentId": f"{DATE}-{i:04d}",
            "date": DATE,
            "patient": f"Patient {i}",
            "state": "Scheduled",
            "stateTime": None,
            "version": 1,
            "updatedAt": f"{DATE}T00:00:00.000Z",
        }
        for i in range(1, appointments + 1)
    ]
    answer = json.dumps(
        {"type": "subscribed", "date": DATE, "epoch": "e", "sequenceNum": 0}
        | {"recovered": False, "snapshot": rows},
        separators=(",", ":"),
    )

    async def handler(ws: ServerConnection) -> None:
        async for text in ws:
            if json.loads(text).get("type") == "subscribe":
                await ws.send(answer)

    # The transport settings of synccli's server (no compression, a 64-frame queue).
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=64):
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)


def bare_main(port: int, appointments: int, pipe: Connection) -> None:
    raise_fd_limit()
    asyncio.run(_bare(port, appointments, pipe))


@contextlib.asynccontextmanager
async def server(variant: str, workdir: Path, appointments: int) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    if variant == "synccli":
        db_url = f"sqlite:///{workdir / 'memory.db'}"
        store = open_store(db_url)
        store.init_schema()
        store.seed(DATE, appointments)
        store.close()
        process = ServerProcess(db_url, "127.0.0.1", port, workdir / "server.log")
        await process.start()
        try:
            assert process.pid is not None
            yield process.ws_url, process.pid
        finally:
            await process.stop()
        return
    mine, theirs = _FORK.Pipe()
    proc = _FORK.Process(target=bare_main, args=(port, appointments, theirs), daemon=True)
    proc.start()
    try:
        await asyncio.to_thread(mine.recv)
        assert proc.pid is not None
        yield f"ws://127.0.0.1:{port}/ws", proc.pid
    finally:
        mine.send("stop")
        await asyncio.to_thread(proc.join, 10)
        if proc.is_alive():
            proc.kill()


async def _all(pipes: list[Connection], want: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        for pipe in pipes:
            got = await asyncio.to_thread(pipe.recv)
            assert got == want, got


async def measure(
    variant: str, n: int, workers: int, appointments: int, timeout: float
) -> list[object]:
    with tempfile.TemporaryDirectory(prefix="synccli-memory-") as scratch:
        async with server(variant, Path(scratch), appointments) as (url, pid):
            await asyncio.sleep(0.5)
            base = rss_kb(pid)
            pipes, procs = [], []
            shares = [n // workers + (i < n % workers) for i in range(workers)]
            for share in shares:
                mine, theirs = _FORK.Pipe()
                proc = _FORK.Process(target=client_main, args=(url, share, theirs), daemon=True)
                proc.start()
                pipes.append(mine)
                procs.append(proc)
            try:
                started = time.perf_counter()
                await _all(pipes, "open", timeout)
                opened = time.perf_counter() - started
                await asyncio.sleep(1.0)
                idle = rss_kb(pid)
                for pipe in pipes:
                    pipe.send("subscribe")
                await _all(pipes, "subscribed", timeout)
                await asyncio.sleep(1.0)
                subscribed = rss_kb(pid)
                for pipe in pipes:
                    pipe.send("close")
            finally:
                for proc in procs:
                    await asyncio.to_thread(proc.join, 30)
                    if proc.is_alive():
                        proc.kill()
    return [
        variant,
        n,
        f"{base / 1024:.0f}",
        f"{idle / 1024:.0f}",
        f"{subscribed / 1024:.0f}",
        f"{(idle - base) / n:.1f}",
        f"{(subscribed - base) / n:.1f}",
        f"{opened:.0f}",
    ]


@click.command()
@click.option("--connections", default="1000,10000", show_default=True, help="N, comma-separated.")
@click.option("--workers", default=4, show_default=True, help="Client processes.")
@click.option("--appointments", default=10, show_default=True, help="Rows of the date.")
@click.option("--variants", default="synccli,bare", show_default=True)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per phase.")
def main(connections: str, workers: int, appointments: int, variants: str, timeout: float) -> None:
    limit = raise_fd_limit()
    counts = [int(c) for c in connections.split(",") if c]
    if max(counts) + 100 > limit:
        raise click.ClickException(f"the file limit is {limit}: too low for {max(counts)}")
    rows = [
        asyncio.run(measure(variant, n, workers, appointments, timeout))
        for n in counts
        for variant in variants.split(",")
    ]
    headers = [
        "server",
        "N",
        "RSS MB base",
        "idle",
        "subscribed",
        "KB/idle conn",
        "KB/subscribed conn",
        "open s",
    ]
    click.echo(tabulate(rows, headers=headers))
    click.echo("budget: <= 50 KB per connection")


if __name__ == "__main__":
    main()
