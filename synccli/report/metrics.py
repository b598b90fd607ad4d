"""Metrics over a run: delivery and latency accumulators, fault windows, record counters.

Latency percentiles are exact (nearest rank over the sorted samples), never averages: a
99.9th percentile hidden by an average is exactly the kind of tail this harness hunts.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from synccli.history import (
    Connect,
    Entry,
    Fault,
    Record,
    ServerLifecycle,
    SnapshotTaken,
    Subscribed,
    Write,
    WriteResult,
)
from synccli.report.samples import Ordered, Ranked, SampleStore, Spill

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))
# A fault leaves its mark shortly after it ends too (a client notices a dead link on its
# next heartbeat, a client it cut off is still in its reconnect backoff, capped at 5 s), so
# traces are looked for this long past the window's end, and pairs committed this soon after
# it are not counted as steady for the on-time rate.
TRACE_GRACE_S = 5.0
# Latency toxics leave no record of their own: a window whose p99 is this many times the
# run's median counts as traced.
LATENCY_TRACE_FACTOR = 2.0
TRACE_KINDS = (
    "disconnect",
    "connect_failed",
    "reconnect",
    "gap",
    "resync",
    "dup",
    "write_failed",
    "rollback",
    "server_restart",
)


class BinnedLatencies:
    """A run's latency samples grouped by the time bin they were applied in (``bin_s``
    seconds from ``w0``), in bounded memory (``samples.SampleStore``): what both the
    percentiles and the timeline's per-bin latencies need, without a time or a bin number
    per sample. ``ranked`` and ``sorted_bins`` end the adding."""

    def __init__(self, w0: float, bin_s: float, spill: Spill | None = None) -> None:
        self.w0, self.bin_s = w0, bin_s
        self.store = SampleStore(spill if spill is not None else Spill())
        self._add: Callable[[float, float], None] | None = None

    def add(self, applied_w: float, ms: float) -> None:
        if self._add is None:
            self._add = self.adder()
        self._add(applied_w, ms)

    def adder(self) -> Callable[[float, float], None]:
        """``add`` with its lookups made once, for a loop over millions of samples."""
        return self.store.adder(self.w0, self.bin_s)

    def extender(self) -> Callable[[Sequence[float], Sequence[float]], None]:
        """``adder`` for many samples at once (``SampleStore.extender``)."""
        return self.store.extender(self.w0, self.bin_s)

    def __len__(self) -> int:
        return len(self.store)

    def mean(self) -> float | None:
        return self.store.mean()

    def sorted_bins(self, bin_s: float | None = None) -> Iterator[tuple[int, Ordered]]:
        """Each bin of ``bin_s`` seconds from ``w0`` (default: this one's bins) with its
        samples in ascending order, by bin; a bin's samples are read as it comes, so keep
        only what is needed of each. ``bin_s`` must be a whole multiple of this one's."""
        factor = 1 if bin_s is None else round(bin_s / self.bin_s)
        if factor < 1 or not math.isclose(factor * self.bin_s, bin_s or self.bin_s):
            raise ValueError(f"bins of {bin_s} s cannot be made of bins of {self.bin_s} s")
        keys: dict[int, list[int]] = {}
        for key in self.store.bin_keys():
            keys.setdefault(key // factor, []).append(key)
        return ((i, self.store.ordered(fine)) for i, fine in keys.items())

    def ranked(self) -> Ordered:
        return self.store.ordered()


def ranked(samples: Sequence[float] | BinnedLatencies) -> Ordered:
    """``samples`` in ascending order, for nearest-rank picks."""
    return samples.ranked() if isinstance(samples, BinnedLatencies) else Ranked(samples)


def mean(samples: Sequence[float] | BinnedLatencies) -> float | None:
    """The samples' mean (None: no samples)."""
    if isinstance(samples, BinnedLatencies):
        return samples.mean()
    return math.fsum(samples) / len(samples) if len(samples) else None


def nearest_rank(ordered: Ordered, q: float) -> float:
    """The ``q`` quantile of the sorted, non-empty ``ordered`` by nearest rank."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def percentiles(samples: Sequence[float] | BinnedLatencies) -> dict[str, float | int | None]:
    """``{p50, p90, p99, p999, max, count}`` by nearest rank; values are None without samples."""
    ordered = ranked(samples)
    count = len(ordered)
    out: dict[str, float | int | None] = {}
    for name, q in PERCENTILES:
        out[name] = round(nearest_rank(ordered, q), 3) if count else None
    out["max"] = round(ordered[-1], 3) if count else None
    out["count"] = count
    return out


@dataclass(slots=True)
class DeliveryStats:
    """Expected (client, event) pairs, how many were delivered, on time, and with what latency.

    A pair is on time when it was delivered (applied, or covered by a snapshot) within
    ``on_time_s`` of its commit; a pair whose commit time is unknown (pruned from the log and
    covered by a snapshot) counts as on time when delivered. The on-time rate is taken over
    the *steady* pairs only: those committed outside every fault window and its
    ``TRACE_GRACE_S`` aftermath. A client a fault took offline cannot be on time, only
    eventually right, until it has reconnected; the per-window stats show how late it was.
    """

    on_time_s: float
    expected: int = 0
    delivered: int = 0
    steady: int = 0
    on_time: int = 0
    # As 8-byte floats, not float objects (a fault window of a long run holds millions).
    latencies_ms: list[float] = field(default_factory=lambda: cast(list[float], array("d")))
    #: When each latency sample was applied (wall clock), for the report's timeline.
    applied_at: list[float] = field(default_factory=lambda: cast(list[float], array("d")))
    #: Where the samples go instead of ``latencies_ms`` and ``applied_at``, if set.
    binned: BinnedLatencies | None = None

    def add(
        self,
        committed_w: float | None,
        delivered_w: float | None,
        applied_w: float | None,
        steady: bool = True,
    ) -> None:
        """Count one expected pair. ``applied_w`` is set when an ``apply`` delivered it;
        ``steady`` is false for a pair committed inside a fault window."""
        self.expected += 1
        self.steady += steady
        if delivered_w is None:
            return
        self.delivered += 1
        if steady and (committed_w is None or delivered_w - committed_w <= self.on_time_s):
            self.on_time += 1
        if applied_w is not None and committed_w is not None:
            ms = (applied_w - committed_w) * 1000.0
            if self.binned is not None:
                self.binned.add(applied_w, ms)
            else:
                self.latencies_ms.append(ms)
                self.applied_at.append(applied_w)

    def sampler(self) -> Callable[[float, float], None]:
        """What keeps a latency sample: called with the time it was applied and the
        latency in milliseconds."""
        if self.binned is not None:
            return self.binned.adder()
        latencies, applied_at = self.latencies_ms, self.applied_at

        def keep(applied_w: float, ms: float) -> None:
            latencies.append(ms)
            applied_at.append(applied_w)

        return keep

    def extender(self) -> Callable[[Sequence[float], Sequence[float]], None]:
        """``sampler`` for many samples at once: called with the times they were applied
        and their latencies in milliseconds, in step."""
        if self.binned is not None:
            return self.binned.extender()
        latencies, applied_at = self.latencies_ms, self.applied_at

        def keep(applied_ws: Sequence[float], mss: Sequence[float]) -> None:
            latencies.extend(mss)
            applied_at.extend(applied_ws)

        return keep

    def samples(self) -> Sequence[float] | BinnedLatencies:
        """The latency samples (``binned``, or ``latencies_ms``)."""
        return self.binned if self.binned is not None else self.latencies_ms

    @property
    def delivery_rate(self) -> float:
        return self.delivered / self.expected if self.expected else 1.0

    @property
    def on_time_rate(self) -> float:
        return self.on_time / self.steady if self.steady else 1.0


@dataclass(slots=True)
class FaultWindow:
    """One fault from its ``start`` to its ``end`` record (wall-clock ``w`` seconds)."""

    name: str
    kind: str
    target: Any
    start_w: float
    end_w: float | None
    start_t: float
    end_t: float | None
    stats: DeliveryStats
    error: str | None = None
    events_committed: int = 0
    traces: Counter[str] = field(default_factory=Counter)
    #: The fault's own counters from its ``end`` record (packets dropped, database errors).
    #: They are direct proof, so when present they alone decide whether the fault acted:
    #: a neighbouring fault's records must not vouch for a loss rule that dropped nothing.
    evidence: dict[str, int] | None = None
    #: Per client behind when the fault healed: seconds from the window's end until it had
    #: every expected event committed before that end; None when it never caught up.
    caught_up: dict[str, float | None] = field(default_factory=dict)

    def contains(self, w: float, grace: float = 0.0) -> bool:
        end = math.inf if self.end_w is None else self.end_w + grace
        return self.start_w <= w <= end

    def latency_traced(self, run_p50_ms: float | None) -> bool:
        p99 = percentiles(self.stats.samples())["p99"]
        if p99 is None or run_p50_ms is None:
            return False
        return p99 >= LATENCY_TRACE_FACTOR * max(run_p50_ms, 1.0)

    def traced(self, run_p50_ms: float | None) -> bool:
        if self.evidence is not None:
            return any(n > 0 for n in self.evidence.values())
        return sum(self.traces.values()) > 0 or self.latency_traced(run_p50_ms)

    def to_dict(self, run_p50_ms: float | None) -> dict[str, Any]:
        traced = self.traced(run_p50_ms)
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "start_t": self.start_t,
            "end_t": self.end_t,
            "error": self.error,
            "events_committed": self.events_committed,
            "expected_pairs": self.stats.expected,
            "delivered_pairs": self.stats.delivered,
            "delivery_rate": round(self.stats.delivery_rate, 6),
            "on_time_rate": round(self.stats.on_time_rate, 6),
            "latency_ms": percentiles(self.stats.samples()),
            "traces": {kind: self.traces[kind] for kind in TRACE_KINDS if self.traces[kind]},
            "evidence": self.evidence,
            "no_trace": self.error is None and not traced,
        }


def _window(t: float, w: float, r: Fault) -> FaultWindow:
    return FaultWindow(
        name=r.name or f"{r.fault_kind}@{r.target}",
        kind=str(r.fault_kind),
        target=r.target,
        start_w=w,
        end_w=None,
        start_t=t,
        end_t=None,
        stats=DeliveryStats(0.0),
    )


class WindowReader:
    """``fault_windows`` fed one ``fault`` record at a time (``feed``), in history order."""

    def __init__(self) -> None:
        self._windows: list[FaultWindow] = []
        self._open: dict[str, FaultWindow] = {}

    def feed(self, t: float, w: float, r: Fault) -> None:
        window = _window(t, w, r)
        phase = r.phase
        if phase == "start":
            self._windows.append(window)
            self._open[window.name] = window
            return
        if phase not in ("end", "error"):
            return
        if window.name in self._open:
            window = self._open.pop(window.name)
        elif phase == "end":
            return
        else:
            self._windows.append(window)
        window.end_w, window.end_t = w, t
        evidence = r.evidence
        if isinstance(evidence, dict):
            window.evidence = {str(k): int(v) for k, v in evidence.items()}
        if phase == "error":
            window.error = r.error or "the fault could not be applied"

    def windows(self, on_time_s: float) -> list[FaultWindow]:
        """The windows so far, in start order, their stats counting on time within
        ``on_time_s``."""
        for window in self._windows:
            window.stats.on_time_s = on_time_s
        return self._windows


def fault_windows(entries: Iterable[Entry[Record]], on_time_s: float) -> list[FaultWindow]:
    """The fault windows of a run, from its ``fault`` records, in start order. A fault with
    no ``end`` lasts to the end of the run; a ``phase: error`` closes its window (or makes a
    new, empty one) and marks it with the error."""
    reader = WindowReader()
    for e in entries:
        if isinstance(e.record, Fault):
            reader.feed(e.t, e.w, e.record)
    return reader.windows(on_time_s)


def _trace_kind(client: str | None, r: Record, seen_clients: set[str]) -> str | None:
    if isinstance(r, Connect):
        name = str(client)
        if name in seen_clients:
            return "reconnect"
        seen_clients.add(name)
        return None
    if isinstance(r, WriteResult):
        return None if r.ok else "write_failed"
    if isinstance(r, ServerLifecycle):
        return "server_restart" if r.event in ("kill", "restart") else None
    return r.kind if r.kind in TRACE_KINDS else None


class TraceReader:
    """``count_traces`` fed one record at a time (``feed``, any but an ``apply``), then
    counted into the windows (``count``, once they are all known)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._traces: list[tuple[float, str]] = []

    def feed(self, w: float, client: str | None, r: Record) -> None:
        trace = _trace_kind(client, r, self._seen)
        if trace is not None:
            self._traces.append((w, trace))

    def count(self, windows: list[FaultWindow]) -> None:
        for w, trace in self._traces:
            for window in windows:
                if window.contains(w, TRACE_GRACE_S):
                    window.traces[trace] += 1


def count_traces(entries: Iterable[Entry[Record]], windows: list[FaultWindow]) -> None:
    """Count, per window, the records that show a fault had an effect (``TRACE_KINDS``)."""
    reader = TraceReader()
    for e in entries:
        reader.feed(e.w, e.client, e.record)
    reader.count(windows)


@dataclass(frozen=True, slots=True)
class Counters:
    """Counts read straight off the records. A client gets back to the head three ways:
    replay on resume (a ``subscribed`` answer with ``recovered: true``, ``replayed_events``
    in all), an in-stream gap fill (``gap_recovered``) or a snapshot resync (a ``snapshot``,
    or a ``subscribed`` with ``recovered: false`` after the client's first for that date)."""

    gaps_detected: int
    gap_recoveries: int
    replay_resumes: int
    replayed_events: int
    snapshot_resyncs: int
    resyncs: int
    reconnects: int
    rollbacks: int
    writes: dict[str, Any]


class RecordCounter:
    """``count_records`` fed one record at a time (``feed``; an ``apply`` counts for
    nothing here, so a caller may leave those out)."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.connected: set[str] = set()
        self.subscribed: set[tuple[str | None, str]] = set()
        self.reconnects = self.sent = self.ok = self.replays = self.replayed = 0
        self.snapshots = 0

    def feed(self, client: str | None, r: Record) -> None:
        self.kinds[r.kind] += 1
        if isinstance(r, Subscribed):
            if r.recovered:
                self.replays += 1
                self.replayed += r.events
            elif (client, r.date) in self.subscribed:
                self.snapshots += 1
            self.subscribed.add((client, r.date))
        elif isinstance(r, SnapshotTaken):
            self.snapshots += 1
        elif isinstance(r, Connect):
            name = str(client)
            self.reconnects += name in self.connected
            self.connected.add(name)
        elif isinstance(r, Write) and r.attempt <= 1:
            self.sent += 1
        elif isinstance(r, WriteResult):
            if r.ok:
                self.ok += 1
            else:
                self.failed[r.code or "unknown"] += 1

    def counters(self) -> Counters:
        kinds = self.kinds
        return Counters(
            gaps_detected=kinds["gap"],
            gap_recoveries=kinds["gap_recovered"],
            replay_resumes=self.replays,
            replayed_events=self.replayed,
            snapshot_resyncs=self.snapshots,
            resyncs=kinds["resync"],
            reconnects=self.reconnects,
            rollbacks=kinds["rollback"],
            writes={"sent": self.sent, "ok": self.ok, "failed": dict(sorted(self.failed.items()))},
        )


def count_records(entries: Iterable[Entry[Record]]) -> Counters:
    """Gaps, recoveries (each way), resyncs, reconnects (connects after a client's first),
    rollbacks and write outcomes (``sent`` first attempts, ``ok``, ``failed`` by error code)."""
    counter = RecordCounter()
    for e in entries:
        counter.feed(e.client, e.record)
    return counter.counters()


def server_metric(metrics: dict[str, Any] | None, name: str) -> int | None:
    """The value of a scraped Prometheus counter, summed over its label sets; None when the
    server's metrics were not scraped or lack it (an external server may not export it)."""
    if metrics is None:
        return None
    values = [
        v
        for key, v in metrics.items()
        if (key == name or key.startswith(name + "{")) and isinstance(v, int | float)
    ]
    return int(sum(values)) if values else None
