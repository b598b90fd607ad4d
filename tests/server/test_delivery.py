"""Acks, re-sends, 4000 after max_retries, slow consumer 4001."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from synccli.server.app import SyncServer
from synccli.store import open_store
from tests.conftest import seconds
from tests.server.helpers import DATE, aio, client, db_url, running_server


def counter(server: SyncServer, name: str) -> int:
    assert server.services is not None
    return server.services.metrics.counts[name]


@aio
async def test_unacked_event_is_resent_then_connection_closed_4000(tmp_path: Path) -> None:
    timeout = seconds(0.2)
    async with (
        running_server(tmp_path, ack_timeout_s=timeout, max_retries=2) as server,
        client(server) as a,
    ):
        await a.subscribe()
        await a.write(1)
        sends = [await a.expect("appointments_updated", timeout=3) for _ in range(3)]
        assert len({(e["id"], e["sequenceNum"]) for e in sends}) == 1  # same id and seq
        with pytest.raises(ConnectionClosed):
            await a.recv(timeout=3)
        assert a.ws.close_code == 4000
        assert counter(server, "retries_total") == 2
        assert counter(server, "ack_timeouts_total") == 3
        assert counter(server, "ack_exhausted_closes_total") == 1
        assert "synccli_retries_total 2" in server.services.metrics.render()  # type: ignore[union-attr]


@aio
async def test_acked_events_are_not_resent(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, ack_timeout_s=seconds(0.1), max_retries=1, heartbeat_s=seconds(0.5)
    ) as server:
        async with client(server) as a:
            sub = await a.subscribe()
            await a.write(1)
            one = await a.expect("appointments_updated")
            await a.send({"type": "ack", "messageId": one["id"]})
            await a.write(2)
            two = await a.expect("appointments_updated")
            await a.send({"type": "ack", "date": DATE, "sequenceNum": 2, "epoch": sub["epoch"]})
            await a.expect("heartbeat", timeout=3)  # well past every ack deadline
            assert [m for m in a.stash if m["type"] == "appointments_updated"] == []
            assert two["sequenceNum"] == 2
        assert counter(server, "acks_total") == 2
        assert counter(server, "retries_total") == 0


@aio
async def test_slow_consumer_is_closed_4001(tmp_path: Path) -> None:
    store = open_store(db_url(tmp_path))
    store.init_schema()
    store.seed(DATE, 1000)  # ~170 kB snapshots fill the socket buffers quickly
    store.close()
    async with running_server(tmp_path, send_queue=4) as server, client(server, max_queue=1) as a:
        for _ in range(150):
            await a.send({"type": "get_snapshot", "date": DATE})
        for _ in range(int(seconds(20) / 0.05)):
            if counter(server, "slow_consumer_closes_total"):
                break
            await asyncio.sleep(0.05)
        assert counter(server, "slow_consumer_closes_total") == 1
        with pytest.raises(ConnectionClosed):
            for _ in range(200):
                await a.recv(timeout=10)
        assert a.ws.close_code == 4001
