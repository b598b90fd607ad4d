"""wss:// and https:// end to end with a self-signed certificate made in the test: the
server, ``checkin``, and a whole ``simulate --tls`` run (per-client JWTs, through the proxy)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from synccli.cli.main import cli
from synccli.client.tls import client_context
from synccli.errors import ConfigError
from synccli.harness.certs import self_signed
from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.tokens import mint_token
from tests.conftest import seconds
from tests.server.helpers import DATE, Client, aio, db_url, running_server, seeded_store

SECRET = "k" * 40


def https_get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=seconds(5), context=context) as response:
        return response.status, response.read().decode()


@aio
async def test_wss_end_to_end_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    trust = client_context("wss://x", str(cert))
    assert trust is not None  # a wss:// URL's context
    async with running_server(tmp_path, tls_cert=str(cert), tls_key=str(key)) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        async with (
            connect(server.url, ssl=trust, compression=None) as reader,
            connect(server.url, ssl=trust, compression=None) as writer,
        ):
            a, b = Client(reader), Client(writer)
            epoch = (await a.subscribe())["epoch"]
            assert (await b.write(1))["ok"] is True
            event = await a.expect("appointments_updated")
            assert (event["epoch"], event["sequenceNum"]) == (epoch, 1)
        base = f"https://127.0.0.1:{server.port}"
        status, body = await asyncio.to_thread(https_get, base + "/healthz", trust)
        assert status == 200 and json.loads(body)["status"] == "ok"
        # Plain ws:// to the TLS port, and a client that does not trust the certificate.
        with pytest.raises((InvalidMessage, OSError, EOFError)):
            await connect(server.url.replace("wss://", "ws://"), open_timeout=seconds(5))
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(server.url, ssl=ssl.create_default_context())


@aio
async def test_bad_tls_files_are_start_up_errors(tmp_path: Path) -> None:
    seeded_store(tmp_path).close()
    cert, key = self_signed(tmp_path / "a")
    other_cert, _ = self_signed(tmp_path / "b")
    for tls_cert, tls_key, words in (
        (str(tmp_path / "missing.pem"), str(key), "no such file"),
        (str(other_cert), str(key), "belong together"),
        (str(key), str(cert), "belong together"),
    ):
        config = ServerConfig(db_url=db_url(tmp_path), port=0, tls_cert=tls_cert, tls_key=tls_key)
        with pytest.raises(ConfigError, match=words):
            await SyncServer(config).start()
    with pytest.raises(ConfigError, match="CA file"):
        client_context("wss://x", str(tmp_path / "nope.pem"))


def test_checkin_over_wss_with_a_signed_token(tmp_path: Path) -> None:
    seeded_store(tmp_path).close()
    cert, key = self_signed(tmp_path / "tls")
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_text(SECRET)
    argv = [sys.executable, "-m", "synccli", "serve", "--db", db_url(tmp_path), "--port", "0"]
    argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        [*argv, "--jwt-secret-file", str(secret_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("synccli serve: listening on wss://127.0.0.1:"), line
        url = line.split()[4]
        runner = CliRunner()
        signed = mint_token(SECRET, "nurse.jo", (DATE,), True, 600)
        args = ["checkin", f"{DATE}-0001", "--url", url, "--ca", str(cert)]
        done = runner.invoke(cli, args, env={"SYNCCLI_TOKEN": signed})
        assert done.exit_code == 0, done.output
        assert "Present (version 2" in done.output
        untrusted = runner.invoke(cli, args[:4], env={"SYNCCLI_TOKEN": signed})
        assert untrusted.exit_code == 2 and "--ca" in untrusted.output
        reader = mint_token(SECRET, "viewer", (DATE,), False, 600)
        refused = runner.invoke(cli, [*args, "--state", "Seated"], env={"SYNCCLI_TOKEN": reader})
        assert refused.exit_code == 1 and "forbidden" in refused.output
    finally:
        proc.terminate()
        proc.wait(timeout=seconds(10))


SCENARIO = """
description = "a short run over TLS with per-client tokens, clients dropped once"
seed = 11
duration_s = 5
clients = 4
writers = 2
rate = 20

[[faults]]
name = "drop"
kind = "down"
at_s = 1.0
for_s = 1.5
target = 0.5
"""


@pytest.mark.slow
def test_simulate_tls_runs_a_scenario_with_jwt_and_wss_end_to_end(tmp_path: Path) -> None:
    scenario = tmp_path / "tls.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "synccli", "simulate", "--tls", "--scenario", str(scenario)]
    result = subprocess.run(
        [*argv, "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=seconds(180),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["lost"] == 0
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    urls = {r["url"] for r in records if r.get("k") == "client"}
    assert urls and all(url.startswith("wss://127.0.0.1:") for url in urls)
    assert any(r.get("k") == "disconnect" for r in records)  # the fault hit, they came back
    log = (out / "server.log").read_text()
    assert "listening on wss://" in log and "eyJ" not in log
    import sqlite3

    with sqlite3.connect(out / "synccli.db") as db:
        actors = {
            json.loads(row[0]).get("actor") for row in db.execute("SELECT result FROM requests")
        }
    assert actors == {"c000", "c001"}  # the writers, each under its own token
