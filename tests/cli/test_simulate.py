"""`synccli simulate`'s command line: help, usage errors (exit 2, one sentence) and a real run
of the built-in default fitted to a short duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.faults import loss


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


@pytest.mark.slow
def test_the_default_scenario_fits_a_10_s_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real server process, clients and proxy faults; packet loss (a network namespace) is
    # left to the netns tests, so this runs the same everywhere.
    monkeypatch.setattr(loss, "check_available", lambda: "not in this test")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["simulate", "--duration", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    start = json.loads((out / "history.jsonl").read_text().splitlines()[0])
    config = start["config"]
    assert config["duration_s"] == 10
    assert [f["kind"] for f in config["faults"]] == ["down", "reset_peer"]
    assert all(f["at_s"] + f["for_s"] <= 10 for f in config["faults"])
    assert all(not f["no_trace"] for f in summary["faults"])
    frames = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(frames) >= 3, result.stderr
    phases = [frame.split("] ")[1].split()[0] for frame in frames]
    assert list(dict.fromkeys(phases)) == ["load", "heal", "drain", "check"], frames
    final = frames[-1]
    assert " check " in final, final
    committed = summary["events_committed"]
    assert committed > 0
    assert f"committed {committed} " in final
    assert f"writes ok {summary['writes']['ok']} (avg " in final
    applied = int(final.split(" applied ")[1].split()[0])
    assert applied > 0


@pytest.mark.slow
def test_a_run_time_threshold_decides_the_gate_and_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["simulate", "--no-faults", "-q", "-c", "2", "--writers", "1", "-d", "2"]
    args += ["-r", "10", "-t", "events_committed<1", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output  # events were committed: the gate fails
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events_committed"] > 0
    [threshold] = [t for t in summary["thresholds"] if t["metric"] == "events_committed"]
    assert threshold["expr"] == "< 1" and threshold["ok"] is False
    # The run folder keeps the gate it was judged by; report can still override it.
    assert CliRunner().invoke(cli, ["report", str(out), "--gate"]).exit_code == 1
    again = CliRunner().invoke(cli, ["report", str(out), "--gate", "-t", "events_committed>=1"])
    assert again.exit_code == 0, again.output
