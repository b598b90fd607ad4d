"""HTTP on the same port, graceful shutdown, and a SIGKILLed server process restarted."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import seconds
from tests.server.helpers import (
    DATE,
    Client,
    ServerProcess,
    aio,
    appt,
    client,
    db_url,
    running_server,
    seeded_store,
)


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(seconds(5)):
        raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


@aio
async def test_healthz_and_metrics(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        await a.subscribe()
        await a.write(1)
        status, body = await http_get(server.port, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, text = await http_get(server.port, "/metrics")
        assert status == 200
        for name in (
            "events_committed_total 1",
            "events_sent_total 1",
            "connections 1",
            "acks_total 0",
            "retries_total 0",
            "ack_timeouts_total 0",
            "replays_total 0",
            "resyncs_total 0",
        ):
            assert f"synccli_{name}\n" in text, name
        assert (await http_get(server.port, "/_admin/db-fault?mode=verify"))[0] == 404


@aio
async def test_healthz_503_when_database_unreachable(tmp_path: Path) -> None:
    async with running_server(tmp_path, relay_poll_s=0.02) as server:
        (tmp_path / "sync.db").chmod(0o000)
        os.rename(tmp_path, tmp_path.with_name(tmp_path.name + "-gone"))
        try:
            assert server.services is not None
            server.services.store.close()  # drop open handles so the next call reconnects
            for _ in range(200):
                status, body = await http_get(server.port, "/healthz")
                if status == 503:
                    break
                await asyncio.sleep(0.02)
            assert status == 503 and json.loads(body)["status"] == "db_unavailable"
            assert json.loads(body)["reason"]  # the probe's failure, in one line
            async with client(server) as a:
                result = await a.write(1)
                assert result["error"]["code"] == "db_unavailable"
        finally:
            os.rename(tmp_path.with_name(tmp_path.name + "-gone"), tmp_path)
            (tmp_path / "sync.db").chmod(0o644)


@aio
async def test_fault_hooks_make_writes_fail_without_writing(tmp_path: Path) -> None:
    async with running_server(tmp_path, fault_hooks=True) as server, client(server) as a:
        status, body = await http_get(server.port, "/_admin/db-fault?mode=verify&rate=1&seed=3")
        assert status == 200 and json.loads(body)["fault"]["mode"] == "verify"
        result = await a.write(1)
        assert result["error"]["code"] == "db_unavailable"
        assert (await http_get(server.port, "/_admin/db-fault?mode=off"))[0] == 200
        assert (await a.write(1, request_id="after"))["sequenceNum"] == 1
        epoch = (await a.subscribe())["epoch"]
        status, body = await http_get(server.port, f"/_admin/reset-channel?date={DATE}")
        assert status == 200 and json.loads(body)["epoch"] != epoch
        assert (await a.expect("resync_required"))["reason"] == "epoch_changed"
        assert (await http_get(server.port, "/_admin/db-fault?mode=nope"))[0] == 400


@aio
async def test_graceful_shutdown_closes_1001(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        await a.subscribe()
        await server.close()
        with pytest.raises(ConnectionClosed):
            await a.recv()
        assert a.ws.close_code == 1001
        await server.close()  # idempotent


@aio
async def test_sigkill_after_burst_loses_nothing(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    seeded_store(tmp_path, count=30).close()
    first = ServerProcess(db_url(tmp_path))
    try:
        async with connect(first.url) as ws:
            a = Client(ws)
            epoch = (await a.subscribe())["epoch"]
            for n in range(1, 31):  # pipelined burst; all confirmed before the kill
                await a.send(
                    {
                        "type": "update_appointment_state",
                        "requestId": f"b{n}",
                        "appointmentId": appt(n),
                        "state": "Present",
                    }
                )
            results = [await a.expect("result") for _ in range(30)]
            assert all(r["ok"] for r in results)
            first.kill()
    finally:
        first.proc.kill()
    second = ServerProcess(db_url(tmp_path))
    try:
        async with connect(second.url) as ws:
            b = Client(ws)
            sub: dict[str, Any] = await b.subscribe(since=(epoch, 0))
            assert sub["recovered"] is True and sub["epoch"] == epoch
            assert [e["sequenceNum"] for e in sub["events"]] == list(range(1, 31))
            assert {e["actionId"] for e in sub["events"]} == {f"b{n}" for n in range(1, 31)}
            after = await b.write(1, "Seated")
            assert after["sequenceNum"] == 31
    finally:
        assert second.stop() == 0
