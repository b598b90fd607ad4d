"""A cluster with TLS and per-user tokens: every node serves the one certificate and
verifies tokens of the one secret; HAProxy passes TLS through (``mode tcp``) and checks the
nodes' health over TLS. A client verifies the certificate end to end and still learns which
node it reached."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from synccli.harness.certs import self_signed
from synccli.harness.cluster import Cluster, NodeSecurity, start_cluster
from synccli.protocol.node import HEADER
from synccli.tokens import TokenSource
from tests.bus.helpers import require_redis
from tests.conftest import require, seconds
from tests.server.helpers import aio, db_url, seeded_store


async def _nothing(_cluster: Cluster) -> None:
    return None


@aio
async def test_nodes_share_one_certificate_and_one_token_secret_behind_haproxy(
    tmp_path: Path,
) -> None:
    require_redis()
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    seeded_store(tmp_path).close()
    cert, key = self_signed(tmp_path / "tls", ["127.0.0.1"])
    secret = secrets.token_hex(32)
    tokens = TokenSource(secret, "harness")
    trust = ssl.create_default_context(cafile=str(cert))
    async with contextlib.AsyncExitStack() as stack:
        cluster = await start_cluster(
            stack,
            tmp_path,
            db_url(tmp_path),
            3,
            ["--log-level", "warning"],
            tokens.token(),
            _nothing,
            security=NodeSecurity((str(cert), str(key)), str(cert), secret),
        )
        assert cluster.mode == "haproxy"
        config = (tmp_path / "haproxy.cfg").read_text()
        assert "mode tcp" in config and config.count("check-ssl") == 3
        entry = f"wss://{cluster.entry}/ws"

        async def open_as(sub: str) -> ClientConnection:
            headers = {"Authorization": f"Bearer {tokens.for_sub(sub).token()}"}
            return await connect(entry, ssl=trust, additional_headers=headers)

        async with asyncio.timeout(seconds(20)):
            # Held open, so that leastconn sends each next one to another node: every node
            # took a token of the shared secret, over the one certificate.
            held = [await open_as(f"user{i}") for i in range(3)]
            try:
                reached = {ws.response.headers[HEADER] for ws in held if ws.response}
                assert reached == {"node1", "node2", "node3"}
            finally:
                for ws in held:
                    await ws.close()
            # No token, or one of another secret: refused by the node, through the balancer.
            with pytest.raises(InvalidStatus) as refused:
                await connect(entry, ssl=trust)
            assert refused.value.response.status_code == 401
            stranger = TokenSource(secrets.token_hex(32), "stranger").token()
            with pytest.raises(InvalidStatus) as forged:
                await connect(
                    entry, ssl=trust, additional_headers={"Authorization": f"Bearer {stranger}"}
                )
            assert forged.value.response.status_code == 401
            # Plain WebSocket to the balancer reaches a TLS node: no answer it can read.
            with pytest.raises(InvalidMessage):
                await connect(entry.replace("wss://", "ws://"), open_timeout=seconds(5))
