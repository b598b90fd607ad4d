"""The streaming checker against the in-memory one it replaced (``checker_reference``, kept
as the expected values): the same verdicts and numbers on random fixture histories, read
from a list, from a plain JSON-lines file and from a file with compact apply references,
and on a recorded run (``fixtures/offline``: a real run with a third of the clients cut
off for 10 s, clients spread over two worker processes)."""

from __future__ import annotations

import json
import math
import random
import shutil
from array import array
from collections.abc import Sequence
from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

import pytest

from synccli.history import Apply, Entry, HistoryWriter, Record, load_history, parse_history
from synccli.history import writer as writer_module
from synccli.history.reader import HistoryFile
from synccli.report import check_run, load_truth
from synccli.report import checker as checker_module
from synccli.report.checker import CheckResult
from synccli.report.metrics import BinnedLatencies, DeliveryStats, FaultWindow, fault_windows
from synccli.report.summary import summarize
from tests.report import checker_reference, summary_reference
from tests.report.builders import BASE_W, Run

FIXTURES = Path(__file__).parent / "fixtures"


def _random_run(seed: int) -> Run:
    """A run with every kind of trouble the checker knows, chosen by ``seed``."""
    rng = random.Random(seed)
    run = Run(appointments=4)
    run.commit(rng.randint(0, 30))
    if rng.random() < 0.2:
        run.min_seq = rng.randint(1, 5)
    run.config = {"dates": [run.date, "2026-11-27"] if rng.random() < 0.3 else [run.date]}
    if rng.random() < 0.5:
        run.fault("start", BASE_W + rng.uniform(0, 2), name="f1")
        run.fault("end", BASE_W + rng.uniform(2, 4), name="f1")
    for c in range(rng.randint(1, 5)):
        client = f"c{c:03d}"
        run.connect(client, BASE_W)
        if rng.random() < 0.9:
            run.subscribed(client, rng.choice([0, 0, 2]), w=BASE_W + 0.01)
        seqs = list(range(1, run.head + 3))
        for _ in range(rng.randint(0, 3 * run.head + 1)):
            roll = rng.random()
            seq = rng.choice(seqs) if seqs else 1
            if roll < 0.05:
                run.snapshot(client, rng.randint(0, run.head + 1), w=BASE_W + rng.uniform(0, 9))
            elif roll < 0.08:
                run.subscribed(
                    client, seq, epoch=rng.choice(["E0", "E1"]), recovered=True, events=2
                )
            elif roll < 0.1:
                run.apply(client, seq, epoch=rng.choice(["EX", "E0"]))
            elif roll < 0.12:
                run.apply(client, seq, state="Bogus")
            else:
                run.apply(client, seq, delay=rng.choice([0.01, 0.05, 0.3, 7.0]))
        if rng.random() < 0.8:
            run.final(client, seq=run.head if rng.random() < 0.9 else 0)
    return run


def _samples(stats: DeliveryStats) -> list[float]:
    """The latency samples, in no particular order (a bin at a time: picking every rank of
    the whole run one by one takes seconds on a long one)."""
    samples = stats.samples()
    if not isinstance(samples, BinnedLatencies):
        return list(samples)
    return [kept[i] for _, kept in samples.sorted_bins() for i in range(len(kept))]


def _result(result: CheckResult, windows: list[FaultWindow]) -> dict[str, Any]:
    overall = result.overall
    return {
        "clients": result.clients,
        "channels": [astuple(c) for c in result.channels],
        "overall": (overall.expected, overall.delivered, overall.steady, overall.on_time),
        # By value: the order in which pairs are counted is not part of the result.
        "latencies": sorted(_samples(overall)),
        "anomalies": [(a.to_dict(), a.w) for a in result.anomalies],
        "counts": dict(result.counts),
        "windows": [
            (
                w.events_committed,
                w.stats.expected,
                w.stats.delivered,
                sorted(_samples(w.stats)),
                dict(w.caught_up),
            )
            for w in windows
        ],
    }


def _check(module: Any, entries: Any, run: Run, limit: int) -> dict[str, Any]:
    windows = fault_windows(entries, 0.5)
    result = module.check_records(
        entries,
        run.truth(),
        on_time_s=0.5,
        windows=windows,
        dates=run.config["dates"],
        max_anomalies=limit,
    )
    return _result(result, windows)


class _Clock:
    """Stands in for the writer's ``time`` module: the entry being written sets both clocks."""

    def __init__(self) -> None:
        self.t = self.w = 0.0

    def monotonic(self) -> float:
        return self.t

    def time(self) -> float:
        return self.w


def _write_compact(
    entries: Sequence[Entry[Record]], path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real writer, keeping each entry's ``t`` and ``w``, with one shared object
    per distinct apply (as the clients of one process share it): most applies become
    references."""
    clock = _Clock()
    monkeypatch.setattr(writer_module, "time", clock)
    writer = HistoryWriter(path, 0.0, flush_every=7)
    shared: dict[str, Record] = {}
    for e in entries:
        record = e.record
        if isinstance(record, Apply):
            record = shared.setdefault(json.dumps(record.to_json(), sort_keys=True), record)
        clock.t, clock.w = e.t, e.w
        writer.write(e.client, record)
    writer.close()
    monkeypatch.undo()


@pytest.mark.parametrize("seed", range(60))
def test_streaming_checker_matches_the_in_memory_one(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _random_run(seed)
    history = run.history()
    limit = (3, 100)[seed % 2]
    expected = _check(checker_reference, history.entries, run, limit)
    assert _check(checker_module, history.entries, run, limit) == expected
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(e.to_json()) + "\n" for e in history.entries))
    assert _check(checker_module, HistoryFile(plain), run, limit) == expected
    compact = tmp_path / "compact.jsonl"
    _write_compact(history.entries, compact, monkeypatch)
    # The writer rounds t to the microsecond.
    assert list(HistoryFile(compact)) == [replace(e, t=round(e.t, 6)) for e in history.entries]
    assert _check(checker_module, HistoryFile(compact), run, limit) == expected
    summary = summarize(history, run.truth()).to_dict()
    assert summarize(load_history(compact), run.truth()).to_dict() == summary


def test_the_random_runs_cover_every_anomaly() -> None:
    """The comparison above means something only if the runs break every rule."""
    seen: set[str] = set()
    for seed in range(60):
        run = _random_run(seed)
        result = checker_reference.check_records(
            run.history().entries, run.truth(), on_time_s=0.5, dates=run.config["dates"]
        )
        seen |= set(result.counts)
    assert seen == {"lost", "duplicate", "out_of_order", "phantom", "epoch_mixup", "not_converged"}


def _plain_copy(run: Path, folder: Path) -> Path:
    """The run in the format before compact applies: every record in full."""
    folder.mkdir()
    with open(folder / "history.jsonl", "w", encoding="utf-8") as out:
        for e in load_history(run / "history.jsonl").entries:
            out.write(json.dumps(e.to_json(), separators=(",", ":")) + "\n")
    shutil.copy(run / "truth.json", folder / "truth.json")
    return folder


#: The checker's numbers in ``expected-summary.json`` (what the in-memory checker made of
#: the run when it was recorded); the rest of the summary may grow with the report.
CHECKED = (
    "verdict",
    "clients",
    "expected_pairs",
    "delivered_pairs",
    "delivery_rate",
    "on_time_rate",
    "lost",
    "duplicates",
    "out_of_order",
    "phantoms",
    "epoch_mixups",
    "not_converged",
    "converged_clients",
    "latency_ms",
    "anomalies_total",
)


def _in_memory_summary(folder: Path) -> dict[str, Any]:
    """The summary by the in-memory path: the whole file parsed into a list, the reference
    checker, each part of the summary reading the records on its own."""
    text = (folder / "history.jsonl").read_text(encoding="utf-8")
    return summary_reference.summarize(
        parse_history(text), load_truth(folder / "truth.json")
    ).to_dict()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_recorded_runs_give_the_in_memory_checker_s_summary(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed from the compact file and from the same run written in full (as histories of
    older versions are), the summary is the in-memory path's, and the checker's numbers are
    those recorded with the run."""
    run = FIXTURES / name
    recorded = json.loads((run / "expected-summary.json").read_text())
    plain = _plain_copy(run, tmp_path / "plain")
    expected = _in_memory_summary(plain)
    assert {key: expected[key] for key in CHECKED} == {key: recorded[key] for key in CHECKED}
    for folder in (run, plain):
        assert check_run(folder).to_dict() == expected
    history = load_history(run / "history.jsonl")
    assert isinstance(history.entries, HistoryFile)
    assert any(isinstance(e.record, Apply) for e in history.entries)


def _long_run() -> Run:
    """900 events, 0.1 s apart, a fault from 40 s to 45 s and five clients, each long enough
    for its pairs to be counted while reading, in stretches: one on time throughout, one cut
    off by the fault (it catches up after the heal), one that never gets seqs 100-130, one
    late by seconds for a while, and one whose snapshot stands in for fifty applies."""
    run = Run(appointments=40)
    run.config = {"dates": [run.date]}
    run.commit(900)
    run.fault("start", BASE_W + 40.0)
    run.fault("end", BASE_W + 45.0)
    for c in range(5):
        run.connect(f"c{c:03d}", BASE_W)
        run.subscribed(f"c{c:03d}", 0, w=BASE_W + 0.01)
    run.apply("c000", *range(1, 901))
    for seq in range(1, 901):
        if 390 <= seq <= 460:  # replayed in order after the heal
            run.apply("c001", seq, delay=BASE_W + 46.0 + seq * 1e-4 - run.commit_w[seq])
        elif seq > 460:
            run.apply("c001", seq, delay=max(0.05, BASE_W + 46.1 - run.commit_w[seq]))
        else:
            run.apply("c001", seq)
    run.apply("c002", *(s for s in range(1, 901) if not 100 <= s <= 130))
    for seq in range(1, 901):  # held up for seconds from seq 600 (the next ones queue)
        late = BASE_W + 67.0 + seq * 1e-4 - run.commit_w[seq] if seq >= 600 else 0.0
        run.apply("c003", seq, delay=max(0.05, late))
    run.apply("c004", *range(1, 650))
    run.snapshot("c004", 700)
    run.apply("c004", *range(701, 901))
    for c in range(5):
        run.final(f"c{c:03d}")
    return run


def test_stretches_counted_at_once_count_as_pair_by_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most of a long run's pairs are counted a stretch at a time (``_account_applied``);
    the stretches near the fault, with a seq never applied, or under a snapshot, pair by
    pair: the numbers are the in-memory checker's either way."""
    run = _long_run()
    history = run.history()
    expected = _check(checker_reference, history.entries, run, 100)
    assert expected["counts"] == {"lost": 31, "out_of_order": 1}  # c002, at seq 131
    at_once: list[int] = []
    plain = checker_module._account_applied

    def counted(walk: Any, lo: int, hi: int, accounting: Any) -> bool:
        done = plain(walk, lo, hi, accounting)
        at_once.append(hi - lo if done else 0)
        return done

    monkeypatch.setattr(checker_module, "_account_applied", counted)
    assert _check(checker_module, history.entries, run, 100) == expected
    pairs = expected["overall"][0]
    assert sum(at_once) > pairs * 0.7 and 0 in at_once
    compact = tmp_path / "compact.jsonl"
    _write_compact(history.entries, compact, monkeypatch)
    assert _check(checker_module, HistoryFile(compact), run, 100) == expected


def _walk_and_accounting(seed: int) -> tuple[Any, Any]:
    """A walk of 300 seqs (commits 0.1 s apart) with its apply times, mostly 50 ms after the
    commit, a fifth late by about the deadline or by seconds or never applied, a few commit
    times unknown, and zero to two fault windows anywhere (maybe one not healed), counted
    into plain stats (their samples in order)."""
    rng = random.Random(seed)
    n = 300
    committed = [BASE_W + seq * 0.1 for seq in range(n + 1)]
    applied: list[float] = [math.nan]
    for seq in range(1, n + 1):
        roll = rng.random()
        delay = 0.05 if roll < 0.8 else rng.choice([0.49, 0.5, 0.51, 2.0, 4.0, math.nan])
        applied.append(committed[seq] + delay)
        if rng.random() < 0.005:
            committed[seq] = math.nan
    windows = []
    for i in range(rng.choice([0, 1, 2])):
        start = BASE_W + rng.uniform(-2, 32)
        end = None if rng.random() < 0.2 else start + rng.uniform(0.1, 3)
        stats = DeliveryStats(0.5)
        windows.append(FaultWindow(f"f{i}", "down", 1.0, start, end, 0.0, None, stats))
    accounting = checker_module.Accounting(DeliveryStats(0.5), windows)
    walk = checker_module._ChannelWalk(
        "c000", "2026-11-26", None, lambda date, epoch: True, checker_module._Collector(100)
    )
    walk.start, walk.base, walk.limit = 0, 0, n + 1
    walk.applied_w = array("d", applied)
    walk.commit_w = array("d", committed)
    for seq in range(1, n + 1):
        if committed[seq] != committed[seq]:
            walk.record_commit_at[seq] = None
    return walk, accounting


def _counted(walk: Any, accounting: Any) -> dict[str, Any]:
    def stats(s: DeliveryStats) -> tuple[object, ...]:
        return (
            s.expected,
            s.delivered,
            s.steady,
            s.on_time,
            list(s.latencies_ms),
            list(s.applied_at),
        )

    return {
        "overall": stats(accounting.overall),
        "windows": [(stats(w.stats), dict(w.caught_up)) for w in accounting.windows],
        "walk": (walk.expected, walk.delivered, walk.covered_only.starts, walk.covered_only.ends),
        "anomalies": [(a.to_dict(), a.w) for a in walk.sink.anomalies],
    }


@pytest.mark.parametrize("seed", range(80))
def test_counting_a_stretch_at_once_is_counting_each_pair(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_account`` (stretches at once where it can; short ones here, so that some end or
    begin at every edge of a window) against ``_account_each`` (pair by pair) on the same
    walk: the same counts, samples in the same order, the same catch-up times and the same
    lost seqs; faults anywhere, pairs late by about the deadline."""
    monkeypatch.setattr(checker_module, "_STRETCH", 3 + seed % 5)
    walk, accounting = _walk_and_accounting(seed)
    checker_module._account(walk, 0, 300, accounting)
    each_walk, each_accounting = _walk_and_accounting(seed)
    checker_module._account_each(each_walk, 0, 300, each_accounting, {})
    assert _counted(walk, accounting) == _counted(each_walk, each_accounting)


def test_the_stretches_above_are_counted_both_ways() -> None:
    """The comparison above means something only if both ways count pairs there, and near
    every edge of a window."""
    at_once = each = 0
    for seed in range(80):
        walk, accounting = _walk_and_accounting(seed)
        for start in range(0, 300, 10):
            if checker_module._account_applied(walk, start, start + 10, accounting):
                at_once += 1
            else:
                each += 1
    assert at_once > 1000 and each > 200
