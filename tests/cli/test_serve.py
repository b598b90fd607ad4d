"""``synccli serve`` and ``synccli checkin`` through Click's CliRunner."""

from __future__ import annotations

import gc
import io
import logging
import socket
from pathlib import Path

from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.server.auth import Redactor, install_redaction
from synccli.server.logs import configure_logging, own_handlers
from tests.server.helpers import ServerProcess, appt, db_url, seeded_store


def test_serve_help_lists_options_and_hides_test_hooks() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--db",
        "--host",
        "--port",
        "--token",
        "--heartbeat",
        "--ack-timeout",
        "--max-retries",
        "--send-queue",
        "--max-replay",
        "--retention",
    ):
        assert option in result.output
    assert "--inject-bug" not in result.output and "--fault-hooks" not in result.output


def test_serve_bad_options_are_usage_errors() -> None:
    runner = CliRunner()
    for args in (["--port", "70000"], ["--heartbeat", "0"], ["--max-retries", "-1"]):
        result = runner.invoke(cli, ["serve", *args])
        assert result.exit_code == 2, args
    result = runner.invoke(cli, ["serve", "--inject-bug", "gremlins"])
    assert result.exit_code == 2
    assert "skip-events" in result.output and "gremlins" in result.output


def test_serve_options_read_their_environment_variables() -> None:
    for variable, option in (
        ("SYNCCLI_HEARTBEAT", "--heartbeat"),
        ("SYNCCLI_ACK_TIMEOUT", "--ack-timeout"),
        ("SYNCCLI_MAX_RETRIES", "--max-retries"),
        ("SYNCCLI_SEND_QUEUE", "--send-queue"),
        ("SYNCCLI_MAX_REPLAY", "--max-replay"),
        ("SYNCCLI_RETENTION", "--retention"),
        ("SYNCCLI_DB_TIMEOUT", "--db-timeout"),
        ("SYNCCLI_PORT", "--port"),
    ):
        result = CliRunner().invoke(cli, ["serve"], env={variable: "not-a-number"})
        assert result.exit_code == 2, variable
        assert "Invalid value for" in result.output and f"'{option}'" in result.output, variable
        assert f"env var: '{variable}'" in result.output, variable


def test_serve_port_in_use_is_one_sentence_exit_4(tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--db", db_url(tmp_path), "--port", str(port)])
    assert result.exit_code == 4
    assert gc.get_threshold() == thresholds  # the server's GC tuning does not leak out
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_serve_in_process_leaves_the_test_runners_log_handlers_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    assert root.handlers  # pytest's own capture handlers
    before = [(handler, list(handler.filters)) for handler in root.handlers]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["serve", "--db", db_url(tmp_path), "--port", str(port), "--token", "s" * 32]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 4, result.output
    assert [(handler, list(handler.filters)) for handler in root.handlers] == before
    assert not any(isinstance(f, Redactor) for h in root.handlers for f in h.filters)


def test_redaction_goes_on_synccli_s_own_handler_only() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    foreign = logging.StreamHandler(io.StringIO())
    try:
        configure_logging("info")
        (ours,) = own_handlers()
        assert isinstance(ours, logging.StreamHandler)
        out = io.StringIO()
        ours.setStream(out)
        root.addHandler(foreign)
        install_redaction(["hunter2-secret"])
        install_redaction(["hunter2-secret"])  # again: still one redactor
        logging.getLogger("synccli.test").warning("the token is hunter2-secret")
        assert "the token is [redacted]" in out.getvalue()
        assert [type(f) for f in ours.filters].count(Redactor) == 1
        assert not foreign.filters
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_logging_configured_by_the_embedding_application_is_left_alone() -> None:
    root, quiet = logging.getLogger(), logging.getLogger("websockets")
    saved, level, quiet_level = root.handlers[:], root.level, quiet.level
    theirs = logging.StreamHandler(io.StringIO())
    root.handlers[:] = [theirs]
    quiet.setLevel(logging.NOTSET)
    try:
        assert configure_logging("info") is None
        assert root.handlers == [theirs] and quiet.level == logging.NOTSET
        root.handlers.clear()
        assert configure_logging("info") is not None  # our own handler: websockets quieted
        assert quiet.level == logging.WARNING
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        quiet.setLevel(quiet_level)


def test_serve_unusable_database_is_exit_4(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    result = CliRunner().invoke(cli, ["serve", "--db", url, "--port", "0"])
    assert result.exit_code == 4
    assert "missing" in result.output and "Traceback" not in result.output


def test_checkin_against_a_live_server(tmp_path: Path) -> None:
    seeded_store(tmp_path).close()
    server = ServerProcess(db_url(tmp_path), "--token", "t0k")
    try:
        runner = CliRunner()
        args = ["checkin", appt(2), "--url", server.url, "--token", "t0k", "--request-id", "op-1"]
        done = runner.invoke(cli, args)
        assert done.exit_code == 0, done.output
        assert "Present (version 2, sequence 2026-11-26#1" in done.output
        assert runner.invoke(cli, args).output == done.output  # same requestId: same result
        rejected = runner.invoke(
            cli, ["checkin", appt(2), "--url", server.url, "--token", "t0k", "--state", "Dismissed"]
        )
        assert rejected.exit_code == 1 and "invalid_transition" in rejected.output
        refused = runner.invoke(cli, ["checkin", appt(2), "--url", server.url])
        assert refused.exit_code == 2 and "token" in refused.output
    finally:
        assert server.stop() == 0


def test_checkin_unreachable_server_is_exit_4() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = CliRunner().invoke(cli, ["checkin", appt(1), "--url", f"ws://127.0.0.1:{port}/ws"])
    assert result.exit_code == 4
    assert "cannot reach the sync server" in result.output
    assert "Traceback" not in result.output
