"""Heal → caught up: clients cut off together for a while, with and without reconnect probes.

    python benchmarks/recovery.py                               # N = 100 and 1000, a third cut
    python benchmarks/recovery.py --clients 1000 --cut all --workers 2

Each run is a real ``synccli simulate`` (``harness.run.Simulation``): the server as its own
process on a fresh SQLite file, the embedded proxy in front of it, N clients over ``--workers``
processes, one writer at ``--rate`` writes/s that is never cut. After ``--warmup`` seconds
a share of the clients' proxy groups goes ``down`` (the proxies stop listening) for
``--offline`` seconds, then heals; the load goes on for ``--after`` seconds more. For every
N and variant:

* ``backoff``: refused attempts grow the exponential backoff (0.05 s doubling, capped at
  5 s, full jitter), the behaviour before probing;
* ``probe``: refused attempts are retried every ``probe/2..probe`` seconds, and the first
  delay after a drop is up to ``probe`` too, ``probe`` scaled to the fleet
  (``FleetConfig.reconnect_rate``, docs/client.md "Reconnects").

Columns: the report's heal → caught-up time of the clients that were behind (p50/p99/max,
``faults[].recovery``), how many never caught up, connection attempts per cut client while
offline, connects per cut client after the heal (1 is ideal: no reconnect storm), the
server process's CPU (``/proc``, % of one core) in the first second after the heal and its
peak over any 100 ms slice of it, the CPU seconds the harness used over the whole run (this
process, the check included, and every child but the server: client workers, the embedded
proxy), and the workers' loop lag p99/max. On a machine shared with other work the CPU
seconds hold up better than the latencies, which grow whenever the run gets less of it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from synccli.harness.run import RunConfig, Simulation
from synccli.harness.scenario import Scenario, parse_scenario

VARIANTS = ("backoff", "probe")
#: Proxy groups: a cut of ``third`` takes one of three, ``all`` nine of ten (every client
#: but the writer's tenth, which keeps writing).
CUTS = {"third": (3, 1 / 3), "all": (10, 0.9)}
SAMPLE_S = 0.05
HARNESS_SAMPLE_S = 0.25
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    clients: int
    variant: str
    behind: int
    never: int
    p50: float | None
    p99: float | None
    max: float | None
    attempts: float
    connects: float
    cpu_1s: float
    cpu_peak: float
    harness_cpu: float
    lag_p99: float | None
    lag_max: float | None
    verdict: str


def writer_safe_seed(groups: int, share: float) -> int:
    """A run seed whose fault pick leaves group 0 (the writer's) up: the pick is the
    scheduler's (``harness.schedule.FaultRunner._pick_groups``) for the first fault."""
    count = min(groups, max(1, math.ceil(share * groups - 1e-9)))
    for seed in range(1, 1000):
        if 0 not in random.Random(f"{seed}:fault:0").sample(range(groups), count):
            return seed
    raise click.ClickException("no seed leaves the writer's group up")


def scenario(
    clients: int, cut: str, rate: float, warmup: float, offline: float, after: float
) -> Scenario:
    groups, share = CUTS[cut]
    text = f"""
name = "recovery-bench"
description = "clients cut off together, then healed"
seed = {writer_safe_seed(groups, share)}
duration_s = {warmup + offline + after}
clients = {clients}
writers = 1
rate = {rate}
groups = {groups}
appointments = 200
drain_timeout_s = 30

[[faults]]
name = "offline"
kind = "down"
at_s = {warmup}
for_s = {offline}
target = "{share * 100:g}%"
"""
    return parse_scenario(text, "benchmarks/recovery.py")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


async def sample_cpu(sim: Simulation, samples: list[tuple[float, float]]) -> None:
    """(t since the run's t0, server CPU seconds) every ``SAMPLE_S``."""
    while True:
        server = sim.server
        if server is not None and server.pid is not None:
            cpu = cpu_seconds(server.pid)
            if cpu is not None:
                samples.append((time.monotonic() - sim.t0, cpu))
        await asyncio.sleep(SAMPLE_S)


def harness_pids(server: int | None) -> list[int]:
    """This process and its children but the server (workers, proxy)."""
    me = os.getpid()
    pids = [me]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server:
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me:
            pids.append(int(entry.name))
    return pids


async def sample_harness(sim: Simulation, samples: list[tuple[float, dict[int, float]]]) -> None:
    """(t since the run's t0, CPU seconds per harness process) every ``HARNESS_SAMPLE_S``."""
    while True:
        server = sim.server.pid if sim.server is not None else None
        cpu = {pid: c for pid in harness_pids(server) if (c := cpu_seconds(pid)) is not None}
        samples.append((time.monotonic() - sim.t0, cpu))
        await asyncio.sleep(HARNESS_SAMPLE_S)


def harness_cpu(samples: list[tuple[float, dict[int, float]]]) -> float:
    """CPU seconds the harness processes used from the first sample to the last (each
    process from its first sample to its last: a child that ended misses < one interval)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for _, cpu in samples:
        for pid, seconds in cpu.items():
            first.setdefault(pid, seconds)
            last[pid] = seconds
    # A child first seen after the start had used little yet; count it from 0.
    initial = samples[0][1] if samples else {}
    return sum(last[pid] - (first[pid] if pid in initial else 0.0) for pid in last)


def cpu_after(samples: list[tuple[float, float]], start: float, span: float) -> tuple[float, float]:
    """% of one core over ``[start, start + span]`` and the peak over 100 ms slices."""
    inside = [(t, c) for t, c in samples if start <= t <= start + span]
    if len(inside) < 2:
        return math.nan, math.nan
    total = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 100
    step = max(1, round(0.1 / SAMPLE_S))
    peaks = [
        (inside[i + step][1] - inside[i][1]) / (inside[i + step][0] - inside[i][0]) * 100
        for i in range(len(inside) - step)
    ]
    return total, max(peaks, default=math.nan)


def history_counts(
    run_dir: Path, group_count: int
) -> tuple[float, set[str], Counter[str], Counter[str]]:
    """The heal time, the cut clients (client ``i`` is behind proxy ``i % group_count``),
    and per cut client the attempts while offline and the connects after the heal."""
    start = heal = math.nan
    groups: list[int] = []
    clients: dict[str, int] = {}
    lines = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    for entry in lines:
        if entry.get("k") == "fault" and entry.get("phase") == "start":
            start, groups = entry["t"], entry.get("groups") or []
        elif entry.get("k") == "fault" and entry.get("phase") == "end":
            heal = entry["t"]
        elif entry.get("k") == "client":
            clients[entry["c"]] = int(entry["c"][1:])
    cut = {c for c, i in clients.items() if i % group_count in groups}
    attempts: Counter[str] = Counter()
    connects: Counter[str] = Counter()
    for entry in lines:
        c = entry.get("c")
        if c not in cut:
            continue
        if entry.get("k") == "connect_failed" and start <= entry["t"] <= heal:
            attempts[c] += 1
        elif entry.get("k") == "connect" and entry["t"] >= heal:
            connects[c] += 1
    return heal, cut, attempts, connects


async def one_run(config: RunConfig, clients: int, variant: str) -> Row:
    """One simulation, its server sampled throughout; the row of the table."""
    sim = Simulation(config)
    samples: list[tuple[float, float]] = []
    harness: list[tuple[float, dict[int, float]]] = []
    samplers = [
        asyncio.create_task(sample_cpu(sim, samples)),
        asyncio.create_task(sample_harness(sim, harness)),
    ]
    try:
        outcome = await sim.run(asyncio.Event())
    finally:
        for sampler in samplers:
            sampler.cancel()
    summary = outcome.summary
    heal, cut, attempts, connects = history_counts(outcome.run_dir, config.scenario.groups)
    window: dict[str, Any] = next((f for f in summary.faults if f.get("recovery")), {})
    recovery = window.get("recovery") or {"behind": 0, "never": 0, "ms": {}}
    cpu_1s, cpu_peak = cpu_after(samples, heal, 1.0)
    harness.append((time.monotonic() - sim.t0, {os.getpid(): cpu_seconds(os.getpid()) or 0.0}))
    n = max(1, len(cut))
    return Row(
        clients=clients,
        variant=variant,
        behind=recovery["behind"],
        never=recovery["never"],
        p50=recovery["ms"].get("p50"),
        p99=recovery["ms"].get("p99"),
        max=recovery["ms"].get("max"),
        attempts=sum(attempts.values()) / n,
        connects=sum(connects.values()) / n,
        cpu_1s=cpu_1s,
        cpu_peak=cpu_peak,
        harness_cpu=harness_cpu(harness),
        lag_p99=summary.loop_lag_ms.get("p99"),
        lag_max=summary.loop_lag_ms.get("max"),
        verdict=summary.verdict,
    )


@click.command()
@click.option("--clients", default="100,1000", show_default=True, help="Comma-separated N.")
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option("--cut", type=click.Choice(sorted(CUTS)), default="third", show_default=True)
@click.option("--workers", default=2, show_default=True, help="Client processes.")
@click.option("--rate", default=10.0, show_default=True, help="Writes per second.")
@click.option(
    "--warmup",
    type=float,
    default=None,
    help="Seconds of load before the cut [default: 5 + the connect ramp, N / 250 s, twice].",
)
@click.option("--offline", default=10.0, show_default=True, help="Seconds cut off.")
@click.option("--after", default=5.0, show_default=True, help="Seconds of load after the heal.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each run's folder (history, report) here instead of a temporary directory.",
)
def main(
    clients: str,
    variants: str,
    cut: str,
    workers: int,
    rate: float,
    warmup: float | None,
    offline: float,
    after: float,
    out: Path | None,
) -> None:
    """Time from heal to caught up, with and without reconnect probes, in the same run."""
    chosen = [v for v in variants.split(",") if v]
    if unknown := sorted(set(chosen) - set(VARIANTS)):
        raise click.UsageError(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="synccli-recovery-") as tmp:
        root = out or Path(tmp)
        for n in (int(x) for x in clients.split(",")):
            for variant in chosen:
                config = RunConfig(
                    scenario=scenario(n, cut, rate, warmup or 5 + 2 * n / 250, offline, after),
                    out_dir=root / f"{n}-{variant}",
                    workers=min(workers, n),
                    probe=variant == "probe",
                    progress=False,
                )
                rows.append(asyncio.run(one_run(config, n, variant)))
                click.echo(f"N={n} {variant}: done", err=True)
    click.echo(
        tabulate(
            [
                [
                    r.clients,
                    r.variant,
                    r.behind,
                    r.never,
                    r.p50,
                    r.p99,
                    r.max,
                    f"{r.attempts:.1f}",
                    f"{r.connects:.2f}",
                    f"{r.cpu_1s:.0f}",
                    f"{r.cpu_peak:.0f}",
                    f"{r.harness_cpu:.1f}",
                    r.lag_p99,
                    r.lag_max,
                    r.verdict,
                ]
                for r in rows
            ],
            headers=[
                "N",
                "variant",
                "behind",
                "never",
                "heal→caught-up p50 ms",
                "p99 ms",
                "max ms",
                "attempts/cut client offline",
                "connects/cut client after",
                "server CPU % 1 s",
                "peak % 100 ms",
                "harness CPU s",
                "loop lag p99 ms",
                "lag max ms",
                "verdict",
            ],
            floatfmt=".0f",
        )
    )


if __name__ == "__main__":
    main()
