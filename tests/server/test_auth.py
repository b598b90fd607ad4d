"""Per-user signed tokens, the static token, Origin, and auth that is never silently off.

The rights rule is tested twice: in the pure core (``ServerSession`` with an
``Authorisation``, no socket) and through a real server on loopback with real JWTs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from synccli.cli.main import cli
from synccli.errors import ConfigError
from synccli.protocol.authz import Authorisation, date_of_appointment
from synccli.server.auth import (
    OriginPolicy,
    is_loopback,
    origin_policy,
    redact,
)
from synccli.server.config import ServerConfig
from synccli.store import open_store
from synccli.tokens import TokenSource, mint_token, parse_ttl
from tests.conftest import seconds
from tests.protocol.server_peer import DATE, Backend, Peer, appointment_id
from tests.server.helpers import Client, aio, db_url, running_server, seeded_store

SECRET = "s" * 40
OTHER_DATE = "2026-12-01"


def token(
    channels: tuple[str, ...] = (DATE,), write: bool = True, ttl: float = 600, sub: str = "alice"
) -> str:
    return mint_token(SECRET, sub, channels, write, ttl)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def http(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=seconds(5)) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# ---------------------------------------------------------------------- the pure core


def write_message(request_id: str) -> dict[str, Any]:
    return {
        "type": "update_appointment_state",
        "requestId": request_id,
        "appointmentId": appointment_id(1),
        "state": "Present",
    }


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path)
    yield b
    b.close()


def test_core_refuses_reads_and_writes_outside_the_rights_and_writes_nothing(
    backend: Backend,
) -> None:
    peer = Peer(backend, auth=Authorisation("bob", ("2026-12-*",), write=True))
    for message in (
        {"type": "subscribe", "date": DATE},
        {"type": "get_snapshot", "date": DATE},
        {"type": "request_missed_events", "date": DATE, "lastSequenceNum": 0},
    ):
        (answer,) = peer.send(message)
        assert (answer["type"], answer["code"]) == ("error", "forbidden"), message
    (result,) = peer.send(write_message("w1"))
    assert result["type"] == "result" and result["ok"] is False
    assert result["error"]["code"] == "forbidden"
    assert not backend.hub.has_subscribers(DATE)
    assert backend.store.channel(DATE).head_seq == 0
    assert peer.session.counts["forbidden_total"] == 4
    reader = Peer(backend, auth=Authorisation("carol", (DATE,), write=False))
    assert reader.subscribe()["type"] == "subscribed"
    (refused,) = reader.send(write_message("w2"))
    assert refused["error"]["code"] == "forbidden"
    assert backend.store.channel(DATE).head_seq == 0


def test_core_records_the_actor_of_a_write(backend: Backend) -> None:
    peer = Peer(backend, auth=Authorisation("alice", ("2026-11-*",), write=True))
    (result,) = peer.send(write_message("w1"))
    assert result["ok"] is True
    # The same request id from another user is not the same write.
    other = Peer(backend, auth=Authorisation("mallory", ("*",), write=True))
    (reused,) = other.send(write_message("w1"))
    assert reused["error"]["code"] == "request_id_reused"


def test_core_closes_4003_once_the_credential_expires(backend: Backend) -> None:
    peer = Peer(backend, auth=Authorisation("alice", ("*",), expires=3.0))
    peer.subscribe()
    assert peer.session.next_deadline() == 3.0  # before the first heartbeat (5 s)
    assert peer.tick(2.9) == [] and peer.closed is None
    peer.tick(3.0)
    assert peer.closed is not None and peer.closed.code == 4003
    late = Peer(backend, auth=Authorisation("alice", ("*",), expires=10.0))
    assert late.send({"type": "get_snapshot", "date": DATE}, now=11.0) == []
    assert late.closed is not None and late.closed.code == 4003


def test_date_patterns_and_appointment_dates() -> None:
    auth = Authorisation("a", ("2026-11-*", "2027-01-02"), write=True)
    assert auth.may_read("2026-11-26") and auth.may_read("2027-01-02")
    assert not auth.may_read("2026-12-01") and not auth.may_read("2027-01-03")
    assert auth.may_write("2026-11-26-0001") and not auth.may_write("2026-12-01-0001")
    assert not auth.may_write("walk-in-7")  # no date in the id: only "*" may write it
    assert Authorisation("a", ("*",)).may_write("walk-in-7")
    assert date_of_appointment("2026-11-26-0042") == "2026-11-26"
    assert date_of_appointment("2026-11-2x-0042") is None


# ---------------------------------------------------------------------- a real server


@aio
async def test_forbidden_date_over_the_wire_and_nothing_written(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET) as server:
        headers = bearer(token(channels=(OTHER_DATE,)))
        async with connect(server.url, additional_headers=headers, compression=None) as ws:
            c = Client(ws)
            await c.send({"type": "subscribe", "date": DATE})
            assert (await c.expect("error"))["code"] == "forbidden"
            result = await c.write(1)
            assert result["ok"] is False and result["error"]["code"] == "forbidden"
        store = open_store(db_url(tmp_path))
        try:
            assert store.channel(DATE).head_seq == 0
            assert all(row.version == 1 for row in store.snapshot(DATE)[1])
        finally:
            store.close()


@aio
async def test_writes_carry_the_tokens_sub_to_the_requests_table(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET) as server:
        headers = bearer(token(sub="dr.who"))
        async with connect(server.url, additional_headers=headers, compression=None) as ws:
            assert (await Client(ws).write(1, request_id="audit-1"))["ok"] is True
    import sqlite3

    with sqlite3.connect(tmp_path / "sync.db") as db:
        (stored,) = db.execute(
            "SELECT result FROM requests WHERE request_id = 'audit-1'"
        ).fetchone()
    assert json.loads(stored)["actor"] == "dr.who"


@aio
async def test_expired_jwt_closes_4003_and_a_fresh_one_reconnects(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET, jwt_leeway_s=0.0) as server:
        short = token(ttl=2)
        async with connect(server.url, additional_headers=bearer(short), compression=None) as ws:
            await Client(ws).subscribe()
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(seconds(10)):
                    while True:
                        await ws.recv()
            assert ws.close_code == 4003 and ws.close_reason == "token expired"
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, additional_headers=bearer(short))
        assert refused.value.response.status_code == 401
        async with connect(server.url, additional_headers=bearer(token())) as ws:
            assert (await Client(ws).subscribe())["type"] == "subscribed"


@aio
async def test_bad_tokens_are_refused_401(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET) as server:
        forged = jwt.encode(
            {"sub": "x", "channels": ["*"], "write": True, "exp": 4102444800}, "t" * 40
        )
        no_channels = jwt.encode({"sub": "x", "exp": 4102444800}, SECRET)
        for headers in ({}, bearer("nonsense"), bearer(forged), bearer(no_channels)):
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url, additional_headers=headers)
            assert refused.value.response.status_code == 401, headers
        # A browser's ?token= works like the header.
        async with connect(f"{server.url}?token={token()}") as ws:
            assert (await Client(ws).subscribe())["type"] == "subscribed"


@aio
async def test_public_key_tokens_es256(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    async with running_server(tmp_path, jwt_public_key=public) as server:
        signed = mint_token(private, "ann", ("*",), False, 600, "ES256")
        async with connect(server.url, additional_headers=bearer(signed)) as ws:
            c = Client(ws)
            assert (await c.subscribe())["type"] == "subscribed"
            assert (await c.write(1))["error"]["code"] == "forbidden"  # write: false
        hs = mint_token(SECRET, "ann", ("*",), True, 600)
        with pytest.raises(InvalidStatus):
            await connect(server.url, additional_headers=bearer(hs))


@aio
async def test_static_token_still_guards_a_single_user_server(tmp_path: Path) -> None:
    async with running_server(tmp_path, token="t0k3n") as server:
        with pytest.raises(InvalidStatus):
            await connect(server.url, additional_headers=bearer("wrong"))
        async with connect(server.url, additional_headers=bearer("t0k3n")) as ws:
            assert (await Client(ws).write(1))["ok"] is True


@aio
async def test_foreign_origin_gets_403_at_the_upgrade(tmp_path: Path) -> None:
    allowed = ("https://board.clinic.example",)
    async with running_server(tmp_path, allowed_origins=allowed) as server:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, origin=Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
        for origin in (allowed[0], f"http://127.0.0.1:{server.port}"):
            async with connect(server.url, origin=Origin(origin)) as ws:
                assert (await Client(ws).subscribe())["type"] == "subscribed"
        async with connect(server.url) as ws:  # not a browser: no Origin
            assert (await Client(ws).subscribe())["type"] == "subscribed"
        assert server.services is not None
        assert server.services.metrics.counts["origin_refused_total"] == 1
    async with (
        running_server(tmp_path) as server,
        connect(server.url, origin=Origin("https://evil.example")) as ws,
    ):
        assert (await Client(ws).subscribe())["type"] == "subscribed"  # loopback, no list


def test_origin_policy_off_only_on_loopback_without_a_list() -> None:
    assert not origin_policy((), "127.0.0.1").check
    assert not origin_policy((), "::1").check and not origin_policy((), "localhost").check
    assert origin_policy((), "0.0.0.0").check and origin_policy((), "192.168.1.5").check
    assert origin_policy(("https://a.example",), "127.0.0.1").check
    policy = OriginPolicy(frozenset({"https://a.example"}), check=True)
    assert policy.allows(None, "board:8765") and policy.allows("https://a.example", "x")
    assert policy.allows("https://board:8765", "board:8765")
    assert not policy.allows("https://b.example", "board:8765")
    assert not policy.allows("null", "board:8765")
    assert is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")


@aio
async def test_metrics_and_health_details_need_the_token_or_the_metrics_port(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET, metrics_port=0) as server:
        port, metrics_port = server.port, server.metrics_port
        assert metrics_port is not None
        status, body = await asyncio.to_thread(http, port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert (await asyncio.to_thread(http, port, "/metrics"))[0] == 401
        status, body = await asyncio.to_thread(http, port, "/healthz", bearer(token()))
        assert status == 200 and "sync.db" in json.loads(body)["db"]
        assert (await asyncio.to_thread(http, port, "/metrics", bearer(token())))[0] == 200
        status, body = await asyncio.to_thread(http, metrics_port, "/healthz")
        assert status == 200 and "sync.db" in json.loads(body)["db"]
        status, text = await asyncio.to_thread(http, metrics_port, "/metrics")
        assert status == 200 and "synccli_auth_failures_total" in text
        assert (await asyncio.to_thread(http, metrics_port, "/ws"))[0] == 404


@aio
async def test_fault_hooks_need_an_admin_token(tmp_path: Path) -> None:
    async with running_server(tmp_path, jwt_secret=SECRET, fault_hooks=True) as server:
        path = "/_admin/db-fault?mode=off"
        narrow = bearer(token(channels=(DATE,)))
        assert (await asyncio.to_thread(http, server.port, path, narrow))[0] == 401
        admin = bearer(token(channels=("*",)))
        assert (await asyncio.to_thread(http, server.port, path, admin))[0] == 200


# ---------------------------------------------------------------------- never silently off


@pytest.mark.parametrize(
    "overrides",
    [
        {"token": ""},
        {"token": "  "},
        {"jwt_secret": ""},
        {"token": "a", "jwt_secret": SECRET},
        {"tls_cert": "cert.pem"},
    ],
)
def test_config_refuses_empty_or_conflicting_secrets(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ServerConfig(db_url="sqlite:///x.db", **overrides)


def test_config_repr_never_shows_a_secret() -> None:
    config = ServerConfig(db_url="sqlite:///x.db", jwt_secret=SECRET)
    assert SECRET not in repr(config)


def test_empty_token_is_a_start_up_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    serve = ["serve", "--db", db_url(tmp_path), "--port", "0"]
    for args, env in (
        ([], {"SYNCCLI_TOKEN": ""}),
        (["--token", ""], {}),
        (["--token-file", str(empty)], {}),
        ([], {"SYNCCLI_JWT_SECRET": ""}),
        (["--jwt-secret", "short"], {}),
    ):
        result = CliRunner().invoke(cli, [*serve, *args], env=env)
        assert result.exit_code == 2, (args, env, result.output)
        assert "Traceback" not in result.output
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "sync.db").exists()  # refused before anything was opened


def test_secrets_come_from_files_and_the_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    minted = CliRunner().invoke(
        cli,
        ["token", "--sub", "ops", "--channels", "2026-*,2027-01-*", "--write", "--ttl", "8h"],
        env={"SYNCCLI_JWT_SECRET": SECRET},
    )
    assert minted.exit_code == 0, minted.output
    claims = jwt.decode(minted.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ops" and claims["channels"] == ["2026-*", "2027-01-*"]
    assert claims["write"] is True and claims["exp"] - claims["iat"] == 8 * 3600
    from_file = CliRunner().invoke(
        cli, ["token", "--sub", "ops", "--channels", "*", "--jwt-secret-file", str(secret_file)]
    )
    assert from_file.exit_code == 0
    assert jwt.decode(from_file.output.strip(), SECRET, algorithms=["HS256"])["write"] is False
    for bad in (["--ttl", "soon"], ["--channels", "x;y"], ["--jwt-secret", "short"]):
        args = ["token", "--sub", "ops", "--channels", "*", *bad]
        result = CliRunner().invoke(cli, args, env={"SYNCCLI_JWT_SECRET": SECRET})
        assert result.exit_code == 2, bad
    assert parse_ttl("90") == 90 and parse_ttl("15m") == 900 and parse_ttl("7d") == 604800


def test_token_source_mints_a_fresh_token_per_call() -> None:
    source = TokenSource(SECRET, "harness", ("*",), True, 600).for_sub("c007")
    first = jwt.decode(source.token(), SECRET, algorithms=["HS256"])
    assert first["sub"] == "c007" and first["channels"] == ["*"]


# ---------------------------------------------------------------------- logs


def test_redact_removes_every_form_of_credential() -> None:
    jwt_text = token()
    for line in (
        f"< GET /ws?token={jwt_text} HTTP/1.1",
        "< GET /ws?a=1&token=plain-secret HTTP/1.1",
        f"< Authorization: Bearer {jwt_text}",
        "< authorization: Bearer plain-secret",
        f"{{'Authorization': 'Bearer {jwt_text}'}}",
    ):
        cleaned = redact(line)
        assert jwt_text not in cleaned and "plain-secret" not in cleaned, cleaned
        assert "redacted" in cleaned
    assert redact("the token is hunter2!", ["hunter2"]) == "the token is [redacted]!"


def _serve_debug(tmp_path: Path, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``synccli serve --log-level debug`` with stderr to ``log``; its URL."""
    argv = [sys.executable, "-m", "synccli", "serve", "--db", db_url(tmp_path), "--port", "0"]
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*argv, "--log-level", "debug", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("synccli serve: listening on ws://"), line
    return proc, line.split()[4]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=seconds(10))


@pytest.mark.parametrize("mode", ["jwt", "static"])
def test_tokens_never_appear_in_the_log_at_debug_level(tmp_path: Path, mode: str) -> None:
    seeded_store(tmp_path).close()
    log = tmp_path / "server.log"
    static = "static-" + secrets.token_hex(16)
    if mode == "jwt":
        good, wrong = token(), mint_token("w" * 40, "eve", ("*",), True, 600)
        proc, url = _serve_debug(tmp_path, log, "--jwt-secret", SECRET)
    else:
        good, wrong = static, "wrong-" + secrets.token_hex(16)
        proc, url = _serve_debug(tmp_path, log, "--token", static)

    async def traffic() -> None:
        async with connect(f"{url}?token={good}") as ws:
            await Client(ws).write(1)
        async with connect(url, additional_headers=bearer(good)) as ws:
            await Client(ws).subscribe()
        attempts: tuple[dict[str, Any], ...] = ({"additional_headers": bearer(wrong)}, {})
        for attempt in attempts:
            target = url if attempt else f"{url}?token={wrong}"
            with pytest.raises(InvalidStatus):
                await connect(target, **attempt)

    try:
        asyncio.run(traffic())
    finally:
        _stop(proc)
    text = log.read_text()
    assert "GET /ws?token=[redacted]" in text and "Authorization: Bearer [redacted]" in text
    for secret in (good, wrong, SECRET, static):
        assert secret not in text
    assert "visible to every user of this machine" in text  # the secret was in argv


def test_http_paths_other_than_ws_answer_without_a_handshake(tmp_path: Path) -> None:
    seeded_store(tmp_path).close()

    async def go() -> None:
        async with running_server(tmp_path, jwt_secret=SECRET) as server:
            status, _ = await asyncio.to_thread(http, server.port, "/nowhere", bearer(token()))
            assert status == 404

    asyncio.run(go())


def test_start_up_log_says_what_protects_the_server(caplog: pytest.LogCaptureFixture) -> None:
    from synccli.server.app import SyncServer
    from synccli.server.auth import Gate, NoAuth, StaticToken

    caplog.set_level("INFO", logger="synccli.server.app")
    exposed = SyncServer(ServerConfig(db_url="sqlite:///x.db", host="0.0.0.0"))
    exposed._log_security(Gate(NoAuth(), origin_policy((), "0.0.0.0")))
    text = caplog.text
    assert "NO AUTHENTICATION on 0.0.0.0" in text and "no TLS" in text
    assert "origin check on" in text
    caplog.clear()
    local = SyncServer(ServerConfig(db_url="sqlite:///x.db", token="t"))
    local._log_security(Gate(StaticToken("t"), origin_policy((), "127.0.0.1")))
    assert "NO AUTHENTICATION" not in caplog.text and "no TLS" not in caplog.text
    assert "origin check off: bound to loopback" in caplog.text


def test_simulate_refuses_tls_with_an_external_url() -> None:
    args = ["simulate", "--tls", "--url", "wss://127.0.0.1:9/ws", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--url" in result.output


@aio
async def test_simulated_client_comes_back_with_a_fresh_token_after_4003(tmp_path: Path) -> None:
    from synccli.client.simulated import SimulatedClient
    from tests.client.builders import RecordingSink, client_config

    async with running_server(tmp_path, jwt_secret=SECRET, jwt_leeway_s=0.0) as server:
        sink = RecordingSink()
        source = TokenSource(SECRET, "c001", (DATE,), True, 2)
        client = SimulatedClient(client_config("c001", server.url, seed=1, tokens=source), sink)
        client.start()
        try:

            def expired_then_back(s: RecordingSink) -> bool:
                closes = [r for r in s.of("disconnect") if r.get("code") == 4003]
                return bool(closes) and len(s.of("connect")) >= 2

            await sink.wait_for(expired_then_back, seconds(15))
        finally:
            await client.close()
        assert not sink.of("connect_failed")  # the second handshake had a fresh token
