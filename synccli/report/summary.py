"""The run summary (``summary.json``, schema ``synccli.summary/1``) and its verdict.

Verdicts, in order of precedence:

1. ``error`` (exit 4): the infrastructure failed — the run recorded an error (``run_end``
   with ``error``), or no client could ever connect.
2. ``fail`` (exit 1) when an invariant that a short run cannot explain is broken
   (duplicates, out-of-order, phantoms, epoch mix-ups): proof of a bug whatever else happened.
3. ``inconclusive`` (exit 3): nothing committed, no clients, a fault that could not be
   applied, a fault without a trace when the scenario expects traces, a run interrupted or
   cut short (no ``run_end`` and no ``final`` records), a threshold metric not measured.
4. ``fail`` (exit 1): any other threshold failed.
5. ``pass`` (exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from synccli.errors import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_INFRASTRUCTURE, EXIT_OK
from synccli.history import (
    Connect,
    ConnectFailed,
    Entry,
    Final,
    History,
    InfrastructureFailure,
    Record,
    RunEnd,
    RunStart,
    ServerMetrics,
)
from synccli.report.checker import CheckResult
from synccli.report.metrics import (
    BinnedLatencies,
    Counters,
    mean,
    nearest_rank,
    percentiles,
    ranked,
    server_metric,
)
from synccli.report.recovery import overall_recovery, window_recovery
from synccli.report.samples import Ordered
from synccli.report.scan import read_faults, read_run
from synccli.report.thresholds import (
    ALIASES,
    DEFAULT_THRESHOLDS,
    INVARIANTS,
    PLAIN_METRICS,
    RECOVERY_KEYS,
    Threshold,
    ThresholdResult,
    evaluate,
    merge,
    parse_thresholds,
    percentile_of,
)
from synccli.report.timeline import Timeline
from synccli.report.truth import Truth
from synccli.version import __version__

SUMMARY_SCHEMA = "synccli.summary/1"
DEFAULT_ON_TIME_S = 5.0
VERDICT_EXIT = {
    "pass": EXIT_OK,
    "fail": EXIT_FAILED,
    "inconclusive": EXIT_INCONCLUSIVE,
    "error": EXIT_INFRASTRUCTURE,
}


@dataclass(frozen=True, slots=True)
class Summary(Counters):
    """Everything a run showed; ``to_dict`` is the ``summary.json`` document
    (every field is documented in docs/report.md). The counts read straight off the
    records are the ``Counters`` fields it extends."""

    run_id: str | None
    seed: int | None
    verdict: str
    reasons: list[str]
    clients: int
    dates: list[str]
    duration_s: float | None
    events_committed: int
    expected_pairs: int
    delivered_pairs: int
    delivery_rate: float
    on_time_rate: float
    on_time_s: float
    lost: int
    duplicates: int
    out_of_order: int
    phantoms: int
    epoch_mixups: int
    not_converged: int
    converged_clients: int
    retries: int | None
    ack_timeouts: int | None
    latency_ms: dict[str, float | int | None]
    recovery_ms: dict[str, float | int | None]
    never_recovered: int
    loop_lag_ms: dict[str, float | None]
    faults: list[dict[str, Any]]
    thresholds: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    anomalies_total: int
    history_truncated: bool
    truth_source: str
    browser_clients: int = 0
    #: Browser pages that clicked the board's buttons (synccli.harness.browsers).
    browser_writers: int = 0
    #: Which node each client was on (``report.nodes``); None: no client recorded a node.
    nodes: dict[str, Any] | None = None
    #: What the HTML report's timeline draws; not part of ``summary.json``.
    timeline: Timeline | None = field(default=None, compare=False, repr=False)

    @property
    def exit_code(self) -> int:
        """The gate's exit code for this verdict."""
        return VERDICT_EXIT[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        values = {
            f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "timeline"
        }
        return {"schema": SUMMARY_SCHEMA, "synccli_version": __version__, **values}


def _plain(value: Any) -> Any:
    """A summary field as JSON data (a copy, so the document cannot change the summary)."""
    return json.loads(json.dumps(value))


def _flat_metrics(
    values: dict[str, Any],
    latencies_ms: Sequence[float] | BinnedLatencies,
    names: Iterable[str],
) -> dict[str, float | None]:
    """The metrics thresholds can name (``thresholds.METRICS``), flattened; ``names`` asks
    for extra latency percentiles (``latency_ms.p95``)."""
    flat: dict[str, float | None] = {name: values[name] for name in PLAIN_METRICS}
    writes = values["writes"]
    flat["writes.sent"] = writes["sent"]
    flat["writes.ok"] = writes["ok"]
    flat["writes.failed"] = sum(writes["failed"].values())
    flat["faults_no_trace"] = sum(1 for f in values["faults"] if f["no_trace"])
    for key, value in values["latency_ms"].items():
        flat[f"latency_ms.{key}"] = value
    flat["latency_ms.mean"] = mean(latencies_ms)
    for key, value in values["loop_lag_ms"].items():
        flat[f"loop_lag_ms.{key}"] = value
    for key in RECOVERY_KEYS:
        flat[f"recovery_ms.{key}"] = values["recovery_ms"][key]
    for alias, name in ALIASES.items():
        flat[alias] = flat[name]
    ordered: Ordered | None = None
    for name in names:
        q = percentile_of(name)
        if q is not None and name not in flat:
            ordered = ordered or ranked(latencies_ms)
            flat[name] = nearest_rank(ordered, q) if len(ordered) else None
    return flat


def exit_code_for(summary: Summary) -> int:
    """The gate's exit code for ``summary``'s verdict."""
    return summary.exit_code


def infrastructure_error(
    history: History, client_kinds: set[type[Record]] | None = None
) -> str | None:
    """Why the run's infrastructure failed, from the history; None when it did not.
    ``client_kinds``: the kinds of the clients' records, if already known (else read)."""
    end = history.last(RunEnd)
    if end is not None and end.record.error:
        return end.record.error
    failure = history.last(InfrastructureFailure)
    if failure is not None:
        return failure.record.error or "the harness reported an infrastructure error"
    kinds = (
        {type(e.record) for e in history.entries if e.client is not None}
        if client_kinds is None
        else client_kinds
    )
    if ConnectFailed in kinds and Connect not in kinds:
        return "no client could ever connect to the server"
    return None


def _config(start: Entry[RunStart] | None) -> dict[str, Any]:
    config = start.record.config if start else None
    return config if isinstance(config, dict) else {}


def summarize(
    history: History,
    truth: Truth,
    *,
    overrides: Iterable[Threshold] = (),
    on_time_s: float | None = None,
    expect_traces: bool | None = None,
    max_anomalies: int = 100,
) -> Summary:
    """Check ``history`` against ``truth`` and judge it, reading its records once
    (``scan.read_run``). Thresholds: the defaults, then the
    run config's ``thresholds``, then ``overrides``. ``on_time_s`` and ``expect_traces``
    default to the run config's values (``on_time_s``, ``expect_traces``)."""
    prelude = read_faults(history)
    start = prelude.start
    config = _config(start)
    deadline = float(on_time_s or config.get("on_time_s") or DEFAULT_ON_TIME_S)
    read = read_run(history, truth, prelude, on_time_s=deadline, max_anomalies=max_anomalies)
    records = history.entries
    end = history.last(RunEnd)
    listed = config.get("dates")
    dates = [d for d in listed if isinstance(d, str)] if isinstance(listed, list) else []
    windows = read.windows.windows(deadline)
    read.traces.count(windows)
    result = read.checker.result(on_time_s=deadline, dates=dates)
    counters = read.counter.counters()
    scraped = history.last(ServerMetrics)
    server = scraped.record.metrics if scraped else None
    latency = percentiles(result.overall.samples())
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
        "browser_clients": read.browser_clients,
        "browser_writers": read.browser_writers,
        "nodes": read.timeline.nodes.summary(),
    }
    scenario = config.get("thresholds")
    thresholds = merge(
        parse_thresholds(DEFAULT_THRESHOLDS),
        parse_thresholds(scenario) if isinstance(scenario, dict) else (),
        overrides,
    )
    flat = _flat_metrics(values, result.overall.samples(), (t.metric for t in thresholds))
    checked = evaluate(thresholds, flat)
    infra = infrastructure_error(history, read.client_kinds)
    if infra is not None:
        # Nothing a broken run measured can pass a threshold: every one reads n/a.
        checked = [ThresholdResult(t.metric, t.expr, None, None) for t in checked]
    wants_traces = bool(
        config.get("expect_traces", False) if expect_traces is None else expect_traces
    )
    verdict, reasons = _verdict(history, infra, result, values, checked, wants_traces)
    return Summary(
        verdict=verdict,
        reasons=reasons,
        thresholds=[t.to_dict() for t in checked],
        timeline=read.timeline.build(history, result, windows, read.first_w, read.last_w, truth),
        **values,
    )


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
    infra: str | None,
    result: CheckResult,
    values: dict[str, Any],
    checked: list[ThresholdResult],
    wants_traces: bool,
) -> tuple[str, list[str]]:
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
