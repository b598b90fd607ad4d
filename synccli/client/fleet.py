"""A fleet of simulated clients: run, stop writing, drain, record the final states.

``run_fleet`` runs ``clients`` ``SimulatedClient``s in this asyncio process, or split over
``workers`` processes (``synccli.client.workers``) when one event loop cannot keep up
(1000 clients on two cores). The phases:

1. run: every client subscribes to every date; the first ``writers`` clients write at
   ``rate / writers`` writes per second each, until ``duration_s`` passes or ``stop`` is set;
2. drain: writers stop; until ``drain_timeout_s`` passes, the heads (from the database via
   ``target_heads``, else the furthest position any client reached) are polled and passed to
   every client as a heartbeat would, until every client has applied up to them;
3. finish: each client records its ``final`` state per date and closes (1000).

Client ``i`` connects to ``urls[i % len(urls)]`` and draws from ``random.Random`` seeded
with ``client_seed(seed, i)``; the seeds are recorded (``client`` records and the result).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from synccli.client.connection import (
    DEFAULT_ACK_DELAY_S,
    ClientConfig,
    HistorySink,
    SimulatedClient,
)
from synccli.client.lag import LagMonitor
from synccli.domain.values import Position, check_date
from synccli.errors import ConfigError, ProtocolError
from synccli.protocol.channel import CLIENT_BUGS
from synccli.tokens import TokenSource

HeadsSource = Callable[[], Awaitable[dict[str, tuple[str, int]] | None]]
Counters = dict[str, int]

# How often the drain re-reads the heads: it polls a database, there is no event to await.
DRAIN_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What the fleet does; ``rate`` is total writes per second across all writers."""

    urls: list[str]
    clients: int
    writers: int
    dates: list[str]
    rate: float
    duration_s: float
    seed: int
    token: str | None = None
    #: Per-client tokens: client ``cNNN`` gets its own, ``sub`` = its id, on every connect.
    tokens: TokenSource | None = None
    ca_file: str | None = None
    client_bugs: tuple[str, ...] = ()
    drain_timeout_s: float = 30.0
    workers: int = 1
    gap_timeout_s: float = 2.0
    write_timeout_s: float = 5.0
    #: Acks wait this long to cover more events (far below the server's ack timeout).
    ack_delay_s: float = DEFAULT_ACK_DELAY_S
    open_timeout_s: float = 5.0
    expected_version: bool = False
    #: New connections per second at start-up: a thousand simultaneous handshakes would
    #: stall the harness's own event loop (and the server's) for a second.
    connect_rate: float = 250.0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError(
                "the fleet needs at least one server URL; pass --url ws://HOST:PORT/ws"
            )
        for url in self.urls:
            if not url.startswith(("ws://", "wss://")):
                raise ConfigError(f"server URL {url!r} must start with ws:// or wss://")
        if self.clients < 1:
            raise ConfigError("clients must be at least 1")
        if not 0 <= self.writers <= self.clients:
            raise ConfigError(f"writers must be between 0 and clients ({self.clients})")
        if self.rate < 0 or self.duration_s < 0 or self.drain_timeout_s < 0:
            raise ConfigError("rate, duration and drain timeout must not be negative")
        if self.connect_rate <= 0:
            raise ConfigError("the connect rate must be greater than 0 connections per second")
        if not 1 <= self.workers <= self.clients:
            raise ConfigError(f"workers must be between 1 and clients ({self.clients})")
        if not self.dates:
            raise ConfigError("the fleet needs at least one date to subscribe to")
        for date in self.dates:
            try:
                check_date(date)
            except ProtocolError as exc:
                raise ConfigError(f"{exc.message}; use YYYY-MM-DD") from None
        unknown = set(self.client_bugs) - CLIENT_BUGS
        if unknown:
            raise ConfigError(
                f"unknown client bug(s) {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(sorted(CLIENT_BUGS))}"
            )


@dataclass(slots=True)
class FleetResult:
    """What the fleet did, for the report."""

    drained: bool
    clients: int
    workers: int
    seeds: dict[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=dict)
    loop_lag_p99_ms: float = 0.0
    loop_lag_max_ms: float = 0.0
    drain_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_id(index: int) -> str:
    return f"c{index:03d}"


def client_seed(run_seed: int, index: int) -> int:
    """A 63-bit seed derived from the run seed and the client's index (stable everywhere)."""
    digest = hashlib.sha256(f"{run_seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def client_config(config: FleetConfig, index: int) -> ClientConfig:
    writer = index < config.writers and config.rate > 0
    return ClientConfig(
        client_id=client_id(index),
        url=config.urls[index % len(config.urls)],
        dates=tuple(config.dates),
        seed=client_seed(config.seed, index),
        token=config.token,
        tokens=None if config.tokens is None else config.tokens.for_sub(client_id(index)),
        ca_file=config.ca_file,
        write_rate=config.rate / config.writers if writer else 0.0,
        expected_version=config.expected_version,
        bugs=frozenset(config.client_bugs),
        gap_timeout=config.gap_timeout_s,
        ack_delay=config.ack_delay_s,
        write_timeout=config.write_timeout_s,
        open_timeout=config.open_timeout_s,
    )


def heads_from_wire(raw: dict[str, tuple[str, int]] | dict[str, list[Any]]) -> dict[str, Position]:
    return {date: Position(str(epoch), int(seq)) for date, (epoch, seq) in raw.items()}


def furthest(positions: list[dict[str, Position]]) -> dict[str, Position]:
    """Per date, the furthest position any client reached (the target without a database)."""
    best: dict[str, Position] = {}
    for known in positions:
        for date, position in known.items():
            if date not in best or position.seq > best[date].seq:
                best[date] = position
    return best


def sum_counters(parts: list[Counters]) -> Counters:
    total: Counters = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total


class LocalFleet:
    """Some of the fleet's clients, in this process."""

    def __init__(self, config: FleetConfig, indices: list[int], history: HistorySink) -> None:
        self.config = config
        self.history = history
        self.indices = indices
        self.clients = [SimulatedClient(client_config(config, i), history) for i in indices]
        self.lag = LagMonitor(flush=getattr(history, "flush_if_due", None))

    def start(self) -> None:
        for client in self.clients:
            c = client.config
            self.history.record_dict(
                c.client_id,
                {
                    "k": "client",
                    "seed": c.seed,
                    "url": c.url,
                    "writer": c.write_rate > 0,
                    "rate": c.write_rate,
                    "dates": list(c.dates),
                    "bugs": sorted(c.bugs),
                },
            )
        self.lag.start()
        for index, client in zip(self.indices, self.clients, strict=True):
            client.start(delay=index / self.config.connect_rate)

    def seeds(self) -> dict[str, int]:
        return {c.config.client_id: c.config.seed for c in self.clients}

    def counters(self) -> Counters:
        out: Counters = {
            "clients": len(self.clients),
            "connected": 0,
            "connects": 0,
            "reconnects": 0,
            "applied": 0,
            "writes_ok": 0,
            "writes_failed": 0,
            "gaps": 0,
            "resyncs": 0,
        }
        for client in self.clients:
            stats = client.session.stats
            out["connected"] += client.connected
            out["connects"] += client.connects
            out["reconnects"] += max(0, client.connects - 1)
            out["applied"] += stats.applied
            out["writes_ok"] += stats.writes_ok
            out["writes_failed"] += stats.writes_failed
            out["gaps"] += stats.gaps
            out["resyncs"] += stats.resyncs
        return out

    async def stop_writing(self) -> None:
        await asyncio.gather(*(client.stop_writing() for client in self.clients))

    def known_heads(self) -> dict[str, Position]:
        return furthest([client.known_heads() for client in self.clients])

    def nudge(self, heads: dict[str, Position]) -> bool:
        """Pass ``heads`` to every client behind them; True when every client is caught up."""
        behind = [client for client in self.clients if not client.caught_up(heads)]
        for client in behind:
            client.expect_heads(heads)
        return not behind

    async def finish(self) -> None:
        # Lag is a property of the run; the shutdown burst below would only blur it.
        await self.lag.stop()
        for client in self.clients:
            client.write_final()
        await asyncio.gather(*(client.close() for client in self.clients))


_live_sources: list[Callable[[], Counters]] = []


def live_counters() -> Counters:
    """Counters of every fleet running in this process, for a progress line."""
    return sum_counters([source() for source in _live_sources])


async def run_fleet(
    config: FleetConfig,
    history: Any,
    stop: asyncio.Event,
    progress: Callable[[Counters], None] | None = None,
    target_heads: HeadsSource | None = None,
    before_drain: Callable[[], Awaitable[None]] | None = None,
) -> FleetResult:
    """Run the fleet through its three phases; ``history`` is a ``HistoryWriter``.

    ``progress``, if given, is called with the live counters about every 0.5 s.
    ``before_drain``, if given, is awaited once the writers have stopped and before the
    drain starts: the place to heal faults so that the clients can catch up."""
    if config.workers > 1:
        from synccli.client.workers import run_workers

        return await run_workers(config, history, stop, progress, target_heads, before_drain)
    fleet = LocalFleet(config, list(range(config.clients)), history)
    _live_sources.append(fleet.counters)
    reporter = asyncio.create_task(_report(fleet.counters, progress))
    finished = False
    try:
        fleet.start()
        await wait_run_phase(config, stop)
        await fleet.stop_writing()
        if before_drain is not None:
            await before_drain()
        drain_started = time.monotonic()
        drained = await drain(config, target_heads, fleet.known_heads, fleet.nudge)
        drain_s = time.monotonic() - drain_started
        await fleet.finish()
        finished = True
    finally:
        reporter.cancel()
        _live_sources.remove(fleet.counters)
        if not finished:
            # Cancelled or failed: still record what every client holds and close them.
            await fleet.finish()
    return FleetResult(
        drained=drained,
        clients=config.clients,
        workers=1,
        seeds=fleet.seeds(),
        counters=fleet.counters(),
        loop_lag_p99_ms=fleet.lag.p99_ms(),
        loop_lag_max_ms=fleet.lag.max_ms(),
        drain_s=round(drain_s, 3),
    )


async def wait_run_phase(config: FleetConfig, stop: asyncio.Event) -> None:
    try:
        async with asyncio.timeout(config.duration_s):
            await stop.wait()
    except TimeoutError:
        pass


async def drain(
    config: FleetConfig,
    target_heads: HeadsSource | None,
    known_heads: Callable[[], dict[str, Position]],
    nudge: Callable[[dict[str, Position]], bool | Awaitable[bool]],
) -> bool:
    """Poll the heads and nudge the clients until all are caught up (bounded)."""
    deadline = time.monotonic() + config.drain_timeout_s
    while True:
        raw = await target_heads() if target_heads is not None else None
        heads = heads_from_wire(raw) if raw is not None else known_heads()
        outcome = nudge(heads)
        caught_up = outcome if isinstance(outcome, bool) else await outcome
        if caught_up:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(DRAIN_POLL_S, remaining))


async def _report(
    source: Callable[[], Counters], progress: Callable[[Counters], None] | None
) -> None:
    if progress is None:
        return
    while True:
        progress(source())
        await asyncio.sleep(0.5)
