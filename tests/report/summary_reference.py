"""The summary as it was made before the one-pass report: each part of it reading the
records on its own, the timeline holding every client's records in memory, and the
in-memory reference checker. Kept as the expected values of the one-pass ``summarize``
(tests/report/test_summary_one_pass.py)."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from synccli.history import (
    ClientCreated,
    Connect,
    ConnectFailed,
    Disconnect,
    Entry,
    Final,
    Gap,
    GapRecovered,
    History,
    InfrastructureFailure,
    Record,
    Resync,
    RunEnd,
    RunStart,
    ServerMetrics,
    SnapshotTaken,
    Subscribed,
)
from synccli.report.checker import Anomaly as CheckerAnomaly
from synccli.report.client_view import Step, steps_of
from synccli.report.client_view import near as steps_near
from synccli.report.metrics import (
    FaultWindow,
    count_records,
    count_traces,
    fault_windows,
    nearest_rank,
    percentiles,
    server_metric,
)
from synccli.report.recovery import overall_recovery, window_recovery
from synccli.report.summary import DEFAULT_ON_TIME_S, Summary, _config, _flat_metrics
from synccli.report.thresholds import (
    DEFAULT_THRESHOLDS,
    INVARIANTS,
    Threshold,
    ThresholdResult,
    evaluate,
    merge,
    parse_thresholds,
)
from synccli.report.timeline import (
    EXCERPT_RECORDS,
    EXCERPT_S,
    MARKER_KINDS,
    Excerpt,
    LatencyBin,
    Span,
    Timeline,
    _bin_size,
)
from synccli.report.truth import Truth
from tests.report.checker_reference import Anomaly, CheckResult, check_records


def summarize(
    history: History,
    truth: Truth,
    *,
    overrides: Iterable[Threshold] = (),
    on_time_s: float | None = None,
    expect_traces: bool | None = None,
    max_anomalies: int = 100,
) -> Summary:
    """Check ``history`` against ``truth`` and judge it. Thresholds: the defaults, then the
    run config's ``thresholds``, then ``overrides``. ``on_time_s`` and ``expect_traces``
    default to the run config's values (``on_time_s``, ``expect_traces``)."""
    records = history.entries
    config = _config(history.first(RunStart))
    start = history.first(RunStart)
    end = history.last(RunEnd)
    deadline = float(on_time_s or config.get("on_time_s") or DEFAULT_ON_TIME_S)
    listed = config.get("dates")
    dates = [d for d in listed if isinstance(d, str)] if isinstance(listed, list) else []
    windows = fault_windows(records, deadline)
    count_traces(records, windows)
    result = check_records(
        records,
        truth,
        on_time_s=deadline,
        windows=windows,
        dates=dates,
        max_anomalies=max_anomalies,
    )
    counters = count_records(records)
    scraped = history.last(ServerMetrics)
    server = scraped.record.metrics if scraped else None
    latency = percentiles(result.overall.latencies_ms)
    p50 = latency["p50"]
    faults = [
        w.to_dict(float(p50) if p50 is not None else None) | {"recovery": window_recovery(w)}
        for w in windows
    ]
    recovery, never_recovered = overall_recovery(windows)
    last_t = end.t if end else (records[-1].t if records else None)
    values: dict[str, Any] = {
        "run_id": start.record.run_id if start else None,
        "seed": start.record.seed if start else None,
        "clients": len(result.clients),
        "dates": sorted({c.date for c in result.channels}),
        "duration_s": None if last_t is None else round(last_t - (start.t if start else 0.0), 3),
        "events_committed": truth.events_committed,
        "expected_pairs": result.overall.expected,
        "delivered_pairs": result.overall.delivered,
        "delivery_rate": round(result.overall.delivery_rate, 6),
        "on_time_rate": round(result.overall.on_time_rate, 6),
        "on_time_s": deadline,
        "lost": result.counts["lost"],
        "duplicates": result.counts["duplicate"],
        "out_of_order": result.counts["out_of_order"],
        "phantoms": result.counts["phantom"],
        "epoch_mixups": result.counts["epoch_mixup"],
        "not_converged": len(result.clients) - result.converged_clients,
        "converged_clients": result.converged_clients,
        "retries": server_metric(server, "synccli_retries_total"),
        "ack_timeouts": server_metric(server, "synccli_ack_timeouts_total"),
        **asdict(counters),
        "latency_ms": latency,
        "recovery_ms": recovery,
        "never_recovered": never_recovered,
        "loop_lag_ms": {
            "p99": end.record.loop_lag_p99_ms if end else None,
            "max": end.record.loop_lag_max_ms if end else None,
        },
        "faults": faults,
        "anomalies": [a.to_dict() for a in result.anomalies],
        "anomalies_total": sum(result.counts.values()),
        "history_truncated": history.truncated,
        "truth_source": truth.source,
        "browser_clients": sum(
            1 for e in records if isinstance(e.record, ClientCreated) and e.record.browser
        ),
        "browser_writers": sum(
            1
            for e in records
            if isinstance(e.record, ClientCreated) and e.record.browser and e.record.writer
        ),
    }
    scenario = config.get("thresholds")
    thresholds = merge(
        parse_thresholds(DEFAULT_THRESHOLDS),
        parse_thresholds(scenario) if isinstance(scenario, dict) else (),
        overrides,
    )
    flat = _flat_metrics(values, result.overall.latencies_ms, (t.metric for t in thresholds))
    checked = evaluate(thresholds, flat)
    if infrastructure_error(history) is not None:
        # Nothing a broken run measured can pass a threshold: every one reads n/a.
        checked = [ThresholdResult(t.metric, t.expr, None, None) for t in checked]
    wants_traces = bool(
        config.get("expect_traces", False) if expect_traces is None else expect_traces
    )
    verdict, reasons = _verdict(history, result, values, checked, wants_traces)
    return Summary(
        verdict=verdict,
        reasons=reasons,
        thresholds=[t.to_dict() for t in checked],
        timeline=build_timeline(history, result, windows, truth),
        **values,
    )


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
    # The timeline holds the checker's Anomaly; the reference's own has the same fields.
    shown = CheckerAnomaly(
        anomaly.kind, anomaly.client, anomaly.date, anomaly.seq, anomaly.detail, anomaly.w
    )
    return Excerpt(shown, t, rows, around)


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


def infrastructure_error(history: History) -> str | None:
    """Why the run's infrastructure failed, from the history; None when it did not."""
    end = history.last(RunEnd)
    if end is not None and end.record.error:
        return end.record.error
    failure = history.last(InfrastructureFailure)
    if failure is not None:
        return failure.record.error or "the harness reported an infrastructure error"
    kinds = {type(e.record) for e in history.entries if e.client is not None}
    if ConnectFailed in kinds and Connect not in kinds:
        return "no client could ever connect to the server"
    return None


def _inconclusive(
    history: History, result: CheckResult, values: dict[str, Any], wants_traces: bool
) -> list[str]:
    reasons = []
    if values["events_committed"] == 0:
        reasons.append("no events were committed, so nothing was tested")
    if not result.clients:
        reasons.append("the history has no clients")
    for fault in values["faults"]:
        if fault["error"]:
            reasons.append(f"fault {fault['name']} could not be applied: {fault['error']}")
        elif fault["no_trace"] and wants_traces:
            reasons.append(f"fault {fault['name']} left no trace in the run (did it apply?)")
    end = history.last(RunEnd)
    if end is None and history.first(Final) is None:
        reasons.append("the history ends without run_end and without final states (run cut short)")
    elif end is not None and end.record.interrupted:
        reasons.append("the run was interrupted")
    return reasons


def _verdict(
    history: History,
    result: CheckResult,
    values: dict[str, Any],
    checked: list[ThresholdResult],
    wants_traces: bool,
) -> tuple[str, list[str]]:
    infra = infrastructure_error(history)
    if infra is not None:
        return "error", [f"infrastructure error: {infra}"]
    failed = [f"{t.metric} is {t.observed}, required {t.expr}" for t in checked if t.ok is False]
    broken = [t for t in checked if t.ok is False and t.metric in INVARIANTS]
    inconclusive = _inconclusive(history, result, values, wants_traces)
    inconclusive += [
        f"{t.metric} was not measured (required {t.expr})" for t in checked if t.ok is None
    ]
    if broken:
        return "fail", failed + inconclusive
    if inconclusive:
        return "inconclusive", inconclusive + failed
    if failed:
        return "fail", failed
    return "pass", []
