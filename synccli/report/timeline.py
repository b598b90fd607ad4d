"""The run over time, for the report's timeline (drawn by ``report.timeline_svg``).

After jepsen's ``checker/timeline.clj`` and ``perf.clj``: time on x, the fault windows,
commit → apply latency per time bin (p50 and p99), the records that show a client
recovering (reconnects, gap fills, resyncs) as markers, and one lane per client saying
whether it was connected, offline or syncing — or, with many clients, the share of clients
in each state per bin. Each anomaly keeps the records of its client around it, so the page
can link from the anomaly to them. Times are seconds since the run started (wall clock).
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from synccli.history import (
    Connect,
    ConnectFailed,
    Disconnect,
    Entry,
    Final,
    Gap,
    GapRecovered,
    History,
    Record,
    Resync,
    RunStart,
    SnapshotTaken,
    Subscribed,
)
from synccli.report.checker import Anomaly, CheckResult
from synccli.report.client_view import Step, steps_of
from synccli.report.client_view import near as steps_near
from synccli.report.metrics import BinnedLatencies, DeliveryStats, FaultWindow, nearest_rank
from synccli.report.nodes import NodeSegment, NodeTracker
from synccli.report.truth import Truth

STATES = ("connected", "syncing", "offline")
MARKER_KINDS = ("reconnect", "gap_recovered", "resync")
MAX_BINS = 300
#: Records of a client shown around an anomaly: those this close in time, at most this many.
EXCERPT_S = 2.0
EXCERPT_RECORDS = 30


#: A part of a client's lane: (start, end, state).
Segment = tuple[float, float, str]


@dataclass(frozen=True, slots=True)
class Span:
    """A fault window on the timeline; ``end`` None: it never ended."""

    name: str
    kind: str
    start: float
    end: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LatencyBin:
    start: float
    p50: float
    p99: float
    count: int


@dataclass(frozen=True, slots=True)
class Excerpt:
    """An anomaly and its client's records around it (``(t, JSON of the record)``), and
    the client's steps around its sequence number as ``synccli report --client ID --around
    SEQ`` shows them (none when it has no sequence number or there is no truth)."""

    anomaly: Anomaly
    t: float | None
    records: list[tuple[float, str]]
    steps: list[Step] = field(default_factory=list)


@dataclass(slots=True)
class Timeline:
    """What the timeline draws (see the module docstring)."""

    duration: float
    bin_s: float
    faults: list[Span]
    latency: list[LatencyBin]
    markers: dict[str, list[float]]
    lanes: dict[str, list[Segment]]
    excerpts: list[Excerpt] = field(default_factory=list)
    #: Per client, the node it was connected to over time (a cluster run; else empty).
    nodes: dict[str, list[NodeSegment]] = field(default_factory=dict)

    def state_shares(self) -> list[dict[str, int]]:
        """Per bin, how many clients were in each state at its middle (aggregate lanes)."""
        bins = max(1, math.ceil(self.duration / self.bin_s))
        shares = [dict.fromkeys(STATES, 0) for _ in range(bins)]
        for segments in self.lanes.values():
            for start, end, state in segments:
                first = max(0, math.ceil(start / self.bin_s - 0.5))
                last = min(bins - 1, math.ceil(end / self.bin_s - 0.5) - 1)
                for i in range(first, last + 1):
                    shares[i][state] += 1
        return shares


def _bin_size(duration: float) -> float:
    """One second per bin, coarser for long runs so a chart stays readable."""
    return max(1.0, math.ceil(duration / MAX_BINS))


def _latency_bins(stats: DeliveryStats, w0: float, bin_s: float) -> list[LatencyBin]:
    binned = stats.binned
    if binned is None:
        binned = BinnedLatencies(w0, bin_s)
        add = binned.adder()
        for w, ms in zip(stats.applied_at, stats.latencies_ms, strict=True):
            add(w, ms)
    elif binned.w0 != w0:
        raise ValueError(f"latencies binned from {binned.w0}, the timeline starts at {w0}")
    return [
        LatencyBin(i * bin_s, nearest_rank(samples, 0.5), nearest_rank(samples, 0.99), len(samples))
        for i, samples in binned.sorted_bins(bin_s)
    ]


def _next_state(state: str | None, record: Record, pending: set[str]) -> str | None:
    """A client's lane state after ``record``; ``pending`` holds the dates it is syncing."""
    if isinstance(record, Disconnect | ConnectFailed):
        pending.clear()
        return "offline"
    if isinstance(record, Connect):
        return "syncing"
    if isinstance(record, Gap | Resync):
        pending.add(record.date)
        return "syncing"
    if isinstance(record, GapRecovered | Subscribed | SnapshotTaken):
        pending.discard(record.date)
        return "syncing" if pending else "connected"
    return state


#: The records that change a client's lane (``_next_state``), and ``final``, which ends it.
LANE_KINDS = (
    Connect,
    ConnectFailed,
    Disconnect,
    Gap,
    GapRecovered,
    Resync,
    Subscribed,
    SnapshotTaken,
    Final,
)


def _lane(records: list[tuple[float, Record]], w0: float, duration: float) -> list[Segment]:
    """One client's segments from its lane records (in history order)."""
    records.sort(key=lambda wr: wr[0])
    segments: list[Segment] = []
    state: str | None = None
    since = 0.0
    pending: set[str] = set()
    end = duration
    for w, record in records:
        if isinstance(record, Final):
            end = w - w0
            break
        new = _next_state(state, record, pending)
        if new != state:
            if state is not None:
                segments.append((since, w - w0, state))
            state, since = new, w - w0
    if state is not None and end > since:
        segments.append((since, end, state))
    return segments


class TimelineReader:
    """What the timeline needs, fed one record at a time in history order (``feed``, any
    but an ``apply``, which changes nothing here): the lane records of each client, the
    markers, the run's start. ``build`` makes the timeline; it reads the history once more
    only when there are anomalies, for the records around them."""

    def __init__(self) -> None:
        self.start_w: float | None = None
        self._lanes: dict[str, list[tuple[float, Record]]] = {}
        self._markers: dict[str, list[float]] = {kind: [] for kind in MARKER_KINDS}
        self._connected: set[str | None] = set()
        #: Which node each client was on (a cluster run), also read by the summary.
        self.nodes = NodeTracker()

    def feed(self, w: float, client: str | None, r: Record) -> None:
        self.nodes.feed(w, client, r)
        if isinstance(r, RunStart):
            if self.start_w is None:
                self.start_w = w
            return
        if isinstance(r, Connect):
            if client in self._connected:
                self._markers["reconnect"].append(w)
            self._connected.add(client)
        elif isinstance(r, GapRecovered):
            self._markers["gap_recovered"].append(w)
        elif isinstance(r, Resync):
            self._markers["resync"].append(w)
        if client is not None and isinstance(r, LANE_KINDS):
            self._lanes.setdefault(client, []).append((w, r))

    def bins(self, first_w: float | None, last_w: float | None) -> tuple[float, float, float]:
        """The run's start, duration and latency bin size (``build``'s arguments)."""
        w0 = self.start_w if self.start_w is not None else (first_w or 0.0)
        last = w0 if last_w is None else last_w
        duration = max(last - w0, 1.0)
        return w0, duration, _bin_size(duration)

    def build(
        self,
        history: History,
        result: CheckResult,
        windows: Sequence[FaultWindow],
        first_w: float | None,
        last_w: float | None,
        truth: Truth | None = None,
    ) -> Timeline:
        """The timeline; ``first_w``/``last_w``: the first record's and the latest time of
        the run (None: no records). With ``truth``, each anomaly's excerpt also has the
        client's steps beside what the database committed."""
        w0, duration, bin_s = self.bins(first_w, last_w)
        spans = [
            Span(w.name, w.kind, w.start_w - w0, None if w.end_w is None else w.end_w - w0, w.error)
            for w in windows
        ]
        stats = result.overall
        empty: list[tuple[float, Record]] = []
        return Timeline(
            duration=duration,
            bin_s=bin_s,
            faults=spans,
            latency=_latency_bins(stats, w0, bin_s),
            markers={k: [w - w0 for w in ws] for k, ws in self._markers.items()},
            lanes={
                client: _lane(self._lanes.get(client, empty), w0, duration)
                for client in sorted(result.clients)
            },
            excerpts=_excerpts(history, result.anomalies, w0, truth),
            nodes=self.nodes.lanes(duration, w0),
        )


def _excerpts(
    history: History, anomalies: Sequence[Anomaly], w0: float, truth: Truth | None
) -> list[Excerpt]:
    """The records around each anomaly: one more pass, keeping only those of the anomalies'
    clients near their times (or, for an anomaly with no time, its client's last ones), and
    with ``truth`` all of their records, for their steps (``client_view``)."""
    if not anomalies:
        return []
    near: dict[str, list[tuple[float, float]]] = {}
    tail: set[str] = set()
    for a in anomalies:
        if a.w is None:
            tail.add(a.client)
        else:
            near.setdefault(a.client, []).append((a.w - EXCERPT_S, a.w + EXCERPT_S))
    kept: dict[str, list[Entry[Record]]] = {}
    in_order: dict[str, list[Entry[Record]]] = {}
    latest: dict[str, list[tuple[float, int, Entry[Record]]]] = {}
    n = 0
    for e in history.entries:
        client = e.client
        if client is None or (client not in near and client not in tail):
            continue
        n += 1
        if truth is not None:
            in_order.setdefault(client, []).append(e)
        if any(lo <= e.w <= hi for lo, hi in near.get(client, ())):
            kept.setdefault(client, []).append(e)
        if client in tail:
            # The client's last EXCERPT_RECORDS by time (ties: the later in the file).
            heap = latest.setdefault(client, [])
            item = (e.w, n, e)
            if len(heap) < EXCERPT_RECORDS:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    for entries in kept.values():
        entries.sort(key=lambda e: e.w)
    steps: dict[str, list[Step]] = {}
    out = []
    for a in anomalies:
        around: list[Step] = []
        if truth is not None and a.seq is not None:
            if a.client not in steps:
                steps[a.client] = steps_of(in_order.get(a.client, []), truth)
            around = steps_near(steps[a.client], a.seq)
        if a.w is None:
            records = [e for _, _, e in sorted(latest.get(a.client, []), key=lambda x: x[:2])]
        else:
            lo, hi = a.w - EXCERPT_S, a.w + EXCERPT_S
            records = [e for e in kept.get(a.client, []) if lo <= e.w <= hi]
        out.append(_excerpt(a, records, w0, around))
    return out


def _excerpt(
    anomaly: Anomaly, entries: list[Entry[Record]], w0: float, steps: list[Step]
) -> Excerpt:
    """``entries``: the client's records within ``EXCERPT_S`` of the anomaly in time order,
    or its last ones if the anomaly has no time."""
    at = anomaly.w
    if at is None:
        near = entries
    else:
        near = sorted(entries, key=lambda e: abs(e.w - at))[:EXCERPT_RECORDS]
        near.sort(key=lambda e: e.w)
    rows = [(round(e.w - w0, 3), json.dumps(e.record.to_json(), sort_keys=True)) for e in near]
    t = None if at is None else round(at - w0, 3)
    around = [] if steps is None or anomaly.seq is None else steps_near(steps, anomaly.seq)
    return Excerpt(anomaly, t, rows, around)


def build_timeline(
    history: History,
    result: CheckResult,
    windows: Sequence[FaultWindow],
    truth: Truth | None = None,
) -> Timeline:
    """The timeline of a checked run (reading its records; ``summarize`` feeds a
    ``TimelineReader`` in its own pass instead); ``truth``: see ``TimelineReader.build``."""
    reader = TimelineReader()
    first_w = last_w = None
    for e in history.entries:
        if first_w is None:
            first_w = e.w
        last_w = e.w if last_w is None else max(last_w, e.w)
        reader.feed(e.w, e.client, e.record)
    return reader.build(history, result, windows, first_w, last_w, truth)
