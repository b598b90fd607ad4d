"""Shared test fixtures: a scalable time unit and access to the services tests need.

``SYNCCLI_TEST_TIME_UNIT`` scales every time-sensitive wait (default 1.0); raise it on a slow
machine instead of editing tests. A service a test needs (PostgreSQL, root for network
namespaces) that is missing makes the test skip with the reason, except under ``CI=true``,
where it is a failure.
"""

from __future__ import annotations

import os

import pytest

TIME_UNIT = float(os.environ.get("SYNCCLI_TEST_TIME_UNIT", "1.0"))
IN_CI = os.environ.get("CI", "").lower() == "true"


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
