"""The run orchestrator behind ``synccli simulate``.

Data flows one way: config → (database, server process, proxies, namespace) → clients and
fault schedule → history → truth → checker → run folder. Every resource is released in
reverse order on the way out, also on Ctrl+C or an error, so faults are always healed and a
partial report is always written.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from synccli.client.tls import client_context
from synccli.errors import EXIT_INFRASTRUCTURE, InfrastructureError, StoreError
from synccli.faults.kinds import PROXY_KINDS
from synccli.harness.certs import self_signed
from synccli.harness.progress import ProgressLine, Snapshot, StatusText
from synccli.harness.scenario import Scenario, ServerOptions
from synccli.harness.schedule import FaultRunner, FaultTargets, ProxyLayout, cancel_quietly
from synccli.harness.server_process import ServerProcess, free_port
from synccli.history import (
    HistoryWriter,
    InfrastructureFailure,
    RunEnd,
    RunStart,
    ServerLifecycle,
    ServerMetrics,
)
from synccli.store import Store, open_store, redact_url
from synccli.tokens import TokenSource


@dataclass(frozen=True)
class RunConfig:
    """Everything one simulation needs; built by the CLI, consumed here."""

    scenario: Scenario
    reports_root: Path = Path("reports")
    out_dir: Path | None = None
    url: str | None = None
    db_url: str | None = None
    toxiproxy_url: str | None = None
    server_bugs: tuple[str, ...] = ()
    client_bugs: tuple[str, ...] = ()
    token: str | None = None
    #: The embedded server serves wss:// with a throwaway self-signed certificate (and
    #: per-user tokens: ``jwt`` is implied).
    tls: bool = False
    #: The embedded server verifies signed tokens; the harness mints one per client.
    jwt: bool = False
    #: CA to trust for a wss:// ``url``.
    ca_file: str | None = None
    workers: int = 1
    #: Clients probe again soon after a refused attempt (False: the plain backoff).
    probe: bool = True
    #: Server processes on one database (None: the scenario's ``[server] nodes``, else 1);
    #: more than one runs a cluster (Redis bus, HAProxy).
    nodes: int | None = None
    #: Headless Chromium pages on the board, as clients ``b000``… (synccli.harness.browsers).
    browsers: int = 0
    progress: bool = True
    #: The scenario is the built-in default, which leaves packet loss out where this machine
    #: cannot inject it; the run then says so.
    builtin_default: bool = False


@dataclass
class RunOutcome:
    run_dir: Path
    summary: Any
    exit_code: int
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def run_id_for(scenario: Scenario, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario.name}"


class Simulation:
    """One run. ``await Simulation(config).run(stop)``; set ``stop`` to end it early."""

    def __init__(self, config: RunConfig, say: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.scenario = config.scenario
        self.run_id = run_id_for(self.scenario)
        self.run_dir = config.out_dir or config.reports_root / self.run_id
        self.t0 = time.monotonic()
        self.notes: list[str] = []
        self._say = say
        self.history: HistoryWriter | None = None
        self.server: ServerProcess | None = None
        self.fleet_stats: Any = None
        self.faults: FaultRunner | None = None
        self.committed = 0
        self.dates: tuple[str, ...] = ()
        self._store: Store | None = None
        self._fleet_urls: list[str] = []
        self._rotate = False
        self.nodes = config.nodes or self.scenario.server.nodes or 1
        self.phase = "load"
        self._load_t0 = self.t0
        self._counters: dict[str, int] = {}
        self._text = StatusText(self.scenario.duration_s)
        #: The harness's own credential (health, metrics, fault hooks, truth) and trust.
        self.token = config.token
        self.ca_file = config.ca_file
        #: Per-client tokens (``--jwt``/``--tls``): one ``sub`` per client.
        self.tokens: TokenSource | None = None
        self.browsers: Any = None

    def say(self, message: str) -> None:
        self.notes.append(message)
        if self._say is not None:
            self._say(message)

    async def run(self, stop: asyncio.Event) -> RunOutcome:
        from synccli.report import check_run, exit_code_for, write_outputs

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.history = HistoryWriter(self.run_dir / "history.jsonl", self.t0)
        interrupted = False
        infra_error: str | None = None
        truth = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._setup(stack)
                interrupted = await self._drive(stop)
                truth = await asyncio.to_thread(self._read_truth)
        except InfrastructureError as exc:
            infra_error = str(exc)
            self.history.write(None, InfrastructureFailure(infra_error))
        finally:
            self.history.write(None, self._end_record(interrupted or stop.is_set()))
            self.history.close()
        summary = check_run(self.run_dir, truth=truth)
        write_outputs(self.run_dir, summary)
        code = EXIT_INFRASTRUCTURE if infra_error else exit_code_for(summary)
        if infra_error:
            self.say(f"infrastructure error: {infra_error}")
        return RunOutcome(self.run_dir, summary, code, interrupted, self.notes)

    def _end_record(self, interrupted: bool) -> RunEnd:
        stats = self.fleet_stats
        if stats is None:
            return RunEnd(interrupted)
        return RunEnd(interrupted, stats.drained, stats.loop_lag_p99_ms, stats.loop_lag_max_ms)

    # ------------------------------------------------------------------ set-up

    async def _setup(self, stack: contextlib.AsyncExitStack) -> None:
        """Start everything the run needs, each with its clean-up on ``stack``."""
        assert self.history is not None
        config, scenario = self.config, self.scenario
        self.dates = tuple(scenario.date_list(datetime.now(UTC).date()))
        layout = ProxyLayout.of(scenario)
        targets = FaultTargets(dates=self.dates, groups=layout.total)
        db_url = self._db_url()
        self.history.write(
            None,
            RunStart(
                run_id=self.run_id,
                seed=scenario.seed,
                config=scenario.to_dict(),
                db=redact_url(db_url) if db_url else None,
                url=config.url,
                server_bugs=list(config.server_bugs),
                client_bugs=list(config.client_bugs),
            ),
        )
        kinds = {fault.kind for fault in scenario.faults}
        if config.builtin_default and scenario.faults and "packet_loss" not in kinds:
            from synccli.faults.loss import check_available

            reason = check_available()
            if reason is not None:
                self.say(f"packet loss skipped: {reason}")
        if db_url is not None:
            self._store = store = open_store(db_url)
            stack.callback(store.close)
        if config.url is None:
            assert db_url is not None
            await asyncio.to_thread(self._prepare_database)
            if self.nodes > 1:
                upstream, urls = await self._start_cluster(stack, db_url, targets, kinds)
            else:
                netns = await self._maybe_namespace(stack, kinds, targets)
                self.server = await self._start_server(stack, db_url, netns)
                targets.server = self.server
                upstream, urls = f"{self.server.host}:{self.server.port}", [self.server.ws_url]
        else:
            await check_reachable(config.url, config.token, config.ca_file)
            upstream, urls = _host_port(config.url), [config.url]
        if kinds & PROXY_KINDS and not self._rotate:
            targets.proxies, urls = await self._start_proxies(stack, upstream, targets.groups)
            # Readers and writers behind separate proxies: a fault can spare either kind.
            urls = layout.client_urls(urls)
        self.faults = FaultRunner(scenario.faults, targets, self.history, scenario.seed, layout)
        stack.push_async_callback(self.faults.heal_all)
        self._fleet_urls = urls
        if config.browsers:
            await self._start_browsers(stack, urls)

    async def _start_browsers(self, stack: contextlib.AsyncExitStack, urls: list[str]) -> None:
        from synccli.harness.browsers import BrowserConfig, BrowserFleet

        assert self.history is not None
        tokens, scenario = self.tokens, self.scenario
        config = BrowserConfig(
            self.config.browsers,
            tuple(urls),
            self.dates,
            self.run_dir,
            self.token,
            mint=None if tokens is None else lambda sub: tokens.for_sub(sub).token(),
            clients=scenario.clients,
            writers=scenario.writers,
            rate=scenario.rate,
            seed=scenario.seed,
        )
        self.browsers = BrowserFleet(config, self.history)
        stack.push_async_callback(self.browsers.close)
        await self.browsers.start()

    def _db_url(self) -> str | None:
        if self.config.db_url:
            return self.config.db_url
        if self.config.url:
            return None
        return "sqlite:///" + str((self.run_dir / "synccli.db").resolve())

    def _prepare_database(self) -> None:
        """Create or migrate the schema and seed every run date (existing rows stay)."""
        assert self._store is not None
        self._store.init_schema()
        for date in self.dates:
            self._store.seed(date, self.scenario.appointments)

    async def _maybe_namespace(
        self, stack: contextlib.AsyncExitStack, kinds: set[str], targets: FaultTargets
    ) -> Any:
        if "packet_loss" not in kinds:
            return None
        from synccli.faults.loss import check_available, open_link
        from synccli.faults.netns import RTO_MIN_MS, PacketLossNamespace, cleanup_stale

        reason = await asyncio.to_thread(check_available)
        if reason is not None:
            targets.netns_unavailable = reason
            return None
        netns = open_link(secrets.token_hex(6))
        if isinstance(netns, PacketLossNamespace):
            await asyncio.to_thread(cleanup_stale, "synccli-")
        await asyncio.to_thread(netns.create)
        stack.push_async_callback(asyncio.to_thread, netns.destroy)
        await asyncio.to_thread(netns.tune_rto, RTO_MIN_MS)
        targets.netns = netns
        return netns

    async def _start_server(
        self, stack: contextlib.AsyncExitStack, db_url: str, netns: Any
    ) -> ServerProcess:
        assert self.history is not None
        options = self._server_argv()
        if netns is not None:
            # The server stays on the host (it reaches the database); its listening socket
            # is made inside the namespace, where packets are dropped.
            (host, port), listener = netns.front, netns.listener
        else:
            host, port, listener = "127.0.0.1", free_port(), None
        tls, jwt_secret = self._security(host)
        server = ServerProcess(
            db_url=db_url,
            host=host,
            port=port,
            log_path=self.run_dir / "server.log",
            options=options,
            token=self.token,
            listener=listener,
            tls=tls,
            ca_file=self.ca_file,
            jwt_secret=jwt_secret,
        )
        stack.push_async_callback(self._stop_server, server)
        await server.start()
        self.history.write(None, ServerLifecycle("start", server.pid))
        return server

    async def _start_cluster(
        self,
        stack: contextlib.AsyncExitStack,
        db_url: str,
        targets: FaultTargets,
        kinds: set[str],
    ) -> tuple[str, list[str]]:
        """Nodes, bus and balancer; returns where proxies point and the clients' URLs."""
        from synccli.harness.cluster import HaproxyProcess, NodeSecurity, start_cluster

        assert self.history is not None
        # Packet loss: the balancer accepts inside the namespace (the nodes stay outside,
        # as a single server does); without a balancer there is no one front to make lossy.
        netns = None
        if HaproxyProcess.available():
            netns = await self._maybe_namespace(stack, kinds, targets)
        else:
            targets.netns_unavailable = "packet loss in a cluster needs HAProxy in front"
        # One certificate (for the names the balancer and the nodes are reached by) and one
        # token secret for every node.
        hosts = ["127.0.0.1"] if netns is None else sorted({"127.0.0.1", netns.front[0]})
        tls, jwt_secret = self._security(*hosts)
        cluster = await start_cluster(
            stack,
            self.run_dir,
            db_url,
            self.nodes,
            self._server_argv(),
            self.token,
            self._stop_cluster,
            links="bus_partition" in kinds,
            seed=self.scenario.seed,
            security=NodeSecurity(tls, self.ca_file, jwt_secret),
            front=netns,
        )
        self.server = targets.server = cluster.nodes[0]
        targets.cluster = cluster
        self.history.write(None, cluster.describe())
        self.say(
            f"cluster: {len(cluster.nodes)} nodes, bus {cluster.redis.url}, "
            + (
                f"HAProxy at {cluster.entry}"
                if cluster.entry
                else "no HAProxy: clients rotate through the nodes on reconnect"
            )
        )
        if cluster.entry is not None:
            return cluster.entry, [f"{'wss' if tls else 'ws'}://{cluster.entry}/ws"]
        self._rotate = True
        return "", [node.ws_url for node in cluster.nodes]

    async def _stop_cluster(self, cluster: Any) -> None:
        """Scrape every node before it stops: one ``server_metrics`` record, summed."""
        assert self.history is not None
        scraped = [await node.metrics() for node in cluster.nodes]
        total: dict[str, float] = {}
        for metrics in scraped:
            for name, value in metrics.items():
                total[name] = total.get(name, 0.0) + value
        if total:
            self.history.write(None, ServerMetrics(total, nodes=list(scraped)))

    def _server_argv(self) -> list[str]:
        options = server_options(self.scenario.server)
        for bug in self.config.server_bugs:
            options += ["--inject-bug", bug]
        if self.config.server_bugs:
            # The bugs' own randomness (reorder-sends) is reproducible from the run seed too.
            options += ["--bug-seed", str(self.scenario.seed)]
        return options

    def _security(self, *hosts: str) -> tuple[tuple[str, str] | None, str | None]:
        """With ``tls``: a certificate for ``hosts`` (trusted by the harness); with ``jwt``
        (or ``tls``): a fresh secret, the harness's admin token and the clients' minter."""
        config = self.config
        tls = None
        if config.tls:
            cert, key = self_signed(self.run_dir / "tls", hosts)
            tls, self.ca_file = (str(cert), str(key)), str(cert)
        if not (config.jwt or config.tls):
            return tls, None
        secret = secrets.token_hex(32)
        # Long enough for any run: the clients' tokens are minted per connection attempt.
        ttl = self.scenario.duration_s + self.scenario.drain_timeout_s + 3600
        self.tokens = TokenSource(secret, "harness", ("*",), True, ttl)
        self.token = self.tokens.token()
        return tls, secret

    async def _stop_server(self, server: ServerProcess) -> None:
        assert self.history is not None
        metrics = await server.metrics()
        if metrics:
            self.history.write(None, ServerMetrics(metrics))
        code = await server.stop()
        self.history.write(None, ServerLifecycle("exit", server.pid, code))

    async def _start_proxies(
        self, stack: contextlib.AsyncExitStack, upstream: str, groups: int
    ) -> tuple[Any, list[str]]:
        from synccli.faults.toxiproxy import ToxiproxyFaults

        api_url = self.config.toxiproxy_url
        if api_url is None:
            from synccli.faults.proxy import start_in_process

            # Its own process: forwarding for a thousand clients would otherwise share this
            # process's interpreter with the fault schedule and make the heals late.
            handle = await asyncio.to_thread(
                start_in_process, "127.0.0.1", 0, seed=self.scenario.seed
            )
            stack.push_async_callback(asyncio.to_thread, handle.stop)
            api_url = handle.url
        proxies = ToxiproxyFaults(api_url, prefix=f"synccli-{self.run_id}")
        await asyncio.to_thread(proxies.check)
        stack.push_async_callback(asyncio.to_thread, proxies.destroy)
        listens = await asyncio.to_thread(proxies.create_proxies, upstream, groups)
        scheme = "wss" if self.server is not None and self.server.tls else "ws"
        if self.server is None and self.config.url is not None:
            scheme = self.config.url.split("://", 1)[0]
        return proxies, [f"{scheme}://{listen}/ws" for listen in listens]

    def _read_truth(self) -> Any:
        """The committed history of the run's dates: from the database, or with only
        ``--url`` from the server's own log through the protocol."""
        from synccli.report.truth import truth_from_store

        if self._store is not None:
            return truth_from_store(self._store, self.dates)
        from synccli.harness.remote_truth import truth_from_server

        return truth_from_server(str(self.config.url), self.token, self.dates, self.ca_file)

    # ------------------------------------------------------------------ the run

    async def _drive(self, stop: asyncio.Event) -> bool:
        """Run clients and faults; returns whether the run was interrupted."""
        from synccli.client.fleet import FleetConfig, run_fleet

        assert self.history is not None and self.faults is not None
        scenario, config = self.scenario, self.config
        fleet_config = FleetConfig(
            urls=self._fleet_urls,
            clients=scenario.clients,
            writers=scenario.writers,
            dates=list(self.dates),
            rate=scenario.rate,
            duration_s=scenario.duration_s,
            drain_timeout_s=scenario.drain_timeout_s,
            seed=scenario.seed,
            token=self.token,
            tokens=self.tokens,
            ca_file=self.ca_file,
            client_bugs=tuple(config.client_bugs),
            workers=config.workers,
            probe=config.probe,
            rotate=self._rotate,
        )
        progress = ProgressLine(self._status, enabled=config.progress)
        self._say = progress.say if config.progress else self._say
        faults = self.faults
        fault_task: asyncio.Task[None] | None = None
        self._load_t0 = time.monotonic()

        def load_started() -> None:
            # A fault's ``at_s`` counts from the start of the load, once the clients have
            # started (worker processes take seconds to spawn on a busy machine), not from
            # ``t0``: server and proxy start-up come before it.
            nonlocal fault_task
            self._load_t0 = time.monotonic()
            fault_task = asyncio.create_task(faults.run(self._load_t0))

        ticker = asyncio.create_task(self._tick(progress))
        browsers = self.browsers
        if browsers is not None:
            browsers.start_writing()

        async def heal_faults() -> None:
            # Clients drain to the final heads only once every fault is healed.
            if fault_task is not None:
                await cancel_quietly(fault_task)
            await faults.heal_all()

        def enter(phase: str) -> None:
            # A frame at every phase change, so a CI log (a line every 5 s) shows them all.
            self.phase = phase
            progress.tick(force=True)

        async def heal_then_drain() -> None:
            enter("heal")
            await heal_faults()
            if browsers is not None:
                # The pages' last writes are answered before the heads are taken.
                await browsers.stop_writing(scenario.drain_timeout_s)
            enter("drain")

        try:
            self.fleet_stats = await run_fleet(
                fleet_config,
                self.history,
                stop,
                progress=self._counters.update,
                target_heads=self._target_heads,
                before_drain=heal_then_drain,
                started=load_started,
            )
            if browsers is not None:
                await browsers.drain(self._target_heads, scenario.drain_timeout_s)
                await browsers.close()
        finally:
            await heal_faults()
            await cancel_quietly(ticker)
            self.phase = "check"
            if config.progress:
                progress.show(await self._final_status())
            progress.finish()
        if self.faults.failed:
            self.say(f"{self.faults.failed} fault(s) could not be applied; see history.jsonl")
        return stop.is_set()

    async def _target_heads(self) -> dict[str, tuple[str, int]] | None:
        """The database's head of every run date (None when only ``--url`` is known)."""
        store = self._store
        if store is None:
            return None
        heads = await asyncio.to_thread(store.heads)
        return {d: (c.epoch, c.head_seq) for d, c in heads.items() if d in self.dates}

    async def _tick(self, progress: ProgressLine) -> None:
        while True:
            heads = await self._target_heads()
            if heads is not None:
                self.committed = sum(seq for _, seq in heads.values())
            progress.tick()
            await asyncio.sleep(0.5)

    def _snapshot(self, counters: dict[str, int]) -> Snapshot:
        active = tuple(sorted(self.faults.active)) if self.faults else ()
        at_s = time.monotonic() - self._load_t0
        return Snapshot.of(
            at_s, self.phase, self.committed, self.scenario.clients, counters, active
        )

    def _status(self) -> str:
        return self._text.line(self._snapshot(self._counters))

    async def _final_status(self) -> str:
        """The last frame: the fleet's final counters (its clients are closed by now, so
        ``connected`` is the last live count) and the database's final heads."""
        with contextlib.suppress(StoreError):
            heads = await self._target_heads()
            if heads is not None:
                self.committed = sum(seq for _, seq in heads.values())
        final = dict(self._counters)
        if self.fleet_stats is not None:
            final |= {k: v for k, v in self.fleet_stats.counters.items() if k != "connected"}
        return self._text.line(self._snapshot(final), final=True)


def server_options(server: ServerOptions) -> list[str]:
    """The ``synccli serve`` options a scenario's ``[server]`` table asks for."""
    flags = {
        "--heartbeat": server.heartbeat_s,
        "--ack-timeout": server.ack_timeout_s,
        "--max-retries": server.max_retries,
        "--send-queue": server.send_queue,
        "--max-replay": server.max_replay,
    }
    return [
        item for flag, value in flags.items() if value is not None for item in (flag, str(value))
    ]


async def check_reachable(url: str, token: str | None, ca_file: str | None = None) -> None:
    """Fail fast, before any client starts, when the server at ``url`` cannot be reached."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with asyncio.timeout(10):
            connection = await connect(
                url,
                additional_headers=headers,
                compression=None,
                ssl=client_context(url, ca_file),
            )
            await connection.close()
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise InfrastructureError(
            f"cannot reach the server at {url} ({exc or type(exc).__name__}); "
            "start it, or check the URL and --token"
        ) from None


def _host_port(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


async def run_simulation(
    config: RunConfig, stop: asyncio.Event, say: Callable[[str], None]
) -> RunOutcome:
    """Run one simulation and check it; returns the outcome with the gate's exit code."""
    return await Simulation(config, say).run(stop)
