"""Run a scenario's fault schedule: apply each fault at its time, heal it after its span.

Each fault is applied by the runner of its kind (``fault_runners.RUNNERS``, one per kind of
the registry). Every step is recorded in the history (``fault`` records with phase
start/end/error), so the report can break metrics down per fault window and tell a fault
that failed to apply from one that left no trace. A heal's evidence (counters that prove
the fault acted) goes on the ``end`` record as ``evidence``, and the report judges the
window by it.

Named client groups, and readers apart from writers, sit behind separate proxies
(``layout.ProxyLayout``), so a fault can hit a share of one set's proxies only (a fault's
``clients``); its ``start`` record names the groups and the clients behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from synccli.errors import FaultError, SynccliError
from synccli.harness.fault_runners import RUNNERS, FaultCall, FaultTargets, Heal, Recorder
from synccli.harness.layout import ProxyLayout
from synccli.harness.scenario import FaultSpec
from synccli.history import Fault

__all__ = ["FaultRunner", "FaultTargets", "ProxyLayout", "cancel_quietly"]


@dataclass
class FaultRunner:
    """Applies ``specs`` on ``targets`` relative to the run start ``t0`` (monotonic)."""

    specs: tuple[FaultSpec, ...]
    targets: FaultTargets
    history: Recorder
    seed: int
    #: Who sits behind which proxy group; ``None``: ``targets.groups`` groups, unsplit.
    layout: ProxyLayout | None = None
    active: dict[str, FaultSpec] = field(default_factory=dict)
    failed: int = 0
    _heals: dict[str, Heal] = field(default_factory=dict)

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
        groups = self._pick_groups(index, spec.target, spec.clients)
        hit = self.layout.clients_in(groups) if self.layout is not None else None
        # The window opens before the fault is applied: its first effects (the resyncs of an
        # epoch reset, the disconnects of a kill) happen while the apply call is in flight.
        self.history.write(
            None,
            Fault("start", spec.kind, name, spec.target, spec.attrs, groups=groups, clients=hit),
        )
        try:
            runner = RUNNERS.get(spec.kind)
            if runner is None:
                raise FaultError(f"unknown fault kind {spec.kind!r}")
            applying = asyncio.ensure_future(
                runner(FaultCall(spec, groups, self.targets, self.history, self.seed))
            )
            try:
                heal = await asyncio.shield(applying)
            except asyncio.CancelledError:
                # The run ends while the fault is being applied (a slow apply on a busy
                # machine): it takes effect anyway, so wait for it and heal it at once
                # rather than leave the clients behind it cut off through the drain.
                heal = await applying
                self._heals[name] = heal
                self.active[name] = spec
                await self._heal(name)
                raise
        except SynccliError as exc:
            self.failed += 1
            self.history.write(
                None, Fault("error", spec.kind, name, spec.target, spec.attrs, error=str(exc))
            )
            return
        self._heals[name] = heal
        self.active[name] = spec
        try:
            # The heal is due at its scheduled time, however long the apply took (a fault
            # over a thousand connections can take seconds): its ``end`` record says when
            # it actually happened.
            await asyncio.sleep(max(0.0, t0 + spec.at_s + spec.for_s - time.monotonic()))
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

    def _pick_groups(self, index: int, share: float, clients: str = "all") -> list[int]:
        """A seeded choice of ``share`` of the proxy groups of ``clients`` (at least one)."""
        if self.layout is None:
            pool = list(range(self.targets.groups))
        else:
            pool = self.layout.groups_of(clients)
        count = min(len(pool), max(1, math.ceil(share * len(pool) - 1e-9)))
        rng = random.Random(f"{self.seed}:fault:{index}")
        return sorted(rng.sample(pool, count))


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it, swallowing its cancellation."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
