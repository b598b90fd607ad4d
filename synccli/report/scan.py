"""One pass over a run's records, feeding every part of the summary at once: the checker,
the fault windows and their traces, the record counters and the timeline (``read_run``).

A long run's records are nearly all ``apply`` lines, which only the checker needs: they go
straight to their channel's walk, and every other record to each part. A ``HistoryFile``
opened lazily is so read once (plus, for the timeline's excerpts, once more when there are
anomalies, and for the announced epochs when an apply needs them), after a search of the
file for its ``run_start`` and ``fault`` lines (``read_faults``): with the fault windows
known, the checker counts as it reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from synccli.history import Apply, ClientCreated, Entry, Fault, History, Record, RunStart
from synccli.history.reader import HistoryFile
from synccli.report.checker import (
    Accounting,
    Checker,
    collector_paused,
    known_epochs,
    row_batches,
)
from synccli.report.metrics import RecordCounter, TraceReader, WindowReader
from synccli.report.timeline import TimelineReader
from synccli.report.truth import Truth


@dataclass(slots=True)
class RunRead:
    """What one pass over a run's records gathered, each part waiting for its ``result``,
    ``windows``, ``count``, ``counters`` or ``build`` call."""

    checker: Checker
    windows: WindowReader = field(default_factory=WindowReader)
    traces: TraceReader = field(default_factory=TraceReader)
    counter: RecordCounter = field(default_factory=RecordCounter)
    timeline: TimelineReader = field(default_factory=TimelineReader)
    #: The kinds of the clients' records (the harness's left out).
    client_kinds: set[type[Record]] = field(default_factory=set)
    browser_clients: int = 0
    #: Of those, the ones that write.
    browser_writers: int = 0
    #: The first record's time and the latest time in the run (None: no records).
    first_w: float | None = None
    last_w: float | None = None
    #: Where the checker counted while reading (set with the first records).
    accounting: Accounting | None = None


@dataclass(slots=True)
class Faults:
    """What is read before the rest (``read_faults``): the first ``run_start`` and the
    fault windows."""

    start: Entry[RunStart] | None
    windows: WindowReader


def read_faults(history: History) -> Faults:
    """The first ``run_start`` and the fault windows: searches of the file for the lines
    that name them (the first ``run_start`` is usually its first line)."""
    entries = history.entries
    faults = Faults(None, WindowReader())
    if isinstance(entries, HistoryFile):
        faults.start = next(entries.of_kinds(RunStart), None)  # type: ignore[assignment]
        found: Iterable[Entry[Record]] = entries.of_kinds(Fault)
    else:
        found = entries
    for e in found:
        if isinstance(e.record, Fault):
            faults.windows.feed(e.t, e.w, e.record)
        elif faults.start is None and isinstance(e.record, RunStart):
            faults.start = e  # type: ignore[assignment]
    return faults


def read_run(
    history: History,
    truth: Truth,
    faults: Faults,
    *,
    on_time_s: float,
    max_anomalies: int = 100,
) -> RunRead:
    """Read ``history`` once, checking it against ``truth`` as it goes. With its
    ``faults`` (``read_faults``) known, the checker counts each client's pairs while
    reading, on time within ``on_time_s``: in bounded memory, the latency samples kept in
    a temporary file (``samples.Spill``)."""
    with collector_paused():
        return _read(history, truth, faults, on_time_s, max_anomalies)


def _read(
    history: History, truth: Truth, faults: Faults, on_time_s: float, max_anomalies: int
) -> RunRead:
    entries = history.entries
    read = RunRead(
        Checker(truth, all_epochs=lambda: known_epochs(entries), max_anomalies=max_anomalies),
        windows=faults.windows,
    )
    windows = read.windows.windows(on_time_s)

    def count_into(w0: float) -> None:
        # The samples by second from the run's start, as the timeline's bins are.
        read.accounting = read.checker.accounting = Accounting.spilled(on_time_s, windows, w0)

    walks, walk, check = read.checker.walks, read.checker.walk, read.checker.feed
    trace = read.traces.feed
    count, timeline = read.counter.feed, read.timeline.feed
    client_kinds = read.client_kinds
    last_w = -float("inf")
    for rows in row_batches(entries):
        if read.first_w is None:
            read.first_w = rows[0][1]
            count_into(faults.start.w if faults.start is not None else read.first_w)
        for _, w, client, r in rows:
            if w > last_w:
                last_w = w
            if type(r) is Apply and client is not None:
                (walks.get((client, r.date)) or walk(client, r.date)).apply(w, r)
                continue
            check(w, client, r)
            if client is not None:
                client_kinds.add(type(r))
            if type(r) is ClientCreated and r.browser:
                read.browser_clients += 1
                read.browser_writers += r.writer
            trace(w, client, r)
            count(client, r)
            timeline(w, client, r)
    if read.first_w is not None:
        read.last_w = last_w
    else:  # no records
        count_into(0.0)
    return read
