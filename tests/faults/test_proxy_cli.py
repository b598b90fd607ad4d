"""``synccli proxy`` as a real subprocess: the ready line, Ctrl+C, a busy port, --help."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

from click.testing import CliRunner

from synccli.cli.main import cli
from tests.conftest import seconds

COMMAND = [sys.executable, "-c", "from synccli.cli.main import main; main()", "proxy"]


def test_runs_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"synccli proxy: Toxiproxy API on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "/version", timeout=seconds(5)) as reply:
            assert json.loads(reply.read()) == {"version": "2.12.0"}
        process.send_signal(signal.SIGINT)
        assert process.wait(seconds(10)) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_port_in_use_exits_4_with_one_sentence() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*COMMAND, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=seconds(20),
        )
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: cannot listen on 127.0.0.1:{port} (address already in use): "
        "choose another --port or stop the process using it\n"
    )


def test_help_describes_the_command() -> None:
    result = CliRunner().invoke(cli, ["proxy", "--help"])
    assert result.exit_code == 0
    assert "Toxiproxy's HTTP API" in result.output
    for option in ("--host", "--port", "--seed"):
        assert option in result.output
