"""The run over time, for the report's timeline (drawn by ``report.timeline_svg``).

After jepsen's ``checker/timeline.clj`` and ``perf.clj``: time on x, the fault windows,
commit → apply latency per time bin (p50 and p99), the records that show a client
recovering (reconnects, gap fills, resyncs) as markers, and one lane per client saying
whether it was connected, offline or syncing — or, with many clients, the share of clients
in each state per bin. Each anomaly keeps the records of its client around it, so the page
can link from the anomaly to them. Times are seconds since the run started (wall clock).
"""

from __future__ import annotations

import bisect
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
from synccli.report.metrics import FaultWindow, nearest_rank
from synccli.report.nodes import NodeSegment, node_view
from synccli.report.truth import Truth

STATES = ("connected", "syncing", "offline")
MARKER_KINDS = ("reconnect", "gap_recovered", "resync")
MAX_BINS = 300
#: Records of a client shown around an anomaly: those this close in time, at most this many.
EXCERPT_S = 2.0
EXCERPT_RECORDS = 30


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
    lanes: dict[str, list[tuple[float, float, str]]]
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


def _latency_bins(
    applied_at: Sequence[float], latencies_ms: Sequence[float], w0: float, bin_s: float
) -> list[LatencyBin]:
    binned: dict[int, list[float]] = {}
    for w, ms in zip(applied_at, latencies_ms, strict=True):
        binned.setdefault(int((w - w0) // bin_s), []).append(ms)
    out = []
    for i in sorted(binned):
        samples = sorted(binned[i])
        out.append(
            LatencyBin(
                i * bin_s, nearest_rank(samples, 0.5), nearest_rank(samples, 0.99), len(samples)
            )
        )
    return out


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


def _lanes(
    by_client: dict[str, list[Entry[Record]]], w0: float, duration: float
) -> dict[str, list[tuple[float, float, str]]]:
    lanes: dict[str, list[tuple[float, float, str]]] = {}
    for client, entries in sorted(by_client.items()):
        segments: list[tuple[float, float, str]] = []
        state: str | None = None
        since = 0.0
        pending: set[str] = set()
        end = duration
        for e in entries:
            if isinstance(e.record, Final):
                end = e.w - w0
                break
            new = _next_state(state, e.record, pending)
            if new != state:
                if state is not None:
                    segments.append((since, e.w - w0, state))
                state, since = new, e.w - w0
        if state is not None and end > since:
            segments.append((since, end, state))
        lanes[client] = segments
    return lanes


def _markers(history: History, w0: float) -> dict[str, list[float]]:
    markers: dict[str, list[float]] = {kind: [] for kind in MARKER_KINDS}
    seen: set[str | None] = set()
    for e in history.entries:
        r = e.record
        if isinstance(r, Connect):
            if e.client in seen:
                markers["reconnect"].append(e.w - w0)
            seen.add(e.client)
        elif isinstance(r, GapRecovered):
            markers["gap_recovered"].append(e.w - w0)
        elif isinstance(r, Resync):
            markers["resync"].append(e.w - w0)
    return markers


def _excerpt(
    anomaly: Anomaly,
    entries: list[Entry[Record]],
    times: list[float],
    w0: float,
    steps: list[Step] | None,
) -> Excerpt:
    at = anomaly.w
    if at is None:
        near = entries[-EXCERPT_RECORDS:]
    else:
        lo = bisect.bisect_left(times, at - EXCERPT_S)
        hi = bisect.bisect_right(times, at + EXCERPT_S)
        near = sorted(entries[lo:hi], key=lambda e: abs(e.w - at))[:EXCERPT_RECORDS]
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
    """The timeline of a checked run (with ``truth``, each anomaly's excerpt also has the
    client's steps beside what the database committed)."""
    entries = history.entries
    start = history.first(RunStart)
    w0 = start.w if start else (entries[0].w if entries else 0.0)
    last = max((e.w for e in entries), default=w0)
    duration = max(last - w0, 1.0)
    bin_s = _bin_size(duration)
    by_client: dict[str, list[Entry[Record]]] = {}
    for e in entries:
        if e.client is not None:
            by_client.setdefault(e.client, []).append(e)
    # The client view reads each client's records in history order, as the CLI does.
    in_order = {client: list(es) for client, es in by_client.items()} if truth else {}
    for client_entries in by_client.values():
        client_entries.sort(key=lambda e: e.w)
    times = {client: [e.w for e in es] for client, es in by_client.items()}
    spans = [
        Span(w.name, w.kind, w.start_w - w0, None if w.end_w is None else w.end_w - w0, w.error)
        for w in windows
    ]
    stats = result.overall
    steps: dict[str, list[Step]] = {}
    return Timeline(
        duration=duration,
        bin_s=bin_s,
        faults=spans,
        latency=_latency_bins(stats.applied_at, stats.latencies_ms, w0, bin_s),
        markers=_markers(history, w0),
        lanes=_lanes(by_client, w0, duration),
        excerpts=[
            _excerpt(
                a,
                by_client.get(a.client, []),
                times.get(a.client, []),
                w0,
                None if truth is None else _steps(steps, a.client, in_order, truth),
            )
            for a in result.anomalies
        ],
        nodes=node_view(entries, w0).lanes(duration),
    )


def _steps(
    cache: dict[str, list[Step]],
    client: str,
    by_client: dict[str, list[Entry[Record]]],
    truth: Truth,
) -> list[Step]:
    """The client's steps (``client_view``), worked out once per client."""
    if client not in cache:
        cache[client] = steps_of(by_client.get(client, []), truth)
    return cache[client]
