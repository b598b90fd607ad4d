"""How each fault kind is applied and healed: one runner per kind of the registry.

A runner gets the fault (``FaultCall``: its spec, the groups it hits, what the run has to act
on) and applies it; it returns the heal, an async call that undoes it and may return the
fault's own evidence (``{"packets_dropped": n}``, the server's ``{"db_errors": n}``):
counters that prove whether it acted, whatever the clients noticed. A runner that cannot
act raises ``FaultError``. ``runs(name, ...)`` registers a runner; every kind of
``synccli.faults.kinds`` has exactly one (a test checks it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from synccli.errors import FaultError, SynccliError
from synccli.faults.kinds import fault_kinds
from synccli.harness.scenario import FaultSpec
from synccli.history import Record, ServerLifecycle

if TYPE_CHECKING:
    from synccli.faults.loss import LossLink
    from synccli.faults.netns import Direction
    from synccli.faults.toxiproxy import ToxiproxyFaults
    from synccli.harness.server_process import ServerProcess


class Recorder(Protocol):
    """Where fault records go (``synccli.history.HistoryWriter``)."""

    def write(self, client_id: str | None, record: Record) -> None: ...


@dataclass
class FaultTargets:
    """What the faults act on; a missing part makes the faults that need it fail cleanly."""

    proxies: ToxiproxyFaults | None = None
    groups: int = 1
    server: ServerProcess | None = None
    netns: LossLink | None = None
    dates: tuple[str, ...] = ()
    #: Why packet loss is unavailable here, when it is.
    netns_unavailable: str | None = None


@dataclass(frozen=True)
class FaultCall:
    """One fault to apply: its spec, the proxy groups it hits, the run's targets, the
    history (for what the fault itself does, like a kill) and the run seed."""

    spec: FaultSpec
    groups: list[int]
    targets: FaultTargets
    history: Recorder
    seed: int


#: What a fault did, counted where it acted: ``{"packets_dropped": 42}``.
Evidence = dict[str, int]
Heal = Callable[[], Awaitable[Evidence | None]]
Runner = Callable[[FaultCall], Awaitable[Heal]]

RUNNERS: dict[str, Runner] = {}


def runs(*kinds: str) -> Callable[[Runner], Runner]:
    """Decorator: ``runner`` applies faults of ``kinds``."""

    def register(runner: Runner) -> Runner:
        for kind in kinds:
            RUNNERS[kind] = runner
        return runner

    return register


async def _nothing() -> None:
    return None


def _proxies(call: FaultCall) -> ToxiproxyFaults:
    if call.targets.proxies is None:
        raise FaultError(f"fault {call.spec.kind!r} needs the proxy, and this run has none")
    return call.targets.proxies


def _server(call: FaultCall) -> ServerProcess:
    if call.targets.server is None:
        raise FaultError(f"fault {call.spec.kind!r} needs the embedded server (not with --url)")
    return call.targets.server


@runs(*(name for name, kind in fault_kinds().items() if kind.toxic))
async def run_toxic(call: FaultCall) -> Heal:
    """The toxic of the kind's name on the groups' proxies, once per stream."""
    proxies, spec, groups = _proxies(call), call.spec, call.groups
    streams = ("upstream", "downstream") if spec.stream == "both" else (spec.stream,)
    names: list[str] = []

    async def heal() -> None:
        for name in names:
            await asyncio.to_thread(proxies.remove_toxic, groups, name)

    try:
        for stream in streams:
            added = await asyncio.to_thread(
                proxies.add_toxic, groups, spec.kind, stream, dict(spec.attrs)
            )
            names.append(added[0])
    except SynccliError:
        await heal()
        raise
    return heal


@runs("down")
async def run_down(call: FaultCall) -> Heal:
    """Disable the groups' proxies; the heal enables them again."""
    proxies, groups = _proxies(call), call.groups
    await asyncio.to_thread(proxies.set_enabled, groups, False)

    async def heal() -> None:
        await asyncio.to_thread(proxies.set_enabled, groups, True)

    return heal


@runs("packet_loss")
async def run_packet_loss(call: FaultCall) -> Heal:
    """Drop ``percent`` of the packets in the namespace; the heal counts the drops."""
    netns = call.targets.netns
    if netns is None:
        reason = call.targets.netns_unavailable or "the server does not run in a namespace"
        raise FaultError(f"packet loss is not possible here: {reason}")
    spec = call.spec
    # The scenario's streams are the namespace's directions (checked on load).
    direction = cast("Direction", spec.stream)
    before = await asyncio.to_thread(netns.dropped)
    await asyncio.to_thread(netns.set_loss, float(spec.attrs["percent"]), direction)

    async def heal() -> Evidence:
        await asyncio.to_thread(netns.clear_loss)
        return {"packets_dropped": await asyncio.to_thread(netns.dropped) - before}

    return heal


@runs("server_kill")
async def run_server_kill(call: FaultCall) -> Heal:
    """SIGKILL the embedded server; the heal starts it again on the same database."""
    server = _server(call)
    pid = server.pid
    await asyncio.to_thread(server.kill)
    call.history.write(None, ServerLifecycle("kill", pid))

    async def restart() -> None:
        await server.start()
        call.history.write(None, ServerLifecycle("restart", server.pid))

    return restart


@runs("db_fault")
async def run_db_fault(call: FaultCall) -> Heal:
    """Install the database fault through the server's hook; the heal removes it and
    counts the database errors of the window."""
    server = _server(call)
    params = {"mode": call.spec.attrs["mode"], "seed": call.seed}
    params |= {key: call.spec.attrs[key] for key in ("rate", "delay_ms")}
    before = await _db_errors(server)
    await server.admin("db-fault", **params)

    async def off() -> Evidence | None:
        await server.admin("db-fault", mode="off")
        if params["mode"] == "slow_commit":
            return None  # no counter: its trace is the window's latency
        # A deadlock the server retried away reaches no client: its counter is the
        # proof. A restart in between resets it, hence never below zero.
        return {"db_errors": max(0, await _db_errors(server) - before)}

    return off


@runs("epoch_reset")
async def run_epoch_reset(call: FaultCall) -> Heal:
    """Reset the first date's channel log; there is nothing to heal."""
    dates = call.targets.dates
    await _server(call).admin("reset-channel", date=dates[0] if dates else None)
    return _nothing


async def _db_errors(server: ServerProcess) -> int:
    """The server's ``synccli_db_errors_total`` (0 when it cannot be read)."""
    metrics = await server.metrics()
    return int(metrics.get("synccli_db_errors_total", 0))
