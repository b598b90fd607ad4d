"""One short end-to-end run per fault family: the gate passes AND the fault left its trace.

A fault that silently did nothing would make every other assertion vacuous, so each test
checks the family's own mark: reconnects after a proxy outage, a new server pid after a
kill, database errors and rolled-back writes after deadlocks, resyncs after an epoch reset,
kernel drops after packet loss. Each run is a few seconds of load on the embedded server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SYNCCLI, require, seconds, simulate_scenario

pytestmark = pytest.mark.slow

# Every scenario keeps the core thresholds; each test adds the trace its fault implies.
CORE = """
[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
phantoms = "== 0"
delivery_rate = ">= 0.995"
"""


def _simulate(tmp_path: Path, body: str, extra_thresholds: str = "") -> dict[str, Any]:
    """Run the scenario ``body`` (+ thresholds), gate it, and return its summary."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(body + CORE + extra_thresholds)
    out = tmp_path / "run"
    summary = simulate_scenario(scenario, out, timeout=90)
    assert summary["verdict"] == "pass"
    assert summary["events_committed"] > 0
    assert summary["faults"] and not any(f["no_trace"] or f["error"] for f in summary["faults"])
    gate = subprocess.run(
        [*SYNCCLI, "report", str(out), "--gate", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr
    return summary


def _records(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r["k"] == kind]


def test_proxy_outage_makes_clients_reconnect_and_catch_up(tmp_path: Path) -> None:
    summary = _simulate(
        tmp_path,
        """
seed = 21
duration_s = 6
clients = 4
writers = 2
rate = 10
groups = 2
drain_timeout_s = 15
[[faults]]
name = "offline"
kind = "down"
at_s = 1.5
for_s = 2
target = "50%"
""",
        'reconnects = ">= 2"\n',
    )
    offline = summary["faults"][0]
    assert offline["traces"]["disconnect"] >= 2 and offline["traces"]["reconnect"] >= 2
    # at_s counts from the start of the load (the clients), not from the server's start-up.
    load_start = min(r["t"] for r in _records(tmp_path, "client"))
    assert offline["start_t"] - load_start == pytest.approx(1.5, abs=0.3)
    assert offline["events_committed"] > 0 and offline["delivery_rate"] == 1.0


def test_server_kill_restarts_the_server_and_every_client_recovers(tmp_path: Path) -> None:
    summary = _simulate(
        tmp_path,
        """
seed = 22
duration_s = 7
clients = 3
writers = 1
rate = 10
drain_timeout_s = 15
[[faults]]
name = "crash"
kind = "server_kill"
at_s = 2
for_s = 1.5
""",
        'reconnects = ">= 3"\n',
    )
    server = {r["event"]: r["pid"] for r in _records(tmp_path, "server")}
    assert server["kill"] == server["start"] != server["restart"] == server["exit"]
    crash = summary["faults"][0]
    assert crash["traces"]["server_restart"] >= 1
    # Writes went on after the restart, and every client reached the final head.
    commits_after = summary["events_committed"] - crash["events_committed"]
    assert commits_after > 0 and summary["converged_clients"] == 3


def test_deadlocks_roll_back_failed_writes_and_lose_nothing(tmp_path: Path) -> None:
    summary = _simulate(
        tmp_path,
        """
seed = 23
duration_s = 6
clients = 3
writers = 2
rate = 20
[[faults]]
name = "deadlocks"
kind = "db_fault"
mode = "deadlock"
rate = 0.8
at_s = 1
for_s = 3
""",
        'rollbacks = ">= 1"\n',
    )
    deadlocks = summary["faults"][0]
    assert deadlocks["evidence"]["db_errors"] >= 1
    failed = summary["writes"]["failed"].get("db_unavailable", 0)
    # Each write given up on is rolled back on its client, and none became an event.
    assert failed >= 1 and summary["rollbacks"] >= failed
    assert summary["events_committed"] == summary["writes"]["ok"]


def test_epoch_reset_makes_clients_resync(tmp_path: Path) -> None:
    summary = _simulate(
        tmp_path,
        """
seed = 24
duration_s = 6
clients = 3
writers = 1
rate = 10
[[faults]]
name = "log-reset"
kind = "epoch_reset"
at_s = 2.5
""",
        'resyncs = ">= 3"\n',
    )
    assert summary["faults"][0]["traces"]["resync"] >= 3
    first_epoch = _records(tmp_path, "subscribed")[0]["epoch"]
    final_epochs = {r["epoch"] for r in _records(tmp_path, "final")}
    assert len(final_epochs) == 1 and first_epoch not in final_epochs
    assert summary["epoch_mixups"] == 0


def test_packet_loss_drops_packets_in_the_kernel_and_loses_no_event(tmp_path: Path) -> None:
    from synccli.faults.loss import check_available

    require(os.geteuid() == 0, "packet loss needs root")
    reason = check_available()
    require(reason is None, f"packet loss is not possible here: {reason}")
    summary = _simulate(
        tmp_path,
        """
seed = 25
duration_s = 6
clients = 3
writers = 1
rate = 10
[[faults]]
name = "loss"
kind = "packet_loss"
at_s = 1
for_s = 3
percent = 20
""",
    )
    loss = summary["faults"][0]
    assert loss["evidence"]["packets_dropped"] > 0
    assert loss["events_committed"] > 0 and loss["delivery_rate"] == 1.0
