"""Recovery metrics on real runs of the shipped scenarios (embedded server and proxy, real
clients): a third of the clients offline for 10 s recover by replay on resume, in a
measured time; a run without faults has nothing to recover from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import seconds

pytestmark = pytest.mark.slow


def _simulate(cwd: Path, *args: str) -> tuple[Path, dict[str, Any]]:
    """Run ``synccli simulate ARGS`` in ``cwd``; the run folder and its summary."""
    result = subprocess.run(
        [sys.executable, "-m", "synccli", "simulate", "--quiet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    (folder,) = (cwd / "reports").iterdir()
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    # The recovery figures are what is tested here: a latency threshold missed on a busy
    # machine (exit 1) still leaves them measured; an error or a cut-short run does not.
    assert result.returncode in (0, 1), (summary["reasons"], result.stdout[-2000:], result.stderr)
    assert summary["lost"] == summary["duplicates"] == summary["out_of_order"] == 0
    assert summary["converged_clients"] == summary["clients"]
    return folder, summary


def test_clients_offline_for_10s_recover_by_replay_in_a_measured_time(tmp_path: Path) -> None:
    _, summary = _simulate(tmp_path, "--scenario", "client-offline-10s")
    assert summary["replay_resumes"] >= 3 and summary["replayed_events"] > 0
    (fault,) = summary["faults"]
    recovery = fault["recovery"]
    # The three clients cut off were behind when the fault healed and caught up.
    assert recovery["behind"] >= 3 and recovery["never"] == 0
    assert recovery["ms"]["max"] > 0 and recovery["ms"]["count"] == recovery["behind"]
    assert summary["recovery_ms"]["max"] == recovery["ms"]["max"]
    assert summary["never_recovered"] == 0


def test_a_run_without_faults_recovers_nothing_and_is_named_for_it(tmp_path: Path) -> None:
    folder, summary = _simulate(tmp_path, "--scenario", "normal-ack-flow", "--no-faults")
    assert folder.name.endswith("-normal-ack-flow-no-faults")
    assert summary["faults"] == []
    assert summary["replay_resumes"] == summary["replayed_events"] == 0
    assert summary["gap_recoveries"] == summary["snapshot_resyncs"] == 0
    assert summary["recovery_ms"]["count"] == 0 and summary["never_recovered"] == 0
