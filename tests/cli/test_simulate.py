"""`synccli simulate`'s command line: help and usage errors (exit 2, one sentence)."""

from __future__ import annotations

from click.testing import CliRunner

from synccli.cli.main import cli


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_help_names_the_main_options_and_exit_codes() -> None:
    code, output = _invoke("--help")
    assert code == 0
    for option in ("--clients", "--scenario", "--no-faults", "--url", "--db", "--toxiproxy"):
        assert option in output
    assert "3 inconclusive" in output
    assert "--inject-bug" not in output  # hidden: a self-test tool, not a user option


def test_bad_values_are_usage_errors() -> None:
    assert _invoke("--clients", "0")[0] == 2
    code, output = _invoke("--url", "http://127.0.0.1:8765/ws")
    assert code == 2 and "must be a WebSocket URL" in output
    code, output = _invoke("--scenario", "no-such-scenario")
    assert code == 2 and "no scenario named 'no-such-scenario'" in output
    code, output = _invoke("--inject-bug", "no-such-bug")
    assert code == 2


def test_overrides_are_validated_against_the_scenario(tmp_path: object) -> None:
    code, output = _invoke("--no-faults", "--clients", "2", "--writers", "3")
    assert code == 2
    assert "writers" in output
