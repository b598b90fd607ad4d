"""Text renderings of a ``Summary``: a terminal table, JSON, JUnit XML and Markdown.

All of them are pure functions from a summary to a string; the HTML report is in
``report.html_report``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from synccli.report.summary import Summary

ANOMALIES_SHOWN = 10

# (label, summary field) of the headline metrics, in display order.
HEADLINE = (
    ("clients", "clients"),
    ("converged clients", "converged_clients"),
    ("events committed", "events_committed"),
    ("expected (client, event) pairs", "expected_pairs"),
    ("delivered pairs", "delivered_pairs"),
    ("delivery rate", "delivery_rate"),
    ("on-time rate", "on_time_rate"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("out of order", "out_of_order"),
    ("phantoms", "phantoms"),
    ("epoch mix-ups", "epoch_mixups"),
    ("retries", "retries"),
    ("ack timeouts", "ack_timeouts"),
    ("gaps detected", "gaps_detected"),
    ("gap recoveries", "gap_recoveries"),
    ("resyncs", "resyncs"),
    ("reconnects", "reconnects"),
    ("rollbacks", "rollbacks"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def headline_rows(summary: Summary) -> list[tuple[str, str]]:
    """(label, value) pairs of the headline metrics, formatted for people."""
    data = summary.to_dict()
    rows = []
    for label, key in HEADLINE:
        value = data[key]
        text = _pct(value) if key in ("delivery_rate", "on_time_rate") else _fmt(value)
        if key == "converged_clients":
            text = f"{value}/{summary.clients}"
        rows.append((label, text))
    writes = summary.writes
    failed = ", ".join(f"{code} {n}" for code, n in writes["failed"].items()) or "none"
    rows.append(("writes sent / ok / failed", f"{writes['sent']} / {writes['ok']} / {failed}"))
    lat = summary.latency_ms
    rows.append(
        (
            "latency ms p50/p90/p99/p99.9/max",
            "/".join(_fmt(lat[k]) for k in ("p50", "p90", "p99", "p999", "max"))
            + f" ({lat['count']} samples)",
        )
    )
    return rows


def threshold_rows(summary: Summary) -> list[tuple[str, str, str, str]]:
    """(metric, expression, observed, PASS/FAIL/N/A) per threshold."""
    label = {True: "PASS", False: "FAIL", None: "N/A"}
    return [
        (t["metric"], t["expr"], _fmt(t["observed"]), label[t["ok"]]) for t in summary.thresholds
    ]


def fault_rows(summary: Summary) -> list[tuple[Any, ...]]:
    """One row per fault window."""
    rows = []
    for f in summary.faults:
        end = "open" if f["end_t"] is None else f"{f['end_t']:.1f}"
        trace = _trace_text(f)
        rows.append(
            (
                f["name"],
                f["kind"],
                f"{f['start_t']:.1f}-{end}",
                f["events_committed"],
                _pct(f["delivery_rate"]),
                _pct(f["on_time_rate"]),
                _fmt(f["latency_ms"]["p99"]),
                trace,
            )
        )
    return rows


def _trace_text(fault: dict[str, Any]) -> str:
    """What shows the fault acted: its own counters when it has them, else client records."""
    if fault["error"]:
        return "ERROR"
    counts = fault.get("evidence") or fault["traces"]
    text = " ".join(f"{kind} {n}" for kind, n in counts.items())
    if fault["no_trace"]:
        return f"no trace ({text})" if text else "no trace"
    return text or "latency"


FAULT_HEADERS = ("fault", "kind", "t (s)", "committed", "delivered", "on time", "p99 ms", "trace")


def anomaly_rows(summary: Summary, limit: int = ANOMALIES_SHOWN) -> list[tuple[Any, ...]]:
    return [
        (a["kind"], a["client"], a["date"], _fmt(a["seq"]), a["detail"])
        for a in summary.anomalies[:limit]
    ]


def _title(summary: Summary) -> str:
    verdict = summary.verdict.upper()
    return f"synccli run {summary.run_id or '?'} (seed {_fmt(summary.seed)}): {verdict}"


def render_table(summary: Summary) -> str:
    """The human summary for a terminal."""
    parts = [_title(summary), "", tabulate(headline_rows(summary), tablefmt="simple")]
    parts += ["", tabulate(threshold_rows(summary), headers=("threshold", "expr", "observed", ""))]
    if summary.faults:
        parts += ["", tabulate(fault_rows(summary), headers=FAULT_HEADERS)]
    if summary.anomalies:
        parts += [
            "",
            f"anomalies ({summary.anomalies_total} in all, the first shown):",
            tabulate(anomaly_rows(summary), headers=("kind", "client", "date", "seq", "detail")),
        ]
    if summary.history_truncated:
        parts += ["", "note: the history's last line was truncated (the run was killed)"]
    if summary.reasons:
        parts += ["", "why not pass:", *(f"  - {reason}" for reason in summary.reasons)]
    return "\n".join(parts) + "\n"


def render_json(summary: Summary) -> str:
    """``summary.json``."""
    return json.dumps(summary.to_dict(), indent=2) + "\n"


def render_markdown(summary: Summary) -> str:
    """A Markdown report (for a CI job summary or a pull request comment)."""
    parts = [f"## {_title(summary)}", ""]
    if summary.reasons:
        parts += [*(f"- {reason}" for reason in summary.reasons), ""]
    parts += [tabulate(headline_rows(summary), headers=("metric", "value"), tablefmt="github"), ""]
    parts += [
        "### Thresholds",
        "",
        tabulate(
            threshold_rows(summary),
            headers=("metric", "expr", "observed", "result"),
            tablefmt="github",
        ),
        "",
    ]
    if summary.faults:
        parts += [
            "### Faults",
            "",
            tabulate(fault_rows(summary), headers=FAULT_HEADERS, tablefmt="github"),
            "",
        ]
    if summary.anomalies:
        parts += [
            f"### Anomalies ({summary.anomalies_total})",
            "",
            tabulate(
                anomaly_rows(summary),
                headers=("kind", "client", "date", "seq", "detail"),
                tablefmt="github",
            ),
            "",
        ]
    return "\n".join(parts)


def render_junit(summary: Summary) -> str:
    """JUnit XML: one test case per threshold (a failure for each failed one, skipped when
    not measured) and one for the verdict, so CI shows an inconclusive run as well."""
    suite = ET.Element("testsuite", name="synccli reliability")
    ET.SubElement(
        ET.SubElement(suite, "properties"), "property", name="seed", value=_fmt(summary.seed)
    )
    failures = skipped = errors = 0
    for t in summary.thresholds:
        case = ET.SubElement(
            suite, "testcase", classname="synccli.thresholds", name=f"{t['metric']} {t['expr']}"
        )
        if t["ok"] is False:
            failures += 1
            ET.SubElement(
                case, "failure", message=f"observed {_fmt(t['observed'])}, required {t['expr']}"
            )
        elif t["ok"] is None:
            skipped += 1
            ET.SubElement(case, "skipped", message="not measured")
    verdict = ET.SubElement(suite, "testcase", classname="synccli.run", name="verdict")
    message = "; ".join(summary.reasons) or summary.verdict
    if summary.verdict == "fail":
        failures += 1
        ET.SubElement(verdict, "failure", message=message)
    elif summary.verdict == "inconclusive":
        errors += 1
        ET.SubElement(verdict, "error", type="inconclusive", message=message)
    elif summary.verdict == "error":
        errors += 1
        ET.SubElement(verdict, "error", type="infrastructure", message=message)
    suite.set("tests", str(len(summary.thresholds) + 1))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    if summary.duration_s is not None:
        suite.set("time", f"{summary.duration_s:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


RENDERERS: dict[str, Callable[[Summary], str]] = {
    "table": render_table,
    "json": render_json,
    "junit": render_junit,
    "markdown": render_markdown,
}
