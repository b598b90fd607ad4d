"""The self-contained HTML report (``report.html``): one file, inline CSS and SVG, no
external assets, so it can be attached to a CI run and opened anywhere offline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from synccli.report.checker import Anomaly
from synccli.report.client_view import COLUMNS, Step
from synccli.report.render import (
    FAULT_HEADERS,
    RECOVERY_HEADERS,
    THRESHOLD_HEADERS,
    anomaly_rows,
    fault_rows,
    headline_rows,
    recovery_rows,
    threshold_rows,
)
from synccli.report.summary import Summary
from synccli.report.timeline import Timeline
from synccli.report.timeline_svg import render_timeline

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1120px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.verdict{display:inline-block;padding:.2em .8em;border-radius:4px;color:#fff}
.pass{background:#2a7d2a}.fail{background:#b3261e}
.inconclusive{background:#a66a00}.error{background:#5b2b8c}
code{font-size:12px}.excerpt h3{font-size:1em;margin-bottom:.2em}
svg text{font-family:sans-serif}
.PASS{color:#2a7d2a;font-weight:bold}.FAIL{color:#b3261e;font-weight:bold}.N\\/A{color:#777}
"""


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


def _anomalies(summary: Summary) -> list[str]:
    """The anomaly table, each row linking to its client's records around it."""
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(cell))}</td>" for cell in row)
        + f'<td><a href="#anomaly-{i}">records around it</a></td></tr>'
        for i, row in enumerate(anomaly_rows(summary, limit=len(summary.anomalies)))
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("kind", "client", "date", "seq", "detail", "client's records")
    )
    return [
        f"<h2>Anomalies ({summary.anomalies_total}, first {len(summary.anomalies)})</h2>",
        f"<table><tr>{head}</tr>{rows}</table>",
    ]


def _excerpts(timeline: Timeline) -> list[str]:
    """Per anomaly (the targets of the anomaly links): its client's steps around it beside
    what the database committed, as ``synccli report --client --around`` prints them, and
    the client's records around it."""
    parts = ["<h2>Records around each anomaly</h2>"]
    for i, ex in enumerate(timeline.excerpts):
        a = ex.anomaly
        at = "at the end" if ex.t is None else f"at {ex.t:.3f} s"
        rows = "".join(
            f"<tr><td>{t:.3f}</td><td><code>{escape(text)}</code></td></tr>"
            for t, text in ex.records
        )
        parts.append(
            f'<section class="excerpt" id="anomaly-{i}"><h3>{escape(a.kind)} · '
            f"{escape(a.client)} · {escape(a.date)} · seq {escape(str(a.seq))} {at}</h3>"
            f"<p>{escape(a.detail)}</p>{_steps(a, ex.steps)}"
            f"<table><tr><th>t (s)</th><th>record of {escape(a.client)}</th></tr>{rows}</table>"
            "</section>"
        )
    return parts


def _steps(anomaly: Anomaly, steps: Sequence[Step]) -> str:
    """The client view around ``anomaly`` and the command that prints it."""
    if not steps:
        return ""
    command = f"synccli report RUN_DIR --client {anomaly.client} --around {anomaly.seq}"
    return (
        f'<p>What the client saw beside what the database committed (<code class="view">'
        f"{escape(command)}</code>):</p>" + _table(COLUMNS, (step.cells() for step in steps))
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
    # What happened over time first, then the judgement, then the details.
    if summary.timeline is not None:
        parts += ["<h2>Timeline</h2>", render_timeline(summary.timeline)]
    parts += [
        "<h2>Thresholds</h2>",
        _table(THRESHOLD_HEADERS, threshold_rows(summary), status_col=3),
    ]
    if summary.faults:
        parts += [
            "<h2>Fault windows</h2>",
            _table(FAULT_HEADERS, fault_rows(summary)),
            "<h3>Time to recover after each fault healed</h3>",
            _table(RECOVERY_HEADERS, recovery_rows(summary)),
        ]
    if summary.anomalies:
        parts += _anomalies(summary)
    parts += ["<h2>Metrics</h2>", _table(("metric", "value"), headline_rows(summary))]
    if summary.anomalies and summary.timeline is not None:
        parts += _excerpts(summary.timeline)
    parts.append("</body></html>\n")
    return "\n".join(parts)
