"""The self-contained HTML report (``report.html``): one file, inline CSS and SVG, no
external assets, so it can be attached to a CI run and opened anywhere offline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from synccli.report.render import (
    FAULT_HEADERS,
    anomaly_rows,
    fault_rows,
    headline_rows,
    threshold_rows,
)
from synccli.report.summary import Summary

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.verdict{display:inline-block;padding:.2em .8em;border-radius:4px;color:#fff}
.pass{background:#2a7d2a}.fail{background:#b3261e}
.inconclusive{background:#a66a00}.error{background:#5b2b8c}
.PASS{color:#2a7d2a;font-weight:bold}.FAIL{color:#b3261e;font-weight:bold}.N\\/A{color:#777}
"""
_COLOURS = {"pass": "#2a7d2a", "fail": "#b3261e", "inconclusive": "#a66a00", "error": "#5b2b8c"}


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], status_col: int | None = None
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = f' class="{escape(str(cell))}"' if i == status_col else ""
            cells.append(f"<td{css}>{escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _latency_svg(latency: dict[str, Any], verdict: str) -> str:
    """A bar per percentile, scaled to the maximum."""
    keys = [k for k in ("p50", "p90", "p99", "p999", "max") if latency.get(k) is not None]
    if not keys:
        return "<p>No latency samples.</p>"
    top = max(float(latency[k]) for k in keys) or 1.0
    bars = []
    for i, key in enumerate(keys):
        width = 600 * float(latency[key]) / top
        y = i * 26
        bars.append(
            f'<text x="0" y="{y + 16}">{key}</text>'
            f'<rect x="50" y="{y + 4}" width="{width:.1f}" height="16" fill="{_COLOURS[verdict]}"/>'
            f'<text x="{56 + width:.1f}" y="{y + 16}">{float(latency[key]):.1f} ms</text>'
        )
    height = 26 * len(keys)
    return (
        f'<svg width="760" height="{height}" role="img" aria-label="latency">{"".join(bars)}</svg>'
    )


def render_html(summary: Summary) -> str:
    """The whole report as one HTML document."""
    verdict = summary.verdict
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>synccli run {escape(str(summary.run_id))}: {verdict}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>synccli run {escape(str(summary.run_id))} "
        f'<span class="verdict {verdict}">{verdict.upper()}</span></h1>',
        f"<p>seed {escape(str(summary.seed))} · {summary.clients} clients · "
        f"duration {escape(str(summary.duration_s))} s · "
        f"truth from {escape(summary.truth_source)}</p>",
    ]
    if summary.reasons:
        parts.append("<h2>Why not pass</h2><ul>")
        parts += [f"<li>{escape(reason)}</li>" for reason in summary.reasons]
        parts.append("</ul>")
    if summary.history_truncated:
        parts.append(
            "<p><strong>The history's last line was truncated (the run was killed).</strong></p>"
        )
    parts += [
        "<h2>Metrics</h2>",
        _table(("metric", "value"), headline_rows(summary)),
        "<h2>Thresholds</h2>",
        _table(("metric", "expr", "observed", "result"), threshold_rows(summary), status_col=3),
        "<h2>Latency commit → apply</h2>",
        _latency_svg(summary.latency_ms, verdict),
    ]
    if summary.faults:
        parts += ["<h2>Fault windows</h2>", _table(FAULT_HEADERS, fault_rows(summary))]
    if summary.anomalies:
        parts += [
            f"<h2>Anomalies ({summary.anomalies_total}, first {len(summary.anomalies)})</h2>",
            _table(
                ("kind", "client", "date", "seq", "detail"),
                anomaly_rows(summary, limit=len(summary.anomalies)),
            ),
        ]
    parts.append("</body></html>\n")
    return "\n".join(parts)
