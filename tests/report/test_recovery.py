"""Each way a client recovered, and the time to recover after a fault healed, on fixture
histories: a client that was offline and caught up by replay on resume, one that filled a
gap in-stream, one resynced by snapshot, one that never caught up."""

from __future__ import annotations

import pytest

from synccli.report.render import headline_rows, render_markdown, render_table
from tests.report.builders import BASE_W, Run, clean_run

FAULT_START = BASE_W + 3.0
FAULT_END = BASE_W + 5.0
BACK = BASE_W + 6.0


def _apply_at(run: Run, client: str, w: float, *seqs: int, replay: bool = False) -> None:
    for seq in seqs:
        run.apply(client, seq, delay=w - run.commit_w[seq], replay=replay)


def _offline_run() -> Run:
    """60 events, 0.1 s apart; c001 stays connected, c002 is offline from 2.95 s to 6 s (the
    fault heals at 5 s) and comes back by a replay of the 30 events it missed."""
    run = Run()
    run.commit(60)
    run.fault("start", FAULT_START, name="offline")
    run.fault("end", FAULT_END, name="offline")
    run.clean_client("c001")
    run.connect("c002", BASE_W)
    run.subscribed("c002", 0, w=BASE_W + 0.01)
    run.apply("c002", *range(1, 30))
    run.rec("c002", "disconnect", BASE_W + 2.95, code=1006, reason="")
    run.connect("c002", BACK)
    run.subscribed("c002", 59, w=BACK, recovered=True, events=30)
    _apply_at(run, "c002", BACK + 0.01, *range(30, 60), replay=True)
    run.apply("c002", 60)
    run.final("c002")
    return run


def test_replay_on_resume_is_counted_with_its_events() -> None:
    summary = _offline_run().summary()
    assert summary.verdict == "pass", summary.reasons
    assert summary.replay_resumes == 1
    assert summary.replayed_events == 30
    assert summary.gap_recoveries == 0 and summary.snapshot_resyncs == 0


def test_time_to_recover_runs_from_the_fault_end_to_the_last_missing_event() -> None:
    summary = _offline_run().summary()
    (fault,) = summary.faults
    recovery = fault["recovery"]
    # c002 lacked seqs 30..50 (committed by 5 s) until 6.01 s; c001 lacked only seq 50,
    # committed at 5.0 s and applied 50 ms later.
    assert recovery["behind"] == 2 and recovery["never"] == 0
    assert recovery["ms"]["max"] == pytest.approx(1010, abs=1)
    assert recovery["ms"]["p50"] == pytest.approx(50, abs=1)
    assert summary.recovery_ms == recovery["ms"]
    assert summary.never_recovered == 0


def test_a_client_that_never_caught_up_never_recovered() -> None:
    run = _offline_run()
    run.records = [
        r for r in run.records if not (r["c"] == "c002" and r["k"] == "apply" and r["seq"] == 42)
    ]
    summary = run.summary()
    assert summary.faults[0]["recovery"]["never"] == 1
    assert summary.never_recovered == 1
    assert summary.recovery_ms["count"] == 1  # c001 only


def test_gap_fill_and_snapshot_resync_are_counted_apart() -> None:
    run = Run()
    run.commit(10)
    run.connect("c001", BASE_W)
    run.subscribed("c001", 0, w=BASE_W + 0.01)
    run.apply("c001", 1, 2, 4)
    run.rec("c001", "gap", BASE_W + 0.45, date=run.date, have=2, got=4)
    run.apply("c001", 3)
    run.rec("c001", "gap_recovered", BASE_W + 0.36, date=run.date, seq=4)
    run.apply("c001", 5, 6)
    run.rec("c001", "resync", BASE_W + 0.7, date=run.date, reason="too_far_behind")
    run.snapshot("c001", 8, w=BASE_W + 0.85)
    run.apply("c001", 9, 10)
    run.final("c001")
    # A second subscribe answered with a snapshot (the server could not replay) is a
    # resync too; the first one is only the start.
    run.connect("c002", BASE_W)
    run.subscribed("c002", 0, w=BASE_W + 0.01)
    run.apply("c002", 1, 2)
    run.subscribed("c002", 7, w=BASE_W + 0.75)
    run.apply("c002", 8, 9, 10)
    run.final("c002")
    summary = run.summary()
    assert summary.gap_recoveries == 1
    assert summary.snapshot_resyncs == 2
    assert summary.replay_resumes == 0


def test_a_run_without_faults_recovers_nothing() -> None:
    summary = clean_run().summary()
    assert summary.replay_resumes == summary.replayed_events == summary.snapshot_resyncs == 0
    assert summary.recovery_ms["count"] == 0 and summary.recovery_ms["p99"] is None
    assert summary.never_recovered == 0


def test_every_renderer_names_each_way_back_and_the_time_to_recover() -> None:
    summary = _offline_run().summary()
    labels = dict(headline_rows(summary))
    assert labels["recovered by replay on resume"] == "1 (30 events)"
    assert labels["recovered by in-stream gap fill"] == "0"
    assert labels["recovered by snapshot resync"] == "0"
    assert labels["time to recover p99"].endswith("ms")
    for text in (render_table(summary), render_markdown(summary)):
        assert "replay on resume" in text and "time to recover" in text


def test_each_window_times_its_own_recovery() -> None:
    run = _offline_run()
    run.fault("start", BASE_W + 4.4, name="second")
    run.fault("end", BASE_W + 4.8, name="second")
    first, second = run.summary().faults
    # c002 had seqs 30..48 (committed by 4.8 s) at 6.01 s; c001 lacked seq 48 for 50 ms.
    assert second["recovery"]["ms"]["max"] == pytest.approx(1210, abs=1)
    assert first["recovery"]["ms"]["max"] == pytest.approx(1010, abs=1)
    assert second["recovery"]["behind"] == 2
