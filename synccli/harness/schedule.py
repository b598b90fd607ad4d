"""Run a scenario's fault schedule: apply each fault at its time, heal it after its span.

Each fault is applied by the runner of its kind (``fault_runners.RUNNERS``, one per kind of
the registry). Every step is recorded in the history (``fault`` records with phase
start/end/error), so the report can break metrics down per fault window and tell a fault
that failed to apply from one that left no trace. A heal's evidence (counters that prove
the fault acted) goes on the ``end`` record as ``evidence``, and the report judges the
window by it.

Readers and writers sit behind separate proxies (``ProxyLayout``), so a fault can hit a
share of the readers' proxies or of the writers' only (a fault's ``clients``); its ``start``
record names the groups and the clients behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from synccli.client.local import client_id
from synccli.errors import FaultError, SynccliError
from synccli.harness.fault_runners import RUNNERS, FaultCall, FaultTargets, Heal, Recorder
from synccli.harness.scenario import FaultSpec, Scenario
from synccli.history import Fault

__all__ = ["FaultRunner", "FaultTargets", "ProxyLayout", "cancel_quietly"]


@dataclass(frozen=True)
class ProxyLayout:
    """Which proxy group each client connects through. With ``split`` (a fault picks
    readers or writers), writers (the first ``writers`` clients) get their own groups, about
    their share of ``groups``, readers the rest; otherwise, or with fewer than two groups or
    one kind of client only, client ``i`` is in group ``i % groups``, as it always was.
    """

    clients: int
    writers: int
    groups: int
    split: bool = True

    @classmethod
    def of(cls, scenario: Scenario) -> ProxyLayout:
        """The layout of ``scenario``: split when one of its faults picks a kind of client."""
        split = any(fault.clients != "all" for fault in scenario.faults)
        return cls(scenario.clients, scenario.writers, scenario.groups, split)

    @property
    def writer_groups(self) -> int:
        """How many groups only writers use (0 when the kinds are not split)."""
        readers = self.clients - self.writers
        if not self.split or self.groups < 2 or self.writers == 0 or readers == 0:
            return 0
        share = round(self.groups * self.writers / self.clients)
        return min(self.writers, self.groups - 1, max(1, share))

    @property
    def total(self) -> int:
        """How many proxy groups are used (no group is left empty)."""
        split = self.writer_groups
        if split == 0:
            return min(self.groups, self.clients)
        return split + min(self.clients - self.writers, self.groups - split)

    def group_of(self, index: int) -> int:
        """The group client ``index`` connects through."""
        split = self.writer_groups
        if split == 0:
            return index % self.total
        if index < self.writers:
            return index % split
        return split + (index - self.writers) % (self.total - split)

    def groups_of(self, clients: str) -> list[int]:
        """The groups of ``clients`` (``all``, ``readers`` or ``writers``)."""
        split = self.writer_groups
        if clients == "writers" and split:
            return list(range(split))
        if clients == "readers" and split:
            return list(range(split, self.total))
        return list(range(self.total))

    def clients_in(self, groups: list[int]) -> list[str]:
        """The ids of the clients behind ``groups``."""
        chosen = set(groups)
        return [client_id(i) for i in range(self.clients) if self.group_of(i) in chosen]

    def client_urls(self, group_urls: list[str]) -> list[str]:
        """One URL per client, its group's proxy (the fleet gives client ``i`` the
        ``i``-th)."""
        return [group_urls[self.group_of(i)] for i in range(self.clients)]


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
