"""Text renderings of a ``Summary``: a terminal table, JSON, JUnit XML and Markdown.

All of them are pure functions from a summary to a string; the HTML report is in
``report.html_report``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, TextIO

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
    ("resyncs required", "resyncs"),
    ("reconnects", "reconnects"),
    ("rollbacks", "rollbacks"),
)
LATENCY_ROWS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))
RECOVERY_ROWS = (("p50", "p50"), ("p99", "p99"), ("max", "max"))
RATES = frozenset({"delivery_rate", "on_time_rate"})
STATUS = {True: "PASS", False: "FAIL", None: "N/A"}
# ANSI colours of the terminal table (only on a terminal, and never with NO_COLOR).
_ANSI = {"PASS": "32", "FAIL": "31", "N/A": "2", "pass": "32", "fail": "31"}
_ANSI |= {"inconclusive": "33", "error": "35"}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f} ms"


def format_metric(metric: str, value: Any) -> str:
    """``value`` of ``metric`` in its unit: a rate as a percentage, a time in ms or s, a
    count as a number (``delivery_rate`` 1.0 reads ``100.00%``, not ``1``)."""
    if value is None:
        return "n/a"
    name = metric.split(".")[0]
    if name in RATES:
        return _pct(float(value))
    if name.endswith("_ms") and not metric.endswith(".count"):
        return _ms(value)
    if name.endswith("_s"):
        return f"{_fmt(value)} s"
    return _fmt(value)


def paint(text: str, key: str, colour: bool) -> str:
    """``text`` in the colour of ``key`` (a status or a verdict) when ``colour`` is on."""
    code = _ANSI.get(key)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def colour_wanted(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org:
    any non-empty value)."""
    if environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def headline_rows(summary: Summary) -> list[tuple[str, str]]:
    """(label, value) pairs of the headline metrics, formatted for people: one value per
    row (each latency percentile on its own row), each in its unit."""
    data = summary.to_dict()
    rows = []
    for label, key in HEADLINE:
        text = format_metric(key, data[key])
        if key == "converged_clients":
            text = f"{data[key]}/{summary.clients}"
        rows.append((label, text))
    writes = summary.writes
    failed = ", ".join(f"{code} {n}" for code, n in writes["failed"].items()) or "none"
    rows += [
        ("writes sent", str(writes["sent"])),
        ("writes ok", str(writes["ok"])),
        ("writes failed", failed),
    ]
    lat = summary.latency_ms
    rows += [(f"latency commit→apply {label}", _ms(lat[key])) for label, key in LATENCY_ROWS]
    rows.append(("latency samples", str(lat["count"])))
    rows += [
        (
            "recovered by replay on resume",
            f"{summary.replay_resumes} ({summary.replayed_events} events)",
        ),
        ("recovered by in-stream gap fill", str(summary.gap_recoveries)),
        ("recovered by snapshot resync", str(summary.snapshot_resyncs)),
    ]
    rec = summary.recovery_ms
    rows += [(f"time to recover {label}", _ms(rec[key])) for label, key in RECOVERY_ROWS]
    rows.append(("clients that never recovered", str(summary.never_recovered)))
    return rows


THRESHOLD_HEADERS = ("threshold", "expr", "observed", "result")


def threshold_rows(summary: Summary, colour: bool = False) -> list[tuple[str, str, str, str]]:
    """(metric, expression, observed in the metric's unit, PASS/FAIL/N/A) per threshold."""
    return [
        (
            t["metric"],
            t["expr"],
            format_metric(t["metric"], t["observed"]),
            paint(STATUS[t["ok"]], STATUS[t["ok"]], colour),
        )
        for t in summary.thresholds
    ]


RECOVERY_HEADERS = ("fault", "clients behind", "never", "p50", "p99", "max")


def recovery_rows(summary: Summary) -> list[tuple[Any, ...]]:
    """Per fault window that healed: the time its clients took to catch up."""
    rows = []
    for f in summary.faults:
        rec = f["recovery"]
        ms = rec["ms"]
        rows.append(
            (f["name"], rec["behind"], rec["never"], _ms(ms["p50"]), _ms(ms["p99"]), _ms(ms["max"]))
        )
    return rows


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
                _ms(f["latency_ms"]["p99"]),
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


FAULT_HEADERS = ("fault", "kind", "t (s)", "committed", "delivered", "on time", "p99", "trace")


def anomaly_rows(summary: Summary, limit: int = ANOMALIES_SHOWN) -> list[tuple[Any, ...]]:
    return [
        (a["kind"], a["client"], a["date"], _fmt(a["seq"]), a["detail"])
        for a in summary.anomalies[:limit]
    ]


def _title(summary: Summary, colour: bool = False) -> str:
    verdict = paint(summary.verdict.upper(), summary.verdict, colour)
    return f"synccli run {summary.run_id or '?'} (seed {_fmt(summary.seed)}): {verdict}"


def render_table(summary: Summary, colour: bool = False) -> str:
    """The human summary for a terminal; ``colour`` paints the verdict and PASS/FAIL (the
    command turns it on only when stdout is a terminal and ``NO_COLOR`` is not set)."""
    parts = [
        _title(summary, colour),
        "",
        tabulate(headline_rows(summary), headers=("metric", "value")),
    ]
    parts += ["", tabulate(threshold_rows(summary, colour), headers=THRESHOLD_HEADERS)]
    if summary.faults:
        parts += ["", tabulate(fault_rows(summary), headers=FAULT_HEADERS)]
        parts += [
            "",
            "time to recover after each fault healed:",
            tabulate(recovery_rows(summary), headers=RECOVERY_HEADERS),
        ]
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
        tabulate(threshold_rows(summary), headers=THRESHOLD_HEADERS, tablefmt="github"),
        "",
    ]
    if summary.faults:
        parts += [
            "### Faults",
            "",
            tabulate(fault_rows(summary), headers=FAULT_HEADERS, tablefmt="github"),
            "",
            "### Time to recover after each fault healed",
            "",
            tabulate(recovery_rows(summary), headers=RECOVERY_HEADERS, tablefmt="github"),
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
            observed = format_metric(t["metric"], t["observed"])
            ET.SubElement(case, "failure", message=f"observed {observed}, required {t['expr']}")
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
