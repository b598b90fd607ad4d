"""Run a scenario's fault schedule: apply each fault at its time, heal it after its span.

Each kind maps to one pair of small async actions (apply, heal). Every step is recorded in
the history (``fault`` records with phase start/end/error), so the report can break metrics
down per fault window and tell a fault that failed to apply from one that left no trace.
A heal may return the fault's own evidence (``{"packets_dropped": n}``, the server's
``{"db_errors": n}``): counters that prove whether it acted, whatever the clients noticed.
They go on the ``end`` record as ``evidence``, and the report judges the window by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from synccli.errors import FaultError, SynccliError
from synccli.harness.scenario import PROXY_KINDS, SERVER_KINDS, FaultSpec
from synccli.history import Fault, Record, ServerLifecycle


class Recorder(Protocol):
    """Where fault records go (``synccli.history.HistoryWriter``)."""

    def write(self, client_id: str | None, record: Record) -> None: ...


@dataclass
class FaultTargets:
    """What the faults act on; a missing part makes the faults that need it fail cleanly."""

    proxies: Any | None = None  # synccli.faults.toxiproxy.ToxiproxyFaults
    groups: int = 1
    server: Any | None = None  # synccli.harness.server_process.ServerProcess
    netns: Any | None = None  # synccli.faults.netns.PacketLossNamespace
    dates: tuple[str, ...] = ()
    #: Why packet loss is unavailable here, when it is.
    netns_unavailable: str | None = None


#: What a fault did, counted where it acted: ``{"packets_dropped": 42}``.
Evidence = dict[str, int]
Action = Callable[[], Awaitable[Evidence | None]]


@dataclass
class FaultRunner:
    """Applies ``specs`` on ``targets`` relative to the run start ``t0`` (monotonic)."""

    specs: tuple[FaultSpec, ...]
    targets: FaultTargets
    history: Recorder
    seed: int
    active: dict[str, FaultSpec] = field(default_factory=dict)
    failed: int = 0
    _heals: dict[str, Action] = field(default_factory=dict)

    async def run(self, t0: float) -> None:
        """Run the whole schedule; returns when the last fault has been healed."""
        async with asyncio.TaskGroup() as group:
            for index, spec in enumerate(self.specs):
                group.create_task(self._one(index, spec, t0))

    async def heal_all(self) -> None:
        """Heal whatever is still applied (end of run, Ctrl+C). Idempotent."""
        for name in list(self._heals):
            await self._heal(name)

    async def _one(self, index: int, spec: FaultSpec, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + spec.at_s - time.monotonic()))
        name = spec.name or f"{spec.kind}#{index}"
        groups = self._pick_groups(index, spec.target)
        # The window opens before the fault is applied: its first effects (the resyncs of an
        # epoch reset, the disconnects of a kill) happen while the apply call is in flight.
        self.history.write(
            None, Fault("start", spec.kind, name, spec.target, spec.attrs, groups=groups)
        )
        try:
            heal = await self._apply(spec, groups)
        except SynccliError as exc:
            self.failed += 1
            self.history.write(
                None, Fault("error", spec.kind, name, spec.target, spec.attrs, error=str(exc))
            )
            return
        self._heals[name] = heal
        self.active[name] = spec
        try:
            await asyncio.sleep(spec.for_s)
        finally:
            await self._heal(name)

    async def _heal(self, name: str) -> None:
        heal = self._heals.pop(name, None)
        spec = self.active.pop(name, None)
        if heal is None or spec is None:
            return
        try:
            evidence = await heal()
        except SynccliError as exc:
            self.history.write(None, Fault("error", spec.kind, name, error=f"heal failed: {exc}"))
            return
        self.history.write(None, Fault("end", spec.kind, name, evidence=evidence))

    def _pick_groups(self, index: int, share: float) -> list[int]:
        """A seeded choice of ``share`` of the proxy groups (at least one)."""
        total = self.targets.groups
        count = min(total, max(1, math.ceil(share * total - 1e-9)))
        rng = random.Random(f"{self.seed}:fault:{index}")
        return sorted(rng.sample(range(total), count))

    async def _apply(self, spec: FaultSpec, groups: list[int]) -> Action:
        if spec.kind in PROXY_KINDS:
            return await self._apply_proxy(spec, groups)
        if spec.kind == "packet_loss":
            return await self._apply_packet_loss(spec)
        if spec.kind in SERVER_KINDS:
            return await self._apply_server(spec)
        raise FaultError(f"unknown fault kind {spec.kind!r}")

    async def _apply_proxy(self, spec: FaultSpec, groups: list[int]) -> Action:
        proxies = self.targets.proxies
        if proxies is None:
            raise FaultError(f"fault {spec.kind!r} needs the proxy, and this run has none")
        if spec.kind == "down":
            await asyncio.to_thread(proxies.set_enabled, groups, False)
            return lambda: asyncio.to_thread(proxies.set_enabled, groups, True)
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

    async def _apply_packet_loss(self, spec: FaultSpec) -> Action:
        netns = self.targets.netns
        if netns is None:
            reason = self.targets.netns_unavailable or "the server does not run in a namespace"
            raise FaultError(f"packet loss is not possible here: {reason}")
        percent = float(spec.attrs.get("percent", 0))
        before = await asyncio.to_thread(netns.dropped)
        await asyncio.to_thread(netns.set_loss, percent, spec.stream)

        async def heal() -> Evidence:
            await asyncio.to_thread(netns.clear_loss)
            return {"packets_dropped": await asyncio.to_thread(netns.dropped) - before}

        return heal

    async def _apply_server(self, spec: FaultSpec) -> Action:
        server = self.targets.server
        if server is None:
            raise FaultError(f"fault {spec.kind!r} needs the embedded server (not with --url)")
        if spec.kind == "server_kill":
            pid = server.pid
            await asyncio.to_thread(server.kill)
            self.history.write(None, ServerLifecycle("kill", pid))

            async def restart() -> None:
                await server.start()
                self.history.write(None, ServerLifecycle("restart", server.pid))

            return restart
        if spec.kind == "db_fault":
            params = {"mode": spec.attrs.get("mode", "deadlock"), "seed": self.seed}
            params |= {k: spec.attrs[k] for k in ("rate", "delay_ms") if k in spec.attrs}
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
        dates = self.targets.dates
        date = spec.attrs.get("date") or (dates[0] if dates else None)
        await server.admin("reset-channel", date=date)

        async def nothing() -> None:
            return None

        return nothing


async def _db_errors(server: Any) -> int:
    """The server's ``synccli_db_errors_total`` (0 when it cannot be read)."""
    metrics: dict[str, float] = await server.metrics()
    return int(metrics.get("synccli_db_errors_total", 0))


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it, swallowing its cancellation."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
