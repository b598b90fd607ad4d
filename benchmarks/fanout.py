"""Fan-out against its ceiling: the full protocol (``synccli serve`` on SQLite, acks, queues)
versus a bare websockets ``broadcast()`` server with the same payloads, in the same run.

    python benchmarks/fanout.py                          # N = 10, 100, 1000; 5 s per phase
    python benchmarks/fanout.py --clients 100 --seconds 3 --variants bare,full

For each N and each server variant: start the server as its own process, connect N receivers
spread over ``--workers`` receiver processes (``fanout_peers.py``: they parse every frame,
apply in order and, for the full protocol, ack cumulatively like the real client), then run
two phases of ``--seconds`` each: writes at a fixed ``--rate``, and saturation (as many writes
as the system absorbs, with at most ``BACKLOG_WRITES`` writes' worth of deliveries not yet
applied, so queues stay bounded). Variants: ``full``, ``bare`` (no acks) and ``bare-acks``
(the bare server, receivers acking; the server parses and drops the acks) and ``secure``
(the full protocol over wss:// with a self-signed certificate, every receiver and writer
holding its own signed token: the cost of TLS per delivery and of authorisation per message
is ``secure`` minus ``full``).

Measured per phase: delivered events per second (applied by receivers / time to the last
apply), commit→apply p50/p99 (receiver clock minus ``committedAt``, which has millisecond
resolution: every latency reads up to 1 ms high, the same for every variant), and the server
process's CPU time per delivered event (``/proc``), which is what the budget is about when the
receivers, sharing the machine, are the bottleneck. DESIGN.md's budget: full ≥ 80 % of bare
throughput and commit→apply p99 at most twice bare.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import click
from fanout_peers import Sample, bare_server_main, receiver_main
from tabulate import tabulate
from websockets.asyncio.client import ClientConnection, connect

from synccli.client.simulated import DEFAULT_ACK_DELAY_S
from synccli.client.tls import client_context
from synccli.harness.certs import self_signed
from synccli.harness.server_process import ServerProcess, free_port
from synccli.protocol.messages import dumps
from synccli.store import open_store
from synccli.tokens import TokenSource

VARIANTS = ("bare", "bare-acks", "full", "full-uvloop", "secure")
#: The full server's ``--event-loop`` per variant (the default, asyncio's, for the others).
EVENT_LOOP = {"full-uvloop": "uvloop"}
# A date of its own, inside the window the server serves (a year or so ahead).
DATE = (datetime.now(UTC).date() + timedelta(days=402)).isoformat()
#: Appointments the writer cycles through (Scheduled ⇄ Present); more than ``WINDOW``, so an
#: appointment never has two writes in flight.
APPOINTMENTS = 64
#: Writes sent and not yet answered, over ``WRITERS`` connections.
WINDOW = 16
WRITERS = 4
#: At saturation, deliveries not yet applied by the receivers, in writes' worth.
BACKLOG_WRITES = 32
DRAIN_TIMEOUT_S = 20.0
_FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class Access:
    """How clients reach a server: the CA to trust (wss://) and the token minter."""

    ca_file: str | None = None
    tokens: TokenSource | None = None

    def headers(self, sub: str) -> dict[str, str] | None:
        if self.tokens is None:
            return None
        return {"Authorization": f"Bearer {self.tokens.for_sub(sub).token()}"}


PLAIN = Access()


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured phase of one case."""

    clients: int
    load: str
    variant: str
    writes_per_s: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    missing: int
    gaps: int

    def cells(self) -> list[object]:
        return [
            self.clients,
            self.load,
            self.variant,
            f"{self.writes_per_s:.0f}",
            f"{self.delivered_per_s:.0f}",
            f"{self.p50_ms:.2f}",
            f"{self.p99_ms:.2f}",
            f"{self.cpu_us:.1f}",
            self.missing,
            self.gaps,
        ]


class ReceiverPool:
    """The receiver processes, driven through pipes; ``applied()`` reads their counters."""

    def __init__(self, workers: int) -> None:
        self._pipes: list[Connection] = []
        self._counters: list[Synchronized[int]] = []
        self._procs: list[BaseProcess] = []
        for _ in range(workers):
            mine, theirs = _FORK.Pipe()
            counter: Synchronized[int] = _FORK.Value("q", 0, lock=False)
            proc = _FORK.Process(target=receiver_main, args=(theirs, counter), daemon=True)
            proc.start()
            theirs.close()  # so that a receiver process dying reads as EOFError, not a hang
            self._pipes.append(mine)
            self._counters.append(counter)
            self._procs.append(proc)

    def applied(self) -> int:
        return sum(counter.value for counter in self._counters)

    def _all(self, *command: object) -> list[object]:
        for pipe in self._pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self._pipes]

    async def connect(
        self, url: str, clients: int, ack_delay: float | None, access: Access = PLAIN
    ) -> None:
        shares = [clients // len(self._pipes)] * len(self._pipes)
        shares[0] += clients - sum(shares)
        for pipe, share in zip(self._pipes, shares, strict=True):
            pipe.send(("connect", url, share, DATE, ack_delay, access.ca_file, access.tokens))
        await asyncio.to_thread(lambda: [pipe.recv() for pipe in self._pipes])

    async def command(self, *command: object) -> list[object]:
        return await asyncio.to_thread(self._all, *command)

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(("stop",))
        for proc in self._procs:
            proc.join(10)


class Writer:
    """``WRITERS`` operator connections: check-ins and undos, ``WINDOW`` writes in flight.

    Several connections, like several front desks: the server answers one connection's
    messages in order, so one connection alone would measure write latency, not fan-out."""

    def __init__(self, url: str, clients: int, pool: ReceiverPool, access: Access = PLAIN) -> None:
        self.url = url
        self.access = access
        self.clients = clients
        self.pool = pool
        self.states = {f"{DATE}-{n:04d}": "Scheduled" for n in range(1, APPOINTMENTS + 1)}
        self.ids = list(self.states)
        self.count = 0
        self.token = uuid.uuid4().hex[:8]
        self.ok = 0
        self.answered = 0

    async def run(self, seconds: float, rate: float | None) -> int:
        """Write for ``seconds`` (at ``rate`` per second, or as fast as allowed); return how
        many writes were answered ok."""
        self.ok, self.answered = 0, 0
        slots = asyncio.Semaphore(WINDOW)
        async with contextlib.AsyncExitStack() as stack:
            tls = client_context(self.url, self.access.ca_file)
            sockets = [
                await stack.enter_async_context(
                    connect(
                        self.url,
                        compression=None,
                        ssl=tls,
                        additional_headers=self.access.headers(f"writer{i}"),
                    )
                )
                for i in range(WRITERS)
            ]
            readers = [asyncio.create_task(self._read(ws, slots)) for ws in sockets]
            try:
                sent = await self._send_for(sockets, slots, seconds, rate)
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    while self.answered < sent:
                        await slots.acquire()  # released by each answer
            finally:
                for reader in readers:
                    reader.cancel()
        return self.ok

    async def _send_for(
        self,
        sockets: list[ClientConnection],
        slots: asyncio.Semaphore,
        seconds: float,
        rate: float | None,
    ) -> int:
        applied_before = self.pool.applied()
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while loop.time() < start + seconds:
            if rate is not None:
                target = start + sent / rate
                if target > loop.time():
                    await asyncio.sleep(target - loop.time())
                    continue
            elif (self.ok - BACKLOG_WRITES) * self.clients > self.pool.applied() - applied_before:
                await asyncio.sleep(0.001)  # pacing against the receivers' backlog
                continue
            await slots.acquire()
            # Appointment i always goes through the same connection (APPOINTMENTS % WRITERS
            # == 0), and its previous write was answered: it is APPOINTMENTS > WINDOW writes old.
            await sockets[self.count % WRITERS].send(self._next())
            sent += 1
        return sent

    async def _read(self, ws: ClientConnection, slots: asyncio.Semaphore) -> None:
        async for frame in ws:
            data = json.loads(frame)
            if data["type"] == "result":
                self.ok += bool(data["ok"])
                self.answered += 1
                slots.release()

    def _next(self) -> str:
        appointment_id = self.ids[self.count % len(self.ids)]
        state = "Present" if self.states[appointment_id] == "Scheduled" else "Scheduled"
        self.states[appointment_id] = state
        self.count += 1
        request = {"type": "update_appointment_state", "requestId": f"{self.token}-{self.count}"}
        return dumps(request | {"appointmentId": appointment_id, "state": state})


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _phase(
    pool: ReceiverPool, writer: Writer, pid: int, variant: str, seconds: float, rate: float | None
) -> Phase:
    await pool.command("reset")
    cpu_before, began = cpu_seconds(pid), time.time()
    ok = await writer.run(seconds, rate)
    expected = ok * writer.clients
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    samples: list[Sample] = []
    while loop.time() < deadline:
        samples = [s for s in await pool.command("sample") if isinstance(s, Sample)]
        if sum(s.delivered for s in samples) >= expected:
            break
        await asyncio.sleep(0.05)  # polling the receivers' progress, bounded by the deadline
    cpu = cpu_seconds(pid) - cpu_before
    delivered = sum(s.delivered for s in samples)
    elapsed = max(s.last_at for s in samples) - began if delivered else seconds
    latencies = sorted(x for s in samples for x in s.latencies_ms)
    return Phase(
        writer.clients,
        "saturation" if rate is None else f"{rate:g} writes/s",
        variant,
        ok / elapsed,
        delivered / elapsed,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        cpu / delivered * 1e6 if delivered else float("nan"),
        expected - delivered,
        sum(s.gaps for s in samples),
    )


@contextlib.asynccontextmanager
async def server_under_test(variant: str, workdir: Path) -> AsyncIterator[tuple[str, int, Access]]:
    port = free_port()
    if variant in ("full", "full-uvloop", "secure"):
        db_url = f"sqlite:///{workdir / 'fanout.db'}"
        store = open_store(db_url)
        store.init_schema()
        store.seed(DATE, APPOINTMENTS)
        store.close()
        options = ("--event-loop", EVENT_LOOP.get(variant, "asyncio"))
        server = ServerProcess(db_url, "127.0.0.1", port, workdir / "server.log", options)
        access = PLAIN
        if variant == "secure":
            cert, key = self_signed(workdir / "tls")
            secret = uuid.uuid4().hex + uuid.uuid4().hex
            access = Access(str(cert), TokenSource(secret, "bench", (DATE,), True, 3600))
            server.tls, server.ca_file, server.jwt_secret = (str(cert), str(key)), str(cert), secret
            server.token = TokenSource(secret, "bench", ("*",), True, 3600).token()
        await server.start()
        try:
            assert server.pid is not None
            yield server.ws_url, server.pid, access
        finally:
            await server.stop()
        return
    mine, theirs = _FORK.Pipe()
    proc = _FORK.Process(target=bare_server_main, args=(port, DATE, theirs), daemon=True)
    proc.start()
    theirs.close()
    try:
        await asyncio.to_thread(mine.recv)
        assert proc.pid is not None
        yield f"ws://127.0.0.1:{port}/ws", proc.pid, PLAIN
    finally:
        mine.send("stop")
        await asyncio.to_thread(proc.join, 10)


async def _case(
    pool: ReceiverPool, clients: int, variant: str, seconds: float, rate: float, ack_delay: float
) -> list[Phase]:
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        async with server_under_test(variant, Path(tmp)) as (url, pid, access):
            await pool.connect(url, clients, None if variant == "bare" else ack_delay, access)
            try:
                writer = Writer(url, clients, pool, access)
                return [
                    await _phase(pool, writer, pid, variant, seconds, rate),
                    await _phase(pool, writer, pid, variant, seconds, None),
                ]
            finally:
                await pool.command("disconnect")


def _ratios(phases: list[Phase]) -> list[list[object]]:
    by_key = {(p.clients, p.load, p.variant): p for p in phases}
    rows: list[list[object]] = []
    for (clients, load, variant), bare in by_key.items():
        if variant != "bare":
            continue
        row: list[object] = [clients, load]
        for other in ("full", "bare-acks"):
            p = by_key.get((clients, load, other))
            if p is None:
                row += ["", "", ""]
                continue
            row += [
                f"{p.delivered_per_s / bare.delivered_per_s:.2f}",
                f"{p.p99_ms / bare.p99_ms:.2f}",
                f"{p.cpu_us / bare.cpu_us:.2f}",
            ]
        rows.append(row)
    return rows


def _security_costs(phases: list[Phase]) -> list[list[object]]:
    """``secure`` against ``full`` in the same run: what TLS and per-user tokens cost."""
    by_key = {(p.clients, p.load, p.variant): p for p in phases}
    rows: list[list[object]] = []
    for (clients, load, variant), full in by_key.items():
        secure = by_key.get((clients, load, "secure"))
        if variant != "full" or secure is None:
            continue
        rows.append(
            [
                clients,
                load,
                f"{secure.delivered_per_s / full.delivered_per_s:.2f}",
                f"{secure.p99_ms / full.p99_ms:.2f}",
                f"{secure.cpu_us - full.cpu_us:+.1f}",
            ]
        )
    return rows


def csv_list(text: str) -> list[str]:
    """The non-empty items of a comma-separated option."""
    return [part.strip() for part in text.split(",") if part.strip()]


def client_counts(text: str) -> list[int]:
    """``--clients`` as numbers; a usage error names what was given otherwise."""
    try:
        return [int(c) for c in csv_list(text)]
    except ValueError:
        raise click.UsageError(
            f"--clients takes numbers separated by commas, not {text!r}"
        ) from None


@click.command()
@click.option("--clients", default="10,100,1000", show_default=True, help="Comma-separated N.")
@click.option("--seconds", type=float, default=5.0, show_default=True, help="Seconds per phase.")
@click.option(
    "--rate", type=float, default=20.0, show_default=True, help="Writes/s of the fixed phase."
)
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Receiver processes.")
@click.option(
    "--ack-delay",
    type=float,
    default=DEFAULT_ACK_DELAY_S,
    show_default=True,
    help="Seconds a receiver batches its cumulative acks (the real client's ack_delay).",
)
def main(
    clients: str, seconds: float, rate: float, variants: str, workers: int, ack_delay: float
) -> None:
    """Measure fan-out of the full protocol against a bare broadcast() ceiling."""
    counts = client_counts(clients)
    chosen = csv_list(variants)
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        raise click.UsageError(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    pool = ReceiverPool(workers)
    phases: list[Phase] = []
    try:
        for n in counts:
            for variant in chosen:
                phases += asyncio.run(_case(pool, n, variant, seconds, rate, ack_delay))
    finally:
        pool.close()
    headers = ["N", "load", "server", "writes/s", "delivered/s", "p50 ms", "p99 ms"]
    headers += ["server CPU µs/delivery", "missing", "gaps"]
    click.echo(tabulate([p.cells() for p in phases], headers=headers))
    click.echo()
    ratio_headers = ["N", "load", "full/bare delivered", "full/bare p99", "full/bare CPU"]
    ratio_headers += ["acks/bare delivered", "acks/bare p99", "acks/bare CPU"]
    click.echo(tabulate(_ratios(phases), headers=ratio_headers))
    costs = _security_costs(phases)
    if costs:
        click.echo()
        cost_headers = ["N", "load", "secure/full delivered", "secure/full p99"]
        cost_headers += ["TLS+JWT server CPU µs/delivery"]
        click.echo(tabulate(costs, headers=cost_headers))


if __name__ == "__main__":
    main()
