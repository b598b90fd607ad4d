"""Across nodes: one node, three nodes on a Redis bus, three nodes on the polling relay.

    python benchmarks/nodes.py                       # about a minute
    python benchmarks/nodes.py --seconds 10 --subscribers 20 --variants 1-node,3-bus
    python benchmarks/nodes.py --rounds 3 --kills 0 --variants 1-node,3-bus   # alternating

Each variant starts its ``synccli serve`` processes on a fresh SQLite file (and, for
``3-bus``, a private ``redis-server`` on a free port). Writers on node 1 check in at
``--rate`` writes per second in total (the same load for every variant; 0 for as fast as
round trips allow); subscribers on the *other* nodes (on node 1 itself for ``1-node``)
apply and ack cumulatively every 250 ms. Reported per variant, from the same run:

* commit→apply p50/p99 (ms): receipt time minus the event's ``committedAt``;
* delivered/s: events applied per second, all subscribers together;
* relay DB queries/s per node while idle: ``synccli_relay_db_queries_total`` over
  ``--idle`` seconds with no writes, the subscribers still connected (the polling relay's
  cost that the bus removes);
* for three nodes, when HAProxy is installed: time to recover after ``node_kill``, p50/p99
  over ``--kills`` kills, from the SIGKILL until a client of the killed node, reconnected
  through HAProxy, applied an event committed after the kill (so it holds every event
  committed before it); writes keep running at ``--kill-rate`` on node 1. Definition and
  method: ``failover.py``. Target: p99 ≤ 2 s.

The budget (DESIGN.md): across nodes on the bus, commit→apply p99 ≤ 1.5 times one node.
On a shared machine one round is noisy: ``--rounds N`` runs the variants N times in turn
(1-node, 3-bus, …, 1-node, 3-bus, …) and gives each variant's ratio of median p99s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from failover import measure_kills
from tabulate import tabulate
from websockets.asyncio.client import connect

from synccli.domain.values import parse_iso_ms
from synccli.harness.cluster import HaproxyProcess, RedisProcess, node_name
from synccli.harness.server_process import ServerProcess, free_port
from synccli.store import open_store

#: Today: the server refuses dates outside its window (``--days-back``/``--days-ahead``).
DATE = datetime.now(UTC).date().isoformat()
APPOINTMENTS = 64
ACK_DELAY_S = 0.25
VARIANTS = ("1-node", "3-bus", "3-poll")


@dataclass
class Received:
    latencies_ms: list[float] = field(default_factory=list)
    count: int = 0


async def subscriber(url: str, into: Received, stop: asyncio.Event) -> None:
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "date": DATE}))
        last = 0
        acked = 0
        next_ack = time.monotonic() + ACK_DELAY_S
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.1):
                    raw = await ws.recv()
            except TimeoutError:
                raw = None
            now = time.time()
            if raw is not None:
                message = json.loads(raw)
                if message["type"] == "appointments_updated" and message["sequenceNum"] > last:
                    last = message["sequenceNum"]
                    committed = parse_iso_ms(message["committedAt"]).timestamp()
                    into.latencies_ms.append((now - committed) * 1000)
                    into.count += 1
                elif message["type"] == "subscribed":
                    last = message["sequenceNum"]
            if last > acked and time.monotonic() >= next_ack:
                ack = {"type": "ack", "date": DATE, "sequenceNum": last}
                await ws.send(json.dumps(ack))
                acked, next_ack = last, time.monotonic() + ACK_DELAY_S


async def writer(url: str, index: int, writers: int, rate: float, stop: asyncio.Event) -> int:
    """Toggle this writer's own appointments Scheduled ⇄ Present until ``stop``, at its
    share of ``rate`` writes per second (0: as fast as round trips allow)."""
    mine = [n for n in range(1, APPOINTMENTS + 1) if n % writers == index]
    state = dict.fromkeys(mine, "Scheduled")
    done = 0
    interval = writers / rate if rate > 0 else 0.0
    due = time.monotonic()
    async with connect(url, compression=None, max_size=None) as ws:
        for n in itertools.cycle(mine):
            if stop.is_set():
                return done
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            state[n] = "Present" if state[n] == "Scheduled" else "Scheduled"
            request = {
                "type": "update_appointment_state",
                "requestId": f"b{index}-{done}-{time.time_ns()}",
                "appointmentId": f"{DATE}-{n:04d}",
                "state": state[n],
            }
            await ws.send(json.dumps(request))
            while json.loads(await ws.recv())["type"] != "result":
                pass
            done += 1
    return done


async def run_variant(
    variant: str,
    workdir: Path,
    seconds: float,
    subscribers: int,
    writers: int,
    rate: float,
    idle: float,
    kill: KillPlan,
) -> list[Any]:
    db_url = f"sqlite:///{workdir / (variant + '.db')}"
    store = open_store(db_url)
    store.init_schema()
    store.seed(DATE, APPOINTMENTS)
    store.close()
    count = 1 if variant == "1-node" else 3
    async with contextlib.AsyncExitStack() as stack:
        options: list[str] = ["--log-level", "warning"]
        if variant == "3-bus":
            redis = RedisProcess(workdir / "redis.log", port=free_port(), workdir=workdir)
            stack.push_async_callback(redis.stop)
            await redis.start()
            options += ["--bus", redis.url]
        nodes = [
            ServerProcess(
                db_url,
                "127.0.0.1",
                free_port(),
                workdir / f"{variant}-{i}.log",
                [*options, "--node-name", node_name(i)],
            )
            for i in range(count)
        ]
        for node in nodes:
            stack.push_async_callback(node.stop)
        await asyncio.gather(*(node.start() for node in nodes))
        readers = nodes if count == 1 else nodes[1:]
        received = Received()
        stop = asyncio.Event()
        subs = [
            asyncio.create_task(subscriber(readers[i % len(readers)].ws_url, received, stop))
            for i in range(subscribers)
        ]
        await asyncio.sleep(1.0)  # every subscription answered
        received.latencies_ms.clear()
        received.count = 0
        write_stop = asyncio.Event()
        started = time.monotonic()
        tasks = [
            asyncio.create_task(writer(nodes[0].ws_url, i, writers, rate, write_stop))
            for i in range(writers)
        ]
        await asyncio.sleep(seconds)
        write_stop.set()
        written = sum(await asyncio.gather(*tasks))
        await asyncio.sleep(1.0)  # the last events arrive
        elapsed = time.monotonic() - started
        # Idle with the subscribers still there: the relay polls only subscribed dates.
        before = [(await n.metrics()).get("synccli_relay_db_queries_total", 0) for n in nodes]
        await asyncio.sleep(idle)
        after = [(await n.metrics()).get("synccli_relay_db_queries_total", 0) for n in nodes]
        stop.set()
        await asyncio.gather(*subs)
        recovery: list[object] = [None] * 5
        if count > 1 and kill.kills > 0 and HaproxyProcess.available():
            recovery = await kill_phase(nodes, workdir / variant, writers, kill)
    lat = sorted(received.latencies_ms)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    idle_rate = statistics.mean((a - b) / idle for a, b in zip(after, before, strict=True))
    return [
        variant,
        written,
        round(statistics.median(lat), 2) if lat else None,
        round(p99, 2),
        round(received.count / elapsed),
        round(idle_rate, 2),
        *recovery,
    ]


@dataclass(frozen=True)
class KillPlan:
    kills: int
    clients: int
    rate: float
    down_s: float


async def kill_phase(
    nodes: list[ServerProcess], workdir: Path, writers: int, plan: KillPlan
) -> list[object]:
    """Kill nodes under writes on node 1; the recovery columns (``KillResult.row``)."""
    workdir.mkdir(exist_ok=True)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(writer(nodes[0].ws_url, i, writers, plan.rate, stop))
        for i in range(writers)
    ]
    try:
        result = await measure_kills(nodes, workdir, DATE, plan.clients, plan.kills, plan.down_s)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return result.row()


@click.command()
@click.option("--seconds", type=float, default=5.0, show_default=True, help="Seconds of writes.")
@click.option("--subscribers", type=int, default=10, show_default=True, help="Subscribers.")
@click.option("--writers", type=int, default=4, show_default=True, help="Concurrent writers.")
@click.option(
    "--rate", type=float, default=200.0, show_default=True, help="Writes/s in total (0: max)."
)
@click.option("--idle", type=float, default=5.0, show_default=True, help="Idle seconds.")
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option(
    "--kills", type=int, default=6, show_default=True, help="node_kill repeats (0: none)."
)
@click.option(
    "--kill-clients", type=int, default=30, show_default=True, help="Clients behind HAProxy."
)
@click.option(
    "--kill-rate", type=float, default=50.0, show_default=True, help="Writes/s during kills."
)
@click.option(
    "--down", type=float, default=1.0, show_default=True, help="Seconds a killed node stays down."
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Times the variants run, in turn.",
)
def main(
    seconds: float,
    subscribers: int,
    writers: int,
    rate: float,
    idle: float,
    variants: str,
    kills: int,
    kill_clients: int,
    kill_rate: float,
    down: float,
    rounds: int,
) -> None:
    """Run each variant and print one table (and the ratios to one node)."""
    chosen = variants.split(",")
    for variant in chosen:
        if variant not in VARIANTS:
            raise click.BadParameter(f"unknown variant {variant!r}", param_hint="--variants")
    rows = []
    for round_no in range(1, rounds + 1):
        for variant in chosen:
            with tempfile.TemporaryDirectory(prefix="synccli-nodes-") as tmp:
                row = asyncio.run(
                    run_variant(
                        variant,
                        Path(tmp),
                        seconds,
                        subscribers,
                        writers,
                        rate,
                        idle,
                        KillPlan(kills, kill_clients, kill_rate, down),
                    )
                )
            rows.append([round_no, *row])
    headers = [
        "round",
        "variant",
        "writes",
        "p50 ms",
        "p99 ms",
        "delivered/s",
        "idle relay q/s/node",
        "kills",
        "clients moved",
        "never",
        "kill→caught up p50 ms",
        "p99 ms",
    ]
    click.echo(tabulate(rows, headers=headers))
    p99s = {v: [r[4] for r in rows if r[1] == v and r[4] == r[4]] for v in chosen}
    base = p99s.get("1-node")
    if not base:
        return
    for variant, values in p99s.items():
        if variant != "1-node" and values:
            each = ", ".join(f"{v / b:.2f}x" for v, b in zip(values, base, strict=False))
            median = statistics.median(values) / statistics.median(base)
            click.echo(f"{variant}: p99 {median:.2f}x one node (median of rounds; each: {each})")


if __name__ == "__main__":
    main()
