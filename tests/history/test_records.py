"""The record types: every kind round-trips through its JSON form (docs/history.md names)."""

from __future__ import annotations

import pytest

from synccli.errors import ConfigError
from synccli.history import (
    KINDS,
    Apply,
    Fault,
    Final,
    Gap,
    Record,
    Subscribed,
    WriteResult,
    record_from_json,
)

DATE = "2026-11-26"
SAMPLES: list[Record] = [
    Subscribed(DATE, "e1", 7, recovered=False, events=0),
    Apply(DATE, "e1", 8, "m8", "2026-11-26T10:00:00.000Z", False, "a1", 2, "Present"),
    Gap(DATE, 3, 9),
    Gap(DATE, 3, 9, via="heartbeat"),
    WriteResult("c001-1", True, None, 8, 12.5),
    Final(DATE, "e1", 8, {"a1": [2, "Present"]}, "synced"),
    Fault("start", "latency", "f1", 0.5, {"latency_ms": 100}, groups=[0]),
    Fault("end", "packet_loss", "f2", evidence={"packets_dropped": 3}),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: r.kind)
def test_round_trip(record: Record) -> None:
    assert record_from_json(record.to_json()) == record


def test_json_names_follow_the_documented_format() -> None:
    apply = SAMPLES[1].to_json()
    assert apply == {
        "k": "apply",
        "date": DATE,
        "epoch": "e1",
        "seq": 8,
        "id": "m8",
        "committedAt": "2026-11-26T10:00:00.000Z",
        "replay": False,
        "appointmentId": "a1",
        "version": 2,
        "state": "Present",
    }
    assert "via" not in Gap(DATE, 3, 9).to_json()
    assert Fault("end", "x", "f").to_json() == {
        "k": "fault",
        "phase": "end",
        "kind": "x",
        "name": "f",
    }
    assert WriteResult("r", False, "timeout").to_json()["requestId"] == "r"


def test_every_kind_in_the_docs_has_a_type() -> None:
    documented = {
        "run_start", "connect", "connect_failed", "disconnect", "subscribed", "snapshot",
        "apply", "dup", "gap", "gap_recovered", "resync", "write", "write_result", "rollback",
        "client", "error", "final", "fault", "server", "server_metrics", "run_end",
        "infrastructure_error",
    }  # fmt: skip
    assert set(KINDS) == documented


def test_a_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="wrong type"):
        record_from_json({"k": "dup", "date": DATE, "epoch": "e1", "seq": True})
