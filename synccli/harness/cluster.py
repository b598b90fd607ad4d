"""The harness's cluster: the Redis bus and the HAProxy balancer it starts for several nodes.

Each is a child process on a free loopback port, configured in the run folder and ended by
its PID: the harness never uses the machine's shared Redis (6379) or a system HAProxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from synccli.client.tls import client_context
from synccli.errors import InfrastructureError
from synccli.harness.server_process import ServerProcess, free_port, terminate
from synccli.history import ClusterStart

READY_TIMEOUT_S = 10.0


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfrastructureError(f"{name} is not installed; install the Debian package {package}")
    return path


def redis_answers(host: str, port: int) -> bool:
    """Whether a Redis at ``host:port`` answers PING."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class ChildProcess:
    """A service child process, ended by its PID."""

    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str], pass_fds: Sequence[int] = ()) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=pass_fds,
            )

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process if it runs."""
        if self.running():
            assert self._proc is not None
            self._proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        if self.running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)  # a paused process must die too
            self._proc.kill()
            self._proc.wait(timeout=10)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL past ``timeout``; idempotent."""
        return None if self._proc is None else await terminate(self._proc, timeout)

    async def _wait_ready(self, name: str, port: int, ready: Callable[[], bool]) -> None:
        """Until ``ready()`` (run in a thread) is true; ``InfrastructureError`` if the
        process exits or the time runs out."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running():
                raise InfrastructureError(
                    f"{name} exited at start-up on port {port}; see {self.log_path}"
                )
            if await asyncio.to_thread(ready):
                return
            await asyncio.sleep(0.05)
        self.kill()
        raise InfrastructureError(
            f"{name} did not answer within {READY_TIMEOUT_S:.0f} s; see {self.log_path}"
        )


@dataclass
class RedisProcess(ChildProcess):
    """``redis-server`` on 127.0.0.1:``port``, no persistence, its files in ``workdir``."""

    port: int = 0
    workdir: Path = Path(".")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            _binary("redis-server", "redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
        ]  # fmt: skip

    async def start(self) -> None:
        """Start and wait until it answers PING (``InfrastructureError`` otherwise)."""
        self._spawn(self.command())
        await self._wait_ready(
            "redis-server", self.port, functools.partial(redis_answers, "127.0.0.1", self.port)
        )


def node_name(index: int) -> str:
    """The name of the cluster's node at ``index``: ``node1``… (``node`` of a fault counts
    from 1 too)."""
    return f"node{index + 1}"


def haproxy_config(bind: str, nodes: list[tuple[str, int]], tls: bool = False) -> str:
    """An HAProxy configuration: one frontend, every node a backend health-checked on
    ``/healthz`` (200, also when degraded) every 200 ms; a node marked down has its sessions
    shut, so clients of a paused node reconnect to the others. ``leastconn``: sessions are
    long, so a node back from a kill gets the next reconnects instead of a blind turn.
    A check may take up to 1 s (``timeout check``): at 200 ms a busy but healthy node missed
    two checks in a row on a loaded machine and had its sessions shut for nothing; a killed
    node still fails its checks at once (refused), a paused one within about 2.5 s.
    ``option redispatch 1``: every retry of a refused connect goes to another node (by
    default only the last does), so a client that reconnects to a node killed a moment ago,
    before its checks marked it down, does not wait through retries on the dead one.

    With ``tls`` the balancer passes TLS through (``mode tcp``): every node serves the same
    certificate, the clients verify it end to end and HAProxy holds no key. Its health
    checks speak TLS to the nodes (``check-ssl``, unverified: a check only asks whether the
    node answers, on the loopback). ``bind``: ``HOST:PORT``, or ``fd@N`` for a listening
    socket handed over (one made inside the packet-loss namespace)."""
    check = "check check-ssl verify none" if tls else "check"
    servers = "\n".join(
        f"    server {node_name(index)} {host}:{port} {check}"
        for index, (host, port) in enumerate(nodes)
    )
    mode = "mode tcp" if tls else "mode http\n    timeout http-request 5s"
    return f"""\
# Generated by synccli simulate for this run only.
global
    maxconn 8000

defaults
    {mode}
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout check 1s
    retries 3
    option redispatch 1

frontend synccli
    bind {bind}
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 200ms fastinter 100ms fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


@dataclass
class HaproxyProcess(ChildProcess):
    """HAProxy in the foreground, its configuration in the run folder. With ``listener``
    it accepts on a socket made by that call (inside the packet-loss namespace: clients
    reach it at ``host:port``, the namespace's front) instead of binding 127.0.0.1."""

    port: int = 0
    config_path: Path = Path("haproxy.cfg")
    #: TLS passed through to the nodes; the harness trusts them through ``tls_ca``.
    tls: bool = False
    tls_ca: str | None = None
    host: str = "127.0.0.1"
    listener: Callable[[], socket.socket] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @staticmethod
    def available() -> bool:
        return shutil.which("haproxy") is not None

    async def start(self, nodes: list[tuple[str, int]]) -> None:
        """Write the configuration, start, wait until a node answers through it."""
        argv = [_binary("haproxy", "haproxy"), "-db", "-f", str(self.config_path)]
        if self.listener is None:
            self.config_path.write_text(haproxy_config(self.address, nodes, self.tls))
            self._spawn(argv)
        else:
            sock = await asyncio.to_thread(self.listener)
            try:
                config = haproxy_config(f"fd@{sock.fileno()}", nodes, self.tls)
                self.config_path.write_text(config)
                self._spawn(argv, pass_fds=(sock.fileno(),))
            finally:
                sock.close()  # HAProxy's copy is the only one left
        health = f"{'https' if self.tls else 'http'}://{self.address}/healthz"
        ready = functools.partial(_http_ok, health, self.tls_ca)
        await self._wait_ready("haproxy", self.port, ready)


def _http_ok(url: str, ca_file: str | None = None) -> bool:
    try:
        context = client_context(url, ca_file)
        with urllib.request.urlopen(url, timeout=1, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class LossFront(Protocol):
    """Where the balancer listens for packet loss (``synccli.faults.loss.LossLink``)."""

    @property
    def front(self) -> tuple[str, int]: ...

    def listener(self) -> socket.socket: ...


@dataclass(frozen=True)
class NodeSecurity:
    """What every node of a cluster shares: ``tls`` (certificate, key) PEM files trusted
    through ``ca_file``, and the secret of per-user tokens (passed in the environment)."""

    tls: tuple[str, str] | None = None
    ca_file: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)


@dataclass
class Cluster:
    """N ``serve`` nodes on one database sharing a private Redis bus, and HAProxy in front
    when it is installed (else the clients get the node list and rotate on reconnect)."""

    nodes: list[ServerProcess]
    redis: RedisProcess
    balancer: HaproxyProcess | None
    #: One proxy per node between it and Redis (``bus_partition``), when asked for.
    links: Any | None = None  # synccli.faults.toxiproxy.ToxiproxyFaults

    @property
    def entry(self) -> str | None:
        """The balancer's ``host:port``, where the clients (or their proxies) connect."""
        return self.balancer.address if self.balancer else None

    @property
    def mode(self) -> str:
        """Which way clients reach the nodes: ``haproxy`` or ``client-rotation``."""
        return "haproxy" if self.balancer else "client-rotation"

    def describe(self) -> ClusterStart:
        """The history record of this cluster's set-up."""
        nodes: list[dict[str, Any]] = [
            {"name": node_name(i), "port": n.port, "pid": n.pid} for i, n in enumerate(self.nodes)
        ]
        return ClusterStart(nodes, self.redis.url, self.mode, self.entry)


async def start_cluster(
    stack: contextlib.AsyncExitStack,
    run_dir: Path,
    db_url: str,
    count: int,
    options: Sequence[str],
    token: str | None,
    on_stop: Callable[[Cluster], Awaitable[None]],
    links: bool = False,
    seed: int = 0,
    security: NodeSecurity | None = None,
    front: LossFront | None = None,
) -> Cluster:
    """Start Redis, ``count`` nodes and the balancer; each is stopped (by PID) from
    ``stack``, the balancer first and Redis last. ``on_stop`` runs before the nodes stop
    (to scrape their metrics). With ``links`` each node reaches Redis through a proxy of its
    own (an embedded Toxiproxy), so that one node's bus link can be cut. ``security``: what
    every node shares (one certificate, one token secret). ``front``: the balancer accepts
    inside the packet-loss namespace (it needs HAProxy)."""
    shared = security or NodeSecurity()
    redis = RedisProcess(run_dir / "redis.log", port=free_port(), workdir=run_dir)
    stack.push_async_callback(redis.stop)
    await redis.start()
    buses = [redis.url] * count
    proxies = None
    if links:
        from synccli.faults.proxy import start_in_thread
        from synccli.faults.toxiproxy import ToxiproxyFaults

        handle = start_in_thread("127.0.0.1", 0, seed=seed)
        stack.callback(handle.stop)
        proxies = ToxiproxyFaults(handle.url, prefix=f"synccli-bus-{run_dir.name}")
        stack.push_async_callback(asyncio.to_thread, proxies.destroy)
        listens = await asyncio.to_thread(proxies.create_proxies, f"127.0.0.1:{redis.port}", count)
        buses = [f"redis://{listen}/0" for listen in listens]
    nodes = [
        ServerProcess(
            db_url=db_url,
            host="127.0.0.1",
            port=free_port(),
            log_path=run_dir / f"server-{index}.log",
            options=[*options, "--bus", buses[index], "--node-name", node_name(index)],
            token=token,
            tls=shared.tls,
            ca_file=shared.ca_file,
            jwt_secret=shared.jwt_secret,
        )
        for index in range(count)
    ]
    for node in nodes:
        stack.push_async_callback(node.stop)
    cluster = Cluster(nodes, redis, None, proxies)
    stack.push_async_callback(on_stop, cluster)
    await asyncio.gather(*(node.start() for node in nodes))
    if HaproxyProcess.available():
        host, port = ("127.0.0.1", free_port()) if front is None else front.front
        balancer = HaproxyProcess(
            run_dir / "haproxy.log",
            port=port,
            config_path=run_dir / "haproxy.cfg",
            tls=shared.tls is not None,
            tls_ca=shared.ca_file,
            host=host,
            listener=None if front is None else front.listener,
        )
        stack.push_async_callback(balancer.stop)
        await balancer.start([(n.host, n.port) for n in nodes])
        cluster.balancer = balancer
    return cluster
