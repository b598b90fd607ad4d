"""Verdicts beyond pass/fail: inconclusive runs, infrastructure errors, and which wins."""

from __future__ import annotations

from dataclasses import replace

from synccli.history import RunEnd
from synccli.report.summary import summarize
from tests.report.builders import BASE_W, Run, clean_run


def test_no_events_committed_is_inconclusive() -> None:
    run = Run()
    run.subscribed("c001", 0, w=BASE_W)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "inconclusive" and summary.exit_code == 3
    assert summary.delivery_rate == 1.0
    assert "no events were committed" in summary.reasons[0]


def test_no_clients_is_inconclusive() -> None:
    run = Run()
    run.commit(3)
    summary = run.summary()
    assert summary.verdict == "inconclusive"
    assert "the history has no clients" in summary.reasons


def test_fault_that_could_not_be_applied_is_inconclusive() -> None:
    run = clean_run(clients=1, events=3)
    run.fault("error", BASE_W + 0.2, name="loss", kind="packet_loss", error="needs root")
    summary = run.summary()
    assert summary.verdict == "inconclusive"
    assert summary.reasons == ["fault loss could not be applied: needs root"]
    assert summary.faults[0]["error"] == "needs root"


def test_history_cut_short_without_finals_is_inconclusive() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 3)
    summary = run.summary(end=False)
    assert summary.verdict == "inconclusive"
    assert any("cut short" in r for r in summary.reasons)


def test_interrupted_run_is_inconclusive() -> None:
    run = clean_run(clients=1, events=2)
    history = run.history()
    entries = history.entries
    assert isinstance(entries, list)  # a parsed history: its entries can be replaced
    end = entries[-1]
    assert isinstance(end.record, RunEnd)
    entries[-1] = replace(end, record=replace(end.record, interrupted=True))
    assert summarize(history, run.truth()).verdict == "inconclusive"


def test_infrastructure_error_record_is_an_error_verdict() -> None:
    run = clean_run(clients=1, events=2)
    run.rec(None, "infrastructure_error", BASE_W + 2, error="the server never came up")
    summary = run.summary()
    assert summary.verdict == "error" and summary.exit_code == 4
    assert summary.reasons == ["infrastructure error: the server never came up"]


def test_no_client_ever_connected_is_an_error_verdict() -> None:
    run = Run()
    run.commit(2)
    run.rec("c001", "connect_failed", BASE_W + 0.1, attempt=1, error="connection refused")
    assert run.summary().verdict == "error"


def test_a_proven_bug_fails_even_when_the_run_is_otherwise_inconclusive() -> None:
    run = clean_run(clients=1, events=3)
    run.apply("c001", 2)  # applied twice: a duplicate
    run.fault("error", BASE_W + 0.2, name="loss", kind="packet_loss", error="needs root")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert summary.reasons[0].startswith("duplicates is 1")
    assert any("could not be applied" in r for r in summary.reasons)


def test_scenario_thresholds_from_the_run_config_apply() -> None:
    run = clean_run(clients=2, events=5)
    run.config = {"thresholds": {"latency_ms.p99": "< 10"}, "dates": [run.date]}
    summary = run.summary()
    assert summary.verdict == "fail"
    assert {"metric": "latency_ms.p99", "expr": "< 10", "observed": 50.0, "ok": False} in [
        {**t, "observed": round(t["observed"], 1)} for t in summary.thresholds
    ]


def test_configured_dates_make_a_silent_client_lose_everything() -> None:
    run = clean_run(clients=1, events=3)
    run.connect("c002", BASE_W)
    run.config = {"dates": [run.date]}
    summary = run.summary()
    assert summary.lost == 3 and summary.converged_clients == 1 and summary.clients == 2
