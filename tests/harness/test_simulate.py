"""`synccli simulate` end to end, as a user runs it: a real server subprocess, real clients,
the real proxy, the checker; plus Ctrl+C and the error paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SYNCCLI, seconds

pytestmark = pytest.mark.slow


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCCLI, *args], capture_output=True, text=True, timeout=seconds(timeout)
    )


def _records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_plain_run_delivers_everything_and_the_gate_passes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run(
        "simulate", "--no-faults", "--quiet", "--clients", "4", "--writers", "2",
        "--duration", "3", "--rate", "20", "--seed", "7", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["seed"] == 7
    assert summary["events_committed"] > 20
    assert summary["delivery_rate"] == 1.0
    assert (summary["lost"], summary["duplicates"], summary["out_of_order"]) == (0, 0, 0)
    assert summary["converged_clients"] == 4
    for name in ("history.jsonl", "truth.json", "junit.xml", "report.html", "server.log"):
        assert (out / name).is_file(), name
    gate = _run("report", str(out), "--gate")
    assert gate.returncode == 0, gate.stdout + gate.stderr


def test_ctrl_c_heals_the_fault_and_writes_a_partial_report(tmp_path: Path) -> None:
    scenario = tmp_path / "long-down.toml"
    scenario.write_text(
        'description = "a long outage, interrupted"\nseed = 3\nduration_s = 60\n'
        "clients = 3\nwriters = 1\nrate = 10\n\n"
        '[[faults]]\nname = "outage"\nkind = "down"\nat_s = 0.5\nfor_s = 50\ntarget = 1.0\n'
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*SYNCCLI, "simulate", "--scenario", str(scenario), "--quiet", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = out / "history.jsonl"
    deadline = time.monotonic() + seconds(30)
    while time.monotonic() < deadline and proc.poll() is None:
        if history.exists() and '"phase":"start"' in history.read_text().replace(" ", ""):
            break
        time.sleep(0.1)  # polling a file another process writes; bounded by the deadline
    else:
        proc.kill()
        pytest.fail("the fault never started")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=seconds(60))
    assert "Traceback" not in stderr
    assert "partial report" in stderr
    assert proc.returncode in (1, 3), stdout + stderr
    records = _records(out)
    faults = [r for r in records if r["k"] == "fault"]
    assert [r["phase"] for r in faults] == ["start", "end"]  # healed, not left down
    assert records[-1]["k"] == "run_end" and records[-1]["interrupted"] is True
    assert json.loads((out / "summary.json").read_text())["verdict"] != "pass"


def test_unreachable_url_is_an_infrastructure_error(tmp_path: Path) -> None:
    result = _run("simulate", "--url", "ws://127.0.0.1:9/ws", "--quiet", "--out", str(tmp_path))
    assert result.returncode == 4
    assert "cannot reach the server at ws://127.0.0.1:9/ws" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the namespace")
def test_default_scenario_parses_with_the_machine_s_packet_loss_choice() -> None:
    result = _run("scenarios", "show", "default")
    assert result.returncode == 0
    assert "packet_loss" in result.stdout


def test_a_run_over_two_worker_processes_is_one_checked_history_reproducible_by_seed(
    tmp_path: Path,
) -> None:
    for_s = 1.5
    scenario = tmp_path / "down-workers.toml"
    scenario.write_text(
        'description = "an outage of a third, clients over two processes"\nseed = 5\n'
        "duration_s = 4\nclients = 6\nwriters = 1\nrate = 10\ngroups = 3\n\n"
        f'[[faults]]\nname = "outage"\nkind = "down"\nat_s = 1\nfor_s = {for_s}\n'
        'target = "34%"\n'
    )
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = _run(
            "simulate", "--scenario", str(scenario), "--workers", "2", "--quiet",
            "--out", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Task was destroyed" not in result.stderr
        assert json.loads((out / "summary.json").read_text())["verdict"] == "pass"
        assert not list(out.glob("history.jsonl.*")), "worker parts are merged and removed"
        runs.append(_records(out))
    seeds = [{r["c"]: r["seed"] for r in records if r["k"] == "client"} for records in runs]
    assert len(seeds[0]) == 6 and seeds[0] == seeds[1]
    faults = [[r for r in records if r["k"] == "fault"] for records in runs]
    assert [f["phase"] for f in faults[0]] == ["start", "end"]
    assert faults[0][0]["groups"] == faults[1][0]["groups"]
    assert faults[0][0]["clients"] == faults[1][0]["clients"]
    for start, end in faults:
        # The heal is due for_s after the start record (written just before the apply).
        assert for_s <= end["t"] - start["t"] < for_s + seconds(1)
    for records in runs:
        assert [r["t"] for r in records] == sorted(r["t"] for r in records)
