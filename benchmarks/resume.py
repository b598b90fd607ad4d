"""Resume and snapshot against their floor: a client resuming ``--missed`` missed events and
taking a ``--appointments``-row snapshot from a real ``SyncServer`` on SQLite, over a real
WebSocket on 127.0.0.1, versus a bare websockets server that sends the same frames built
from the same rows read with one ``SELECT``, in the same run.

    python benchmarks/resume.py                          # 10,000 missed, 1,000 appointments
    python benchmarks/resume.py --missed 2000 --rounds 3

Client side, the same code for both servers: the real client core (``ChannelState``) sends
``subscribe`` (with ``since`` for a resume), parses the answer with the real codec, applies
every event or row to its state and sends its cumulative ack. The time is from sending
``subscribe`` until the ack is sent (resume) or the snapshot applied. Each server runs in
the benchmark's process; best and median of ``--rounds`` alternating rounds. Budgets
(DESIGN.md): resume < 1 s, snapshot < 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from tabulate import tabulate
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from synccli.domain.channels import WriteRequest
from synccli.protocol.channel import ChannelState
from synccli.protocol.messages import ErrorMessage, Subscribed, dumps, parse_server_message
from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.store import open_store

# A date of its own, inside the window the server serves (a year or so ahead).
DATE = (datetime.now(UTC).date() + timedelta(days=400)).isoformat()
STATES = ("Present", "Scheduled")


def prepare(db: Path, appointments: int, missed: int) -> None:
    """A date of ``appointments`` rows, then ``missed`` check-ins and undos."""
    store = open_store(f"sqlite:///{db}")
    store.init_schema()
    store.seed(DATE, appointments)
    ids = [row.appointment_id for row in store.snapshot(DATE)[1]]
    now = datetime.now(UTC)
    for n in range(missed):
        aid = ids[n % len(ids)]
        state = STATES[(n // len(ids)) % 2]
        store.write(WriteRequest(f"r{n}", aid, state), now)
    store.close()


async def _subscribe(ws: ClientConnection, state: ChannelState) -> None:
    """Send ``state``'s subscribe and apply the answer with the real client core."""
    await ws.send(dumps(state.subscribe().to_wire()))
    while True:
        msg = parse_server_message(await ws.recv())
        if isinstance(msg, Subscribed):
            state.on_subscribed(msg, time.monotonic())
            return
        if isinstance(msg, ErrorMessage):
            raise click.ClickException(f"the server refused the subscribe: {msg}")


async def _resume(url: str, epoch: str, since: int) -> float:
    """Seconds from ``subscribe`` (since ``since``) to the ack of everything after it."""
    state = ChannelState(DATE, max_buffer=1_000_000)
    state.epoch, state.seq = epoch, since
    async with connect(url, max_size=None) as ws:
        started = time.perf_counter()
        await _subscribe(ws, state)
        ack = state.take_ack()
        assert ack is not None and ack.seq is not None and ack.seq > since, "nothing was resumed"
        await ws.send(dumps(ack.to_wire()))
        return time.perf_counter() - started


async def _snapshot(url: str, rows: int) -> float:
    """Seconds from a fresh ``subscribe`` to its snapshot applied."""
    state = ChannelState(DATE)
    async with connect(url, max_size=None) as ws:
        started = time.perf_counter()
        await _subscribe(ws, state)
        elapsed = time.perf_counter() - started
        assert len(state.rows) == rows, f"snapshot of {len(state.rows)} rows, not {rows}"
        return elapsed


def _bare_handler(db: Path) -> Callable[[ServerConnection], Awaitable[None]]:
    """Answer ``subscribe`` with one SELECT and the frame spliced from its rows."""
    conn = sqlite3.connect(db)

    async def handler(ws: ServerConnection) -> None:
        async for text in ws:
            msg = json.loads(text)
            if msg.get("type") != "subscribe":
                continue
            epoch, head = conn.execute(
                "SELECT epoch, head_seq FROM channels WHERE date = ?", (DATE,)
            ).fetchone()
            since = msg.get("since")
            if since:
                rows = conn.execute(
                    "SELECT event_id, seq, request_id, payload, committed_at FROM events "
                    "WHERE date = ? AND seq > ? ORDER BY seq",
                    (DATE, since["sequenceNum"]),
                ).fetchall()
                events = ",".join(
                    f'{{"type":"appointments_updated","id":"{eid}","date":"{DATE}",'
                    f'"epoch":"{epoch}","sequenceNum":{seq},"requiresAck":true,'
                    f'"actionId":{json.dumps(rid)},"appointment":{payload},'
                    f'"committedAt":"{at}","replay":true}}'
                    for eid, seq, rid, payload, at in rows
                )
                body = f'"recovered":true,"events":[{events}]'
            else:
                rows = conn.execute(
                    "SELECT appointment_id, date, patient, state, state_time, version, "
                    "updated_at FROM appointments WHERE date = ? ORDER BY appointment_id",
                    (DATE,),
                ).fetchall()
                keys = ("appointmentId", "date", "patient", "state", "stateTime", "version")
                snapshot = json.dumps(
                    [dict(zip((*keys, "updatedAt"), row, strict=True)) for row in rows],
                    separators=(",", ":"),
                )
                body = f'"recovered":false,"snapshot":{snapshot}'
            await ws.send(
                f'{{"type":"subscribed","date":"{DATE}","epoch":"{epoch}",'
                f'"sequenceNum":{head},{body}}}'
            )

    return handler


async def run(db: Path, appointments: int, missed: int, rounds: int) -> list[list[object]]:
    server = SyncServer(ServerConfig(db_url=f"sqlite:///{db}", port=0, max_replay=missed))
    await server.start()
    bare = await serve(_bare_handler(db), "127.0.0.1", 0, max_size=None)
    bare_port = bare.sockets[0].getsockname()[1]
    urls = {"synccli": f"ws://127.0.0.1:{server.port}/ws", "bare": f"ws://127.0.0.1:{bare_port}"}
    conn = sqlite3.connect(db)
    epoch, head = conn.execute(
        "SELECT epoch, head_seq FROM channels WHERE date = ?", (DATE,)
    ).fetchone()
    conn.close()
    since = head - missed
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(rounds):
            for name, url in urls.items():
                times.setdefault(("resume", name), []).append(await _resume(url, epoch, since))
                times.setdefault(("snapshot", name), []).append(await _snapshot(url, appointments))
    finally:
        bare.close()
        await bare.wait_closed()
        await server.close()
    budgets = {"resume": 1.0, "snapshot": 0.2}
    rows: list[list[object]] = []
    for case, label in (
        ("resume", f"resume {missed:,}"),
        ("snapshot", f"snapshot {appointments:,}"),
    ):
        full, floor = times[case, "synccli"], times[case, "bare"]
        rows.append(
            [
                label,
                f"{min(full) * 1000:.0f}",
                f"{statistics.median(full) * 1000:.0f}",
                f"{min(floor) * 1000:.0f}",
                f"{statistics.median(floor) * 1000:.0f}",
                f"{min(full) / min(floor):.2f}",
                f"< {budgets[case] * 1000:.0f}",
                "ok" if min(full) < budgets[case] else "MISSED",
            ]
        )
    return rows


@click.command()
@click.option("--missed", default=10_000, show_default=True, help="Events to resume.")
@click.option("--appointments", default=1000, show_default=True, help="Snapshot rows.")
@click.option("--rounds", default=5, show_default=True, help="Alternating rounds.")
def main(missed: int, appointments: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="synccli-resume-") as scratch:
        db = Path(scratch) / "bench.db"
        started = time.perf_counter()
        prepare(db, appointments, missed)
        click.echo(
            f"{missed:,} events on {appointments:,} appointments written in "
            f"{time.perf_counter() - started:.0f} s"
        )
        rows = asyncio.run(run(db, appointments, missed, rounds))
    headers = [
        "case",
        "synccli best ms",
        "median",
        "bare best ms",
        "median",
        "ratio",
        "budget ms",
        "",
    ]
    click.echo(tabulate(rows, headers=headers))


if __name__ == "__main__":
    main()
