"""The server's event loop: asyncio's by default, uvloop (the ``fast`` extra) on request or
with ``auto`` when installed, and a real server answering on each."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.errors import ConfigError
from synccli.server import loop
from synccli.server.config import ServerConfig
from tests.server.helpers import ServerProcess, appt, db_url, seeded_store


def test_auto_takes_uvloop_when_installed_and_asyncio_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    assert loop.resolve("auto") == "uvloop"
    assert loop.loop_factory("auto") is uvloop.new_event_loop
    assert loop.loop_factory("asyncio") is None
    monkeypatch.setattr(loop, "uvloop_available", lambda: False)
    assert loop.resolve("auto") == "asyncio"
    assert loop.loop_factory("auto") is None


def test_an_unknown_or_missing_loop_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="one of auto, asyncio, uvloop"):
        ServerConfig(db_url(tmp_path), event_loop="tokio")
    monkeypatch.setattr(loop, "uvloop_available", lambda: False)
    missing = r"uvloop is not installed: pip install 'synccli\[fast\]'"
    with pytest.raises(ConfigError, match=missing):
        ServerConfig(db_url(tmp_path), event_loop="uvloop")
    ServerConfig(db_url(tmp_path), event_loop="auto")  # falls back, no error
    assert ServerConfig(db_url(tmp_path)).event_loop == "asyncio"


def test_serve_refuses_an_unknown_loop_as_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--event-loop", "tokio"])
    assert result.exit_code == 2
    assert "'tokio' is not one of 'auto', 'asyncio', 'uvloop'" in result.output


def test_uvloop_factory_makes_a_uvloop_loop() -> None:
    factory = loop.loop_factory("uvloop")
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_write_is_committed_and_answered_on_either_loop(tmp_path: Path, event_loop: str) -> None:
    seeded_store(tmp_path).close()
    server = ServerProcess(db_url(tmp_path), "--event-loop", event_loop)
    try:
        args = ["checkin", appt(2), "--url", server.url, "--request-id", "op-1"]
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 0, done.output
        assert "Present (version 2, sequence 2026-11-26#1" in done.output
    finally:
        assert server.stop() == 0
