"""The parts of a fleet shared by one process and many: config, result, ``LocalFleet``.

``FleetConfig`` is what the harness asks for; ``client_config`` builds each client's
``ClientConfig`` (and its ``SessionConfig``) from it, the one place fields pass down.
``LocalFleet`` runs some of the fleet's clients in this process; ``drain`` brings them to
the heads. ``LIVE`` sums the counters of every fleet running in this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from synccli.client.lag import LagMonitor
from synccli.client.simulated import (
    DEFAULT_ACK_DELAY_S,
    ClientConfig,
    HistorySink,
    SimulatedClient,
)
from synccli.domain.values import Position, check_date
from synccli.errors import ConfigError, ProtocolError
from synccli.history import ClientCreated
from synccli.injection import check_bugs
from synccli.protocol.session import SessionConfig
from synccli.tokens import TokenSource

HeadsSource = Callable[[], Awaitable[dict[str, tuple[str, int]] | None]]
Counters = dict[str, int]

# Reconnects of a fleet spread over ``clients / reconnect_rate`` seconds, within these
# bounds: the probe delay (below: probes cost the harness more than they gain; above: the
# heal-to-caught-up budget of 1 s would not hold) and the first backoff delay after a
# connection dropped (at 50 ms, a reset of 500 connections came back as one burst of
# handshakes that stalled the harness's loop and the server's).
PROBE_MIN_S = 0.1
PROBE_MAX_S = 0.6
BACKOFF_INITIAL_S = 0.05

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
    #: Reconnects per second the whole fleet may aim at the server after an outage: the
    #: probe delay of refused attempts is ``clients / reconnect_rate`` (bounded). At 2000/s
    #: a thousand clients came back over half a second, and the last were caught up about
    #: 1 s after the heal; at 4000/s the server (whose listen backlog holds the wave) still
    #: has room to spare and the last are caught up 0.2 s sooner (benchmarks/recovery.py).
    reconnect_rate: float = 4000.0
    #: False: refused attempts grow the backoff like any failure, and it starts at 50 ms
    #: whatever the fleet (the behaviour before probing; benchmarks/recovery.py compares).
    probe: bool = True
    #: Every client gets all ``urls`` (starting from its own) and moves to the next one on
    #: each reconnect: several nodes and no balancer in front.
    rotate: bool = False

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
        if self.connect_rate <= 0 or self.reconnect_rate <= 0:
            raise ConfigError(
                "the connect and reconnect rates must be greater than 0 connections per second"
            )
        if not 1 <= self.workers <= self.clients:
            raise ConfigError(f"workers must be between 1 and clients ({self.clients})")
        if not self.dates:
            raise ConfigError("the fleet needs at least one date to subscribe to")
        for date in self.dates:
            try:
                check_date(date)
            except ProtocolError as exc:
                raise ConfigError(f"{exc.message}; use YYYY-MM-DD") from None
        check_bugs(self.client_bugs, "client")


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


def _rotation(urls: list[str], index: int) -> tuple[str, ...]:
    """``urls`` starting from client ``index``'s own."""
    return tuple(urls[(index + k) % len(urls)] for k in range(len(urls)))


def client_config(config: FleetConfig, index: int) -> ClientConfig:
    """The config of client ``index``: the one place fleet settings pass down to a client."""
    writer = index < config.writers and config.rate > 0
    session = SessionConfig(
        client_id(index),
        tuple(config.dates),
        frozenset(config.client_bugs),
        gap_timeout=config.gap_timeout_s,
        write_timeout=config.write_timeout_s,
    )
    return ClientConfig(
        session=session,
        url=config.urls[index % len(config.urls)],
        urls=_rotation(config.urls, index) if config.rotate else (),
        seed=client_seed(config.seed, index),
        token=config.token,
        tokens=None if config.tokens is None else config.tokens.for_sub(client_id(index)),
        ca_file=config.ca_file,
        write_rate=config.rate / config.writers if writer else 0.0,
        expected_version=config.expected_version,
        ack_delay=config.ack_delay_s,
        open_timeout=config.open_timeout_s,
        probe=_spread(config, PROBE_MIN_S) if config.probe else None,
        backoff_initial=_spread(config, BACKOFF_INITIAL_S) if config.probe else BACKOFF_INITIAL_S,
    )


def _spread(config: FleetConfig, least: float) -> float:
    """The window the fleet's returning clients spread over, so that the server sees about
    ``reconnect_rate`` handshakes per second (bounded below by ``least``)."""
    return min(PROBE_MAX_S, max(least, config.clients / config.reconnect_rate))


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
            self.history.write(
                client.client_id,
                ClientCreated(
                    seed=c.seed,
                    url=c.url,
                    writer=c.write_rate > 0,
                    rate=c.write_rate,
                    dates=list(c.session.dates),
                    bugs=sorted(c.session.bugs),
                ),
            )
        self.lag.start()
        for index, client in zip(self.indices, self.clients, strict=True):
            client.start(delay=index / self.config.connect_rate)

    def seeds(self) -> dict[str, int]:
        return {c.client_id: c.config.seed for c in self.clients}

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


class LiveCounters:
    """The counter sources of every fleet running in this process, for a progress line."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Counters]] = []

    def add(self, source: Callable[[], Counters]) -> None:
        self._sources.append(source)

    def remove(self, source: Callable[[], Counters]) -> None:
        self._sources.remove(source)

    def total(self) -> Counters:
        return sum_counters([source() for source in self._sources])


LIVE = LiveCounters()


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
