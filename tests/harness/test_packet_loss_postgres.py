"""The shipped `packet-loss` scenario as root against a real PostgreSQL through ODBC.

The server used to run inside the namespace, where the host's 127.0.0.1:5432 is not
reachable ("connection refused", exit 4). Now only its listening socket is inside: the
run must pass, with packets really dropped by the kernel, on the throwaway database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synccli.faults.loss import check_available
from synccli.faults.netns import list_namespaces
from tests.conftest import require, seconds
from tests.store.pg import throwaway_database, url_of

pytestmark = [pytest.mark.netns, pytest.mark.postgres, pytest.mark.slow]


def test_packet_loss_scenario_on_postgres_as_root(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the namespace of packet loss as root needs root")
    reason = check_available()
    require(reason is None, f"packet loss is not possible here: {reason}")
    before = set(list_namespaces())
    out = tmp_path / "run"
    with throwaway_database() as database:
        result = subprocess.run(
            [sys.executable, "-m", "synccli", "simulate", "--scenario", "packet-loss",
             "--db", url_of(database), "--quiet", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=seconds(150),
        )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0, (summary["reasons"], result.stdout[-2000:], result.stderr)
    assert summary["verdict"] == "pass"
    assert summary["truth_source"].startswith("postgresql+pyodbc://")
    assert summary["events_committed"] > 0
    windows = summary["faults"]
    assert [w["kind"] for w in windows] == ["packet_loss", "packet_loss"]
    assert all(w["evidence"]["packets_dropped"] > 0 and not w["error"] for w in windows)
    left = set(list_namespaces()) - before  # other runs on the machine may come and go
    assert not left, f"the run's namespace must be gone: {left}"
