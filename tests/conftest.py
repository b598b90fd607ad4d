"""Shared test fixtures: a scalable time unit and access to the services tests need.

``SYNCCLI_TEST_TIME_UNIT`` scales every time-sensitive wait (default 1.0); raise it on a slow
machine instead of editing tests. A service a test needs (PostgreSQL, root for network
namespaces) that is missing makes the test skip with the reason, except under ``CI=true``,
where it is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

TIME_UNIT = float(os.environ.get("SYNCCLI_TEST_TIME_UNIT", "1.0"))
IN_CI = os.environ.get("CI", "").lower() == "true"
#: The command line of ``synccli`` as a separate process (the interpreter running the tests).
SYNCCLI = [sys.executable, "-m", "synccli"]


def seconds(value: float) -> float:
    """``value`` seconds, scaled by ``SYNCCLI_TEST_TIME_UNIT``."""
    return value * TIME_UNIT


def require(condition: bool, reason: str) -> None:
    """Skip the test unless ``condition``; under CI=true a missing service fails it instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def listen_backlog(port: int) -> int:
    """What the kernel holds for the listening socket on 127.0.0.1:``port``: the most
    connections it queues before they are accepted (``ss``'s Send-Q of a listener)."""
    require(shutil.which("ss") is not None, "ss (iproute2) is not installed")
    found = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found[0] == "LISTEN" and found[3] == f"127.0.0.1:{port}", found
    return int(found[2])


def somaxconn() -> int:
    """The kernel's cap on every listening socket's backlog."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def simulate_scenario(
    scenario: Path, out: Path, timeout: float, options: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``synccli simulate`` on ``scenario`` (with ``options``) into ``out`` as a real
    process; return its summary after asserting it exited 0 (its reasons and output in the
    message if not)."""
    result = subprocess.run(
        [*SYNCCLI, "simulate", "--scenario", str(scenario), "--quiet", "--out", str(out), *options],
        capture_output=True,
        text=True,
        timeout=seconds(timeout),
    )
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0, (summary["reasons"], result.stdout[-2000:], result.stderr)
    return summary


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``), the end-to-end runs and the namespace tests
    go one after another on one worker: each is a server, clients and a proxy that want the
    machine's cores, and their time budgets assume they have them. The rest spread."""
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("netns"):
            item.add_marker(pytest.mark.xdist_group("end-to-end"))
