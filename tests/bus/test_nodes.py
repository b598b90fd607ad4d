"""Three ``serve`` processes on one SQLite WAL file share events through a private Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from synccli.harness.server_process import free_port
from synccli.protocol.node import HEADER
from tests.bus.helpers import (
    collectors,
    head,
    health,
    metrics,
    nodes,
    redis,
    require_redis,
    toggle,
    wait_status,
)
from tests.conftest import seconds
from tests.server.helpers import aio, running_server

#: Long enough that within a test only the bus (or a gap it reveals) can deliver a foreign
#: write while the bus is up: the safety poll would come too late.
NO_SAFETY_POLL = ("--bus-safety-poll", "600")


@aio
async def test_a_write_on_any_node_reaches_every_node_in_commit_order(tmp_path: Path) -> None:
    require_redis()
    async with redis(tmp_path) as bus:
        with nodes(tmp_path, [bus.url] * 3, *NO_SAFETY_POLL) as servers:
            async with collectors(servers) as seen:
                # Concurrent writers on all three nodes: commits interleave, and a node may
                # hear a foreign event before its own earlier one finished publishing.
                await asyncio.gather(*(toggle(n, i + 1, 20) for i, n in enumerate(servers)))
                final = head(tmp_path)
                assert final == 60
                for collector in seen:
                    await collector.wait_for(final)
                    collector.check(final)
                for node in servers:
                    counts = await metrics(node)
                    assert counts["synccli_bus_published_total"] == 20
                    assert counts["synccli_bus_consumed_total"] == 40
                    assert (await health(node))["bus"] == {"kind": "redis", "up": True}
                # Idle with the bus up and subscribers here: the relay does not poll the
                # database (a window, not a wait: the polling relay would query 20 times).
                before = [(await metrics(n))["synccli_relay_db_queries_total"] for n in servers]
                await asyncio.sleep(seconds(1))
                after = [(await metrics(n))["synccli_relay_db_queries_total"] for n in servers]
                assert after == before


@aio
async def test_redis_restarted_mid_run_loses_nothing_and_the_bus_resumes(tmp_path: Path) -> None:
    require_redis()
    port = free_port()
    async with redis(tmp_path, port) as bus:
        with nodes(tmp_path, [bus.url] * 3, *NO_SAFETY_POLL) as servers:
            async with collectors(servers) as seen:
                await toggle(servers[0], 1, 4)
                await bus.stop()
                for node in servers:
                    await wait_status(node, "degraded")
                # Degraded: the nodes serve from the database (fast polling).
                await asyncio.gather(*(toggle(n, i + 1, 4) for i, n in enumerate(servers)))
                for collector in seen:
                    await collector.wait_for(head(tmp_path))
                before = [(await metrics(n))["synccli_bus_consumed_total"] for n in servers]
                async with redis(tmp_path, port):
                    for node in servers:
                        await wait_status(node, "ok")
                    await asyncio.gather(*(toggle(n, i + 1, 4) for i, n in enumerate(servers)))
                    final = head(tmp_path)
                    assert final == 4 + 12 + 12
                    for collector in seen:
                        await collector.wait_for(final)
                        collector.check(final)
                    after = [(await metrics(n))["synccli_bus_consumed_total"] for n in servers]
    # Heard on the restarted bus: each node's share of the other two nodes' last 8 writes.
    assert [a - b for a, b in zip(after, before, strict=True)] == [8, 8, 8]


def test_an_unreachable_bus_at_start_is_one_sentence_and_exit_4(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    db = f"sqlite:///{tmp_path}/x.db"
    bus = f"redis://127.0.0.1:{port}/0"
    result = subprocess.run(
        [sys.executable, "-m", "synccli", "serve", "--db", db, "--port", "0", "--bus", bus],
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: cannot reach the bus at redis://127.0.0.1:{port}/0")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "x.db").exists()  # refused before touching the database


@aio
async def test_a_named_node_says_its_name_on_every_websocket_upgrade(tmp_path: Path) -> None:
    async with running_server(tmp_path, node_name="node2") as server, connect(server.url) as ws:
        assert ws.response is not None and ws.response.headers[HEADER] == "node2"
    async with running_server(tmp_path) as server, connect(server.url) as ws:
        assert ws.response is not None and HEADER not in ws.response.headers


def test_a_node_name_that_cannot_be_a_header_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.db"
    result = subprocess.run(
        [sys.executable, "-m", "synccli", "serve", "--db", db, "--port", "0",
         "--node-name", "node 1\r\nX-Evil: 1"],
        capture_output=True, text=True, timeout=seconds(30),
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: a node name is 1 to 64 letters"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()
