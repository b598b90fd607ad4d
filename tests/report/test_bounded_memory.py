"""The report's memory does not grow with the run: while the records are read, each
(client, date) keeps the apply times of a few hundred seqs only, and the latency samples
wait in memory up to the spill's budget; the summary stays the one counted at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from synccli.history import load_history
from synccli.report import checker, samples
from synccli.report.scan import read_faults, read_run
from synccli.report.summary import summarize
from tests.report import summary_reference
from tests.report.builders import BASE_W, Run

EVENTS = 3000


def _long_run() -> Run:
    """Three clients over 3,000 events: one clean, one cut off by a fault and caught up by
    a snapshot, one that never gets seq 10."""
    run = Run()
    run.commit(EVENTS)
    run.clean_client("c001")
    run.connect("c002", BASE_W)
    run.subscribed("c002", 0, w=BASE_W + 0.01)
    run.apply("c002", *range(1, 1001))
    run.fault("start", BASE_W + 100.05)
    run.fault("end", BASE_W + 150.0)
    run.snapshot("c002", 1600, w=BASE_W + 160.2)
    run.apply("c002", *range(1601, EVENTS + 1))
    run.final("c002")
    run.connect("c003", BASE_W)
    run.subscribed("c003", 0, w=BASE_W + 0.01)
    run.apply("c003", *range(1, 10), *range(11, EVENTS + 1))
    run.final("c003")
    return run


def test_a_long_run_is_read_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(samples, "DEFAULT_BUDGET", 2000)
    run = _long_run()
    folder = run.write(tmp_path / "run")
    history = load_history(folder / "history.jsonl", lazy=True)
    read = read_run(history, run.truth(), read_faults(history), on_time_s=1.0)
    walks = read.checker.walks
    room = checker._ROOM + checker._SETTLE
    for client in ("c001", "c002"):
        walk = walks[client, run.date]
        assert walk.settled is not None and walk.settled > EVENTS - room
        assert len(walk.applied_w) <= room
    # The client with a hole cannot settle past it: only its walk keeps every apply time.
    assert walks["c003", run.date].settled is None
    assert len(walks["c003", run.date].applied_w) > EVENTS - room
    assert read.accounting is not None
    store = read.accounting.overall.binned.store  # type: ignore[union-attr]
    spill = store.spill
    in_memory = sum(len(b) for b in store._buffers.values()) + spill._waiting
    assert spill._written >= 2 * EVENTS  # most samples, once by second and once in all
    assert in_memory <= samples.DEFAULT_BUDGET + samples._BUFFER
    # And the numbers are those of the check that counts everything at the end.
    summary = summarize(load_history(folder / "history.jsonl", lazy=True), run.truth())
    expected = summary_reference.summarize(run.history(), run.truth())
    assert summary.to_dict() == expected.to_dict()
    assert summary.lost == 1 and summary.faults[0]["expected_pairs"] > 1000
    # Every client was an apply's delay behind at the heal; the one with a hole never caught up.
    assert summary.faults[0]["recovery"]["behind"] == 3
    assert summary.faults[0]["recovery"]["never"] == 1
