"""The checker on fixture histories: every anomaly kind makes it fail with the right count;
clean runs (snapshots, replays, reconnects, an epoch change handled right) pass."""

from __future__ import annotations

import gc

import pytest

from synccli.report.checker import collector_paused
from synccli.report.summary import summarize
from synccli.report.thresholds import parse_override
from tests.report.builders import BASE_W, Run, clean_run


def _zero_anomalies(summary_dict: dict[str, object]) -> None:
    for key in ("lost", "duplicates", "out_of_order", "phantoms", "epoch_mixups"):
        assert summary_dict[key] == 0, key


# ------------------------------------------------------------------------ clean runs


def test_clean_run_passes_with_full_delivery_and_latency() -> None:
    summary = clean_run(clients=3, events=5).summary()
    assert summary.verdict == "pass", summary.reasons
    assert summary.exit_code == 0
    assert (summary.events_committed, summary.expected_pairs, summary.delivered_pairs) == (
        5,
        15,
        15,
    )
    assert summary.delivery_rate == summary.on_time_rate == 1.0
    assert summary.converged_clients == summary.clients == 3
    assert summary.latency_ms["count"] == 15
    assert 49 <= float(summary.latency_ms["p50"] or 0) <= 51
    _zero_anomalies(summary.to_dict())
    assert summary.anomalies == []


def test_late_subscriber_expects_only_events_after_its_snapshot() -> None:
    run = Run()
    run.commit(6)
    run.subscribed("c001", 4)
    run.apply("c001", 5, 6)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "pass", summary.reasons
    assert summary.expected_pairs == 2


def test_reconnect_with_replay_duplicates_ignored_and_resync_snapshot_passes() -> None:
    run = Run()
    run.commit(9)
    run.connect("c001", BASE_W)
    run.subscribed("c001", 0, w=BASE_W + 0.01)
    run.apply("c001", 1, 2)
    run.rec("c001", "disconnect", BASE_W + 0.26, code=1006, reason="")
    run.connect("c001", BASE_W + 0.41)
    run.subscribed("c001", 4, w=BASE_W + 0.42, recovered=True, events=2)
    run.apply("c001", 3, 4, delay=0.33)
    run.rec("c001", "dup", BASE_W + 0.43, date=run.date, epoch=run.epoch, seq=4)
    run.rec("c001", "gap", BASE_W + 0.6, date=run.date, have=4, got=6)
    run.rec("c001", "resync", BASE_W + 0.7, date=run.date, reason="too_far_behind")
    run.snapshot("c001", 7, w=BASE_W + 0.75)
    run.apply("c001", 8, 9)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "pass", summary.reasons
    assert summary.reconnects == 1
    assert (summary.gaps_detected, summary.resyncs) == (1, 1)
    assert summary.delivered_pairs == summary.expected_pairs == 9
    # 5, 6, 7 came through the snapshot, so only applied events carry a latency.
    assert summary.latency_ms["count"] == 6


def test_epoch_change_followed_by_resync_passes() -> None:
    run = Run(epoch="E2")
    run.commit(4)
    run.subscribed("c001", 0, w=BASE_W, epoch="E1")
    run.rec("c001", "apply", BASE_W + 0.02, date=run.date, epoch="E1", seq=1, id="x",
            committedAt="2027-01-15T08:00:00.000Z", replay=False, appointmentId="a",
            version=2, state="Present")  # fmt: skip
    run.rec("c001", "resync", BASE_W + 0.05, date=run.date, reason="epoch_changed")
    run.subscribed("c001", 2, w=BASE_W + 0.21)
    run.apply("c001", 3, 4)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "pass", summary.reasons
    # The old epoch's event is not counted; E2's 1..4 are expected (the client was there first).
    assert summary.expected_pairs == 4 and summary.delivered_pairs == 4


def test_pruned_events_are_not_phantoms() -> None:
    run = clean_run(clients=1, events=5)
    run.min_seq = 3
    summary = run.summary()
    assert summary.verdict == "pass", summary.reasons


# ------------------------------------------------------------------------ anomalies


def test_lost_events_fail_with_their_count() -> None:
    run = Run()
    run.commit(5)
    run.clean_client("c001")
    run.subscribed("c002", 0, w=BASE_W)
    run.apply("c002", 1, 2, 3)
    run.final("c002", seq=3)
    summary = run.summary()
    assert summary.verdict == "fail" and summary.exit_code == 1
    assert summary.lost == 2
    assert summary.delivery_rate == 0.8
    lost = [a for a in summary.anomalies if a["kind"] == "lost"]
    assert [(a["client"], a["date"], a["seq"]) for a in lost] == [
        ("c002", run.date, 4),
        ("c002", run.date, 5),
    ]
    assert summary.converged_clients == 1


def test_duplicate_apply_fails() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 2, 3)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert (summary.duplicates, summary.out_of_order, summary.lost) == (1, 0, 0)
    assert summary.anomalies[0]["kind"] == "duplicate" and summary.anomalies[0]["seq"] == 2


def test_reapplying_after_a_snapshot_reset_is_not_a_duplicate() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2)
    run.snapshot("c001", 1, w=BASE_W + 0.26)
    run.apply("c001", 2, delay=0.2)
    run.apply("c001", 3)
    run.final("c001")
    assert run.summary().duplicates == 0


def test_out_of_order_apply_fails() -> None:
    run = Run()
    run.commit(5)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1)
    run.apply("c001", 3, delay=0.0)
    run.apply("c001", 2, delay=0.15)
    run.apply("c001", 4, 5)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert (summary.out_of_order, summary.duplicates, summary.lost) == (2, 0, 0)
    assert {a["seq"] for a in summary.anomalies} == {2, 3}


def test_phantom_past_the_head_fails() -> None:
    run = clean_run(clients=1, events=3)
    run.apply("c001", 4, appointmentId=f"{run.date}-0001", version=9, state="Seated")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert summary.phantoms == 1
    assert "never committed" in summary.anomalies[0]["detail"]


def test_phantom_with_other_content_at_a_committed_seq_fails_and_loses_the_real_one() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1)
    run.apply("c001", 2, state="Cancelled")
    run.rec("c001", "dup", BASE_W + 0.3, date=run.date, epoch=run.epoch, seq=2)
    run.apply("c001", 3)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert (summary.phantoms, summary.lost) == (1, 1)


def test_phantom_in_an_epoch_that_never_existed_fails() -> None:
    run = clean_run(clients=1, events=2)
    run.apply("c001", 3, epoch="GHOST")
    summary = run.summary()
    assert summary.phantoms == 1
    assert "never existed" in summary.anomalies[0]["detail"]


def test_not_converged_final_rows_fail() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 3)
    wrong = dict(run.rows) | {f"{run.date}-0002": (1, "Scheduled")}
    run.final("c001", rows=wrong)
    summary = run.summary()
    assert summary.verdict == "fail"
    assert (summary.converged_clients, summary.not_converged, summary.lost) == (0, 1, 0)
    assert summary.anomalies[0]["kind"] == "not_converged"
    assert f"{run.date}-0002" in summary.anomalies[0]["detail"]


def test_a_client_without_final_record_is_not_converged() -> None:
    run = clean_run(clients=2, events=3)
    run.records = [r for r in run.records if not (r["c"] == "c002" and r["k"] == "final")]
    summary = run.summary()
    assert (summary.converged_clients, summary.clients) == (1, 2)
    assert summary.verdict == "fail"


def test_epoch_mixup_fails() -> None:
    run = Run(epoch="E2")
    run.commit(4)
    run.subscribed("c001", 0, w=BASE_W, epoch="E1")
    # The log was reset to E2, the client applies E2's events on top of its E1 state.
    run.apply("c001", 1, 2, 3, 4)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert summary.epoch_mixups == 4
    assert summary.anomalies[0]["kind"] == "epoch_mixup"


def test_late_delivery_lowers_the_on_time_rate_and_fails() -> None:
    run = Run()
    run.commit(4)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 3)
    run.apply("c001", 4, delay=12.0)
    run.final("c001")
    summary = run.summary()
    assert summary.verdict == "fail"
    assert (summary.lost, summary.delivery_rate, summary.on_time_rate) == (0, 1.0, 0.75)
    assert summary.latency_ms["max"] == 12000.0
    assert any("on_time_rate" in reason for reason in summary.reasons)


def test_late_snapshot_cover_is_not_on_time() -> None:
    run = Run()
    run.commit(4)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2)
    run.snapshot("c001", 4, w=BASE_W + 30)
    run.final("c001")
    summary = run.summary()
    assert (summary.delivery_rate, summary.on_time_rate) == (1.0, 0.5)


def test_anomaly_list_is_capped_but_counts_are_complete() -> None:
    run = Run()
    run.commit(200)
    run.subscribed("c001", 0, w=BASE_W)
    run.final("c001", seq=0)
    summary = run.summary()
    assert summary.lost == 200
    assert len(summary.anomalies) == 100
    assert summary.anomalies_total == 201  # 200 lost + not converged


# ------------------------------------------------------------------------ metrics


def test_server_metrics_and_write_outcomes_are_reported() -> None:
    run = clean_run(clients=1, events=2)
    run.rec(
        "c001",
        "write",
        BASE_W + 0.3,
        requestId="c001-1",
        appointmentId="a",
        state="Present",
        attempt=1,
    )
    run.rec(
        "c001",
        "write",
        BASE_W + 0.4,
        requestId="c001-1",
        appointmentId="a",
        state="Present",
        attempt=2,
    )
    run.rec(
        "c001", "write_result", BASE_W + 0.5, requestId="c001-1", ok=True, code=None, seq=3, ms=4
    )
    run.rec(
        "c001",
        "write_result",
        BASE_W + 0.6,
        requestId="c001-2",
        ok=False,
        code="conflict",
        seq=None,
        ms=4,
    )
    run.rec("c001", "rollback", BASE_W + 0.6, requestId="c001-2", appointmentId="a")
    metrics = {
        "synccli_retries_total": 7,
        "synccli_ack_timeouts_total": 1,
        "synccli_connections": 0,
    }
    run.rec(None, "server_metrics", BASE_W + 2, metrics=metrics)
    summary = run.summary()
    assert (summary.retries, summary.ack_timeouts, summary.rollbacks) == (7, 1, 1)
    assert summary.writes == {"sent": 1, "ok": 1, "failed": {"conflict": 1}}


def test_missing_server_metrics_are_null_and_a_threshold_on_them_is_inconclusive() -> None:
    run = clean_run(clients=1, events=2)
    summary = run.summary(overrides=[parse_override("retries<10")])
    assert summary.retries is None and summary.ack_timeouts is None
    assert summary.verdict == "inconclusive"
    assert any("retries was not measured" in r for r in summary.reasons)


def test_fault_window_metrics_and_traces() -> None:
    run = Run()
    run.commit(10)
    run.fault("start", BASE_W + 0.25, name="down-1")
    run.fault("end", BASE_W + 0.55, name="down-1")
    run.clean_client("c001")
    run.records = [r for r in run.records if not (r["k"] == "apply" and r["seq"] in (3, 4, 5))]
    run.rec("c001", "disconnect", BASE_W + 0.26, code=1006, reason="")
    run.snapshot("c001", 5, w=BASE_W + 0.56)
    summary = run.summary()
    assert summary.verdict == "pass", summary.reasons
    (fault,) = summary.faults
    assert fault["events_committed"] == 3  # seqs 3, 4, 5 at .3, .4, .5
    assert fault["expected_pairs"] == 3 and fault["delivered_pairs"] == 3
    assert fault["latency_ms"]["count"] == 0
    assert fault["traces"] == {"disconnect": 1}
    assert fault["no_trace"] is False


def test_fault_without_trace_is_flagged_and_inconclusive_when_traces_are_expected() -> None:
    run = clean_run(clients=1, events=5)
    run.fault("start", BASE_W + 0.15, name="rp", kind="reset_peer")
    run.fault("end", BASE_W + 0.2, name="rp", kind="reset_peer")
    assert run.summary().faults[0]["no_trace"] is True
    assert run.summary().verdict == "pass"
    run.config = {"expect_traces": True}
    summary = run.summary()
    assert summary.verdict == "inconclusive" and summary.exit_code == 3
    assert "fault rp left no trace" in summary.reasons[0]


def test_late_delivery_inside_a_fault_window_counts_in_the_window_not_the_run() -> None:
    run = Run()
    run.commit(10)  # seq n committed at BASE_W + n/10
    run.fault("start", BASE_W + 0.25, name="down-1")
    run.fault("end", BASE_W + 0.55, name="down-1")
    run.clean_client("c001")
    run.records = [r for r in run.records if not (r["k"] == "apply" and r["seq"] in (3, 4, 5))]
    run.rec("c001", "disconnect", BASE_W + 0.26, code=1006, reason="")
    run.snapshot("c001", 5, w=BASE_W + 0.58)
    summary = summarize(run.history(), run.truth(), on_time_s=0.1)  # seqs 3, 4 too late
    assert summary.verdict == "pass", summary.reasons
    assert summary.on_time_rate == 1.0  # the 7 steady pairs were all on time
    assert round(summary.faults[0]["on_time_rate"], 3) == 0.333


def test_late_delivery_outside_any_fault_window_still_fails() -> None:
    run = Run()
    run.commit(4)
    run.fault("start", BASE_W + 20.0, name="long-after")
    run.fault("end", BASE_W + 20.5, name="long-after")
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 3)
    run.apply("c001", 4, delay=12.0)
    run.final("c001")
    summary = run.summary()
    assert summary.on_time_rate == 0.75
    assert summary.verdict == "fail"


def test_pairs_committed_while_clients_recover_from_a_fault_are_not_steady() -> None:
    run = Run()
    run.commit(10)  # seq n at n/10; seqs 1, 2 fall within TRACE_GRACE_S of the fault's end
    run.fault("start", BASE_W - 9.0, name="outage")
    run.fault("end", BASE_W - 4.75, name="outage")
    run.subscribed("c001", 0, w=BASE_W)
    for seq in range(1, 9):  # the client is back at 0.95 and applies 1-8 then, in order
        run.apply("c001", seq, delay=0.95 + seq / 1000 - seq / 10)
    run.apply("c001", 9, 10, delay=0.1)
    run.final("c001")
    summary = summarize(run.history(), run.truth(), on_time_s=0.5)
    assert summary.out_of_order == 0
    assert summary.on_time_rate == 0.75  # steady: 3-10, of which 3 and 4 were late


def test_a_pair_in_flight_when_a_fault_begins_is_not_steady_unless_already_late() -> None:
    run = Run()
    run.commit(3)  # at 0.1, 0.2, 0.3; the fault begins at 0.35
    run.fault("start", BASE_W + 0.35, name="cut")
    run.fault("end", BASE_W + 0.36, name="cut")
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, delay=0.15)  # late (0.1 s deadline), and not because of the fault
    run.apply("c001", 2, delay=0.08)
    run.apply("c001", 3, delay=12.0)  # in flight when the link was cut
    run.final("c001")
    summary = summarize(run.history(), run.truth(), on_time_s=0.1)
    assert summary.out_of_order == 0
    assert summary.on_time_rate == 0.5  # steady: 1 (late) and 2


def test_a_fault_s_own_evidence_decides_its_trace() -> None:
    run = clean_run(clients=1, events=5)
    run.fault("start", BASE_W + 0.1, name="loss", kind="packet_loss")
    run.rec("c001", "disconnect", BASE_W + 0.2, code=1006, reason="")  # another fault's mark
    run.fault("end", BASE_W + 0.3, name="loss", kind="packet_loss",
              evidence={"packets_dropped": 0})  # fmt: skip
    run.config = {"expect_traces": True}
    summary = run.summary()
    assert summary.faults[0]["no_trace"] is True and summary.verdict == "inconclusive"
    run.records[-1]["evidence"] = {"packets_dropped": 3}
    assert run.summary().faults[0]["evidence"] == {"packets_dropped": 3}
    assert run.summary().faults[0]["no_trace"] is False


def test_an_old_event_applied_again_after_later_ones_is_a_duplicate_not_out_of_order() -> None:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W + 0.01)
    run.apply("c001", 1, 2, 3)
    run.apply("c001", 1, delay=0.4)  # after 3 (applied at +0.35)
    run.final("c001")
    summary = run.summary()
    assert (summary.duplicates, summary.out_of_order) == (1, 0)
    assert summary.verdict == "fail"


def test_each_snapshot_covers_only_the_events_after_the_previous_one() -> None:
    run = Run()
    run.commit(5)
    run.subscribed("c001", 0, w=BASE_W + 0.01)
    run.snapshot("c001", 3, w=BASE_W + 0.4)  # 1-3 covered on time
    run.snapshot("c001", 5, w=BASE_W + 10.0)  # 4-5 covered late; 3 must keep its time
    run.final("c001")
    summary = run.summary()
    assert (summary.expected_pairs, summary.delivered_pairs) == (5, 5)
    assert summary.on_time_rate == 0.6


def test_the_collector_is_paused_during_a_pass_and_left_as_it_was() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a corrupt history")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
