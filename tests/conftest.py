"""Shared test fixtures: a scalable time unit and access to the services tests need.

``SYNCCLI_TEST_TIME_UNIT`` scales every time-sensitive wait (default 1.0); raise it on a slow
machine instead of editing tests. A service a test needs (PostgreSQL, root for network
namespaces) that is missing makes the test skip with the reason, except under ``CI=true``,
where it is a failure.
"""

from __future__ import annotations

import json
import os
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
