"""synccli against Socket.IO 4, the peer users would pick instead, on the same machine in
the same run.

    python benchmarks/peers/run.py                       # N = 100 and 1000
    python benchmarks/peers/run.py --clients 100 --seconds 5

Needs Node 20 and npm: the first run installs ``socket.io``, ``socket.io-client`` and ``ws``
into ``benchmarks/peers/node_modules`` (ignored by git). For each N and each peer:

* the server as its own process: ``synccli serve`` on a fresh SQLite file (every event
  committed before it is sent), or ``socketio_server.mjs`` (connection-state recovery on,
  the in-memory adapter: nothing is stored durably);
* N receivers and one writer in one Node process (``clients.mjs``): synccli's own browser
  client (``SyncClient``) or ``socket.io-client``, the same bookkeeping for both. A third of
  the receivers connect through a proxy of synccli's embedded Toxiproxy-compatible proxy
  (``synccli proxy``, its own process), the others and the writer directly;
* a steady phase of ``--seconds`` at ``--rate`` writes/s: deliveries, commit→apply p50/p99
  of the receivers connected directly, and the server process's CPU (``/proc``) per
  delivery, shown as deliveries per server CPU second;
* a cut phase at the same rate: ``--cut-at`` seconds in, the proxy is disabled (its
  connections dropped, connects refused) for ``--cut-for`` seconds; heal → caught up is the
  time from the heal until a cut receiver's position reaches the last sequence number the
  writer had been answered at the heal (p50/p99/max), with connects per cut receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fanout import DATE, client_counts, cpu_seconds, csv_list, server_under_test

from synccli.harness.server_process import free_port

HERE = Path(__file__).resolve().parent
PEERS = ("synccli", "socketio")
GROUPS = 3  # receivers i % 3 == 0 go through the proxy: a third are cut
NODE_MODULES = ("socket.io", "socket.io-client", "ws")
START_TIMEOUT_S = 30.0


def ensure_node_modules() -> None:
    """``npm install`` the peer and its client once (into ``benchmarks/peers``)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise click.ClickException("Node.js 20 and npm are needed (node and npm on PATH)")
    if all((HERE / "node_modules" / name / "package.json").exists() for name in NODE_MODULES):
        return
    click.echo("installing socket.io, socket.io-client and ws with npm …", err=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise click.ClickException(f"npm install failed: {done.stderr.strip()[-300:]}")


@dataclass(frozen=True, slots=True)
class Row:
    clients: int
    peer: str
    delivered_per_s: float
    per_cpu_s: float
    cpu_us: float
    p50_ms: float | None
    p99_ms: float | None
    missing: int
    gaps: int
    heal_p50_s: float | None
    heal_p99_s: float | None
    heal_max_s: float | None
    never: int
    connects: float
    cut_missing: int

    def cells(self) -> list[object]:
        return [
            self.clients,
            self.peer,
            f"{self.delivered_per_s:.0f}",
            f"{self.per_cpu_s:.0f}",
            f"{self.cpu_us:.1f}",
            _ms(self.p50_ms),
            _ms(self.p99_ms),
            f"{self.missing}/{self.gaps}",
            _s(self.heal_p50_s),
            _s(self.heal_p99_s),
            _s(self.heal_max_s),
            self.never,
            f"{self.connects:.1f}",
            self.cut_missing,
        ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


class Proxy:
    """``synccli proxy`` as its own process, and its HTTP API."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "synccli", "proxy", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            self.close()
            raise click.ClickException(f"synccli proxy did not start: {line.strip()!r}")
        self.api = found.group(0)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    @contextlib.contextmanager
    def route(self, name: str, upstream_port: int) -> Iterator[int]:
        """A proxy to ``upstream_port``; yields the port it listens on."""
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"}
        created = self._call("POST", "/proxies", body)
        try:
            yield int(created["listen"].rsplit(":", 1)[1])
        finally:
            self._call("DELETE", f"/proxies/{name}")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


@contextlib.asynccontextmanager
async def socketio_server(workdir: Path) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    log = (workdir / "socketio.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "socketio_server.mjs"), str(port), DATE,
        stdout=subprocess.PIPE, stderr=log,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await proc.stdout.readline()
        if line.strip() != b"listening":
            raise click.ClickException(f"the Socket.IO server did not start; see {log.name}")
        yield f"ws://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        await proc.wait()
        log.close()


@contextlib.asynccontextmanager
async def peer_server(peer: str, workdir: Path) -> AsyncIterator[tuple[str, int, int]]:
    """The server of ``peer``: (client URL path prefix, port, pid)."""
    if peer == "synccli":
        async with server_under_test("full", workdir) as (url, pid, _access):
            port = int(url.split(":")[2].split("/")[0])
            yield "/ws", port, pid
        return
    async with socketio_server(workdir) as (url, pid):
        yield "", int(url.rsplit(":", 1)[1]), pid


class Clients:
    """``clients.mjs``: N receivers and the writer of one peer, one JSON line per command."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, timeout: float, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            raise click.ClickException(f"clients.mjs ended during {command['cmd']}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Close every client; the process ends (killed if it does not within 10 s)."""
        with contextlib.suppress(ConnectionError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "stop"}\n')
            await self.proc.stdin.drain()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def case(
    proxy: Proxy, peer: str, clients: int, seconds: float, rate: float, cut: tuple[float, float]
) -> Row:
    scheme = "ws" if peer == "synccli" else "http"
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        async with peer_server(peer, Path(tmp)) as (path, port, pid):
            name = f"{peer}-{clients}-{os.getpid()}"
            with proxy.route(name, port) as proxied:
                direct = f"{scheme}://127.0.0.1:{port}{path}"
                urls = [f"{scheme}://127.0.0.1:{proxied}{path}"] + [direct] * (GROUPS - 1)
                argv = ["node", str(HERE / "clients.mjs"), "--kind", peer, "--server", direct]
                argv += ["--urls", ",".join(urls), "--clients", str(clients), "--date", DATE]
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
                try:
                    driver = Clients(proc)
                    await driver.call(120, cmd="connect")
                    before = cpu_seconds(pid)
                    steady = await driver.call(seconds + 60, cmd="run", seconds=seconds, rate=rate)
                    cpu = cpu_seconds(pid) - before
                    at, down = cut
                    plan = {"api": proxy.api, "proxy": name, "at": at, "for": down, "group": 0}
                    total = at + down + max(5.0, seconds - at - down)
                    cut_run = await driver.call(total + 60, cmd="run", seconds=total, rate=rate,
                                                cut=plan)  # fmt: skip
                finally:
                    await driver.stop()
    delivered = steady["delivered"]
    recovery = cut_run.get("recovery") or {}
    ms = 1 / 1000
    return Row(
        clients,
        peer,
        delivered / steady["elapsed"],
        delivered / cpu if cpu else float("nan"),
        cpu / delivered * 1e6 if delivered else float("nan"),
        steady["p50"],
        steady["p99"],
        steady["missing"],
        steady["gaps"],
        None if recovery.get("p50") is None else recovery["p50"] * ms,
        None if recovery.get("p99") is None else recovery["p99"] * ms,
        None if recovery.get("max") is None else recovery["max"] * ms,
        int(recovery.get("never", 0)),
        float(recovery.get("connects", 0.0)),
        int(cut_run["missing"]),
    )


@click.command()
@click.option("--clients", default="100,1000", show_default=True, help="Comma-separated N.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Steady phase.")
@click.option("--rate", type=float, default=20.0, show_default=True, help="Writes per second.")
@click.option(
    "--cut-at", type=float, default=3.0, show_default=True, help="Seconds into the cut phase."
)
@click.option("--cut-for", type=float, default=5.0, show_default=True, help="Seconds cut off.")
@click.option("--peers", "chosen", default=",".join(PEERS), show_default=True)
def main(
    clients: str, seconds: float, rate: float, cut_at: float, cut_for: float, chosen: str
) -> None:
    """Compare synccli with Socket.IO 4: efficiency, latency and recovery after a cut."""
    counts = client_counts(clients)
    peers = csv_list(chosen)
    if set(peers) - set(PEERS):
        raise click.UsageError(
            f"unknown peer(s) {sorted(set(peers) - set(PEERS))}; choose from {PEERS}"
        )
    ensure_node_modules()
    load = Path("/proc/loadavg").read_text().split()[:3]
    proxy = Proxy()
    rows: list[Row] = []
    try:
        for n in counts:
            for peer in peers:
                rows.append(asyncio.run(case(proxy, peer, n, seconds, rate, (cut_at, cut_for))))
    finally:
        proxy.close()
    headers = ["N", "peer", "delivered/s", "deliveries per server CPU s", "server CPU µs/delivery"]
    headers += ["p50 ms", "p99 ms", "missing/gaps", "heal→caught up p50 s", "p99 s", "max s"]
    headers += ["never", "connects per cut client", "missing after cut"]
    click.echo(tabulate([r.cells() for r in rows], headers=headers))
    click.echo()
    click.echo(
        "synccli commits every event to SQLite before sending it and resumes from the log; "
        "Socket.IO stores nothing durably (state and recovery packets live in its process)."
    )
    after = Path("/proc/loadavg").read_text().split()[:3]
    click.echo(f"load average before {' '.join(load)}, after {' '.join(after)}")


if __name__ == "__main__":
    main()
