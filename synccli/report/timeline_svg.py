"""The timeline as one inline SVG (after jepsen's ``timeline.clj`` and ``perf.clj``).

Top to bottom, on one time axis: the fault windows, shaded across every panel and
labelled; commit → apply latency per time bin (the p50 line, the p50-p99 band and the p99
line, log scale); reconnects, gap recoveries, resyncs and anomalies as markers (sized by
count, each anomaly a link to its client's records); and the clients — one lane each
(connected / syncing / offline) up to ``LANE_LIMIT`` clients, beyond that the share of
clients in each state per bin, so a run of 1,000 clients draws as many shapes as one of 40.
A cluster run adds which node each client was on, the same way: a lane per client coloured
by node, or the count of clients on each node per bin.
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape

from synccli.report.nodes import node_order
from synccli.report.timeline import MARKER_KINDS, STATES, Timeline

WIDTH = 1100
LEFT = 170
RIGHT = 20
PLOT = WIDTH - LEFT - RIGHT
LANE_LIMIT = 40
LATENCY_H = 170
MARKER_H = 18
LANE_H = 10
SHARE_H = 90
STATE_COLOURS = {"connected": "#6bb36f", "syncing": "#e8a33d", "offline": "#c8483e"}
#: One per node, cycled past ten (a colourblind-safe set, Tableau 10).
NODE_COLOURS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
MARKER_COLOURS = {"reconnect": "#3b6fb6", "gap_recovered": "#7a4fb0", "resync": "#b0571f"}
MARKER_LABELS = {
    "reconnect": "reconnects",
    "gap_recovered": "gap recoveries",
    "resync": "resyncs",
}
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


class _Canvas:
    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return LEFT + max(0.0, min(t, self.duration)) / self.duration * PLOT

    def add(self, text: str) -> None:
        self.parts.append(text)

    def label(self, y: float, text: str, css: str = "lbl") -> None:
        self.add(f'<text class="{css}" x="{LEFT - 6}" y="{y:.1f}" text-anchor="end">{text}</text>')

    def title(self, y: float, *lines: str) -> None:
        """A panel's name, at the left edge (tick labels sit right of it)."""
        for i, line in enumerate(lines):
            self.add(f'<text class="lbl" x="4" y="{y + 14 * i:.1f}">{line}</text>')


def _faults(c: _Canvas, timeline: Timeline, top: float, bottom: float) -> None:
    for span, row in zip(timeline.faults, _label_rows(c, timeline), strict=True):
        x0 = c.x(span.start)
        x1 = c.x(timeline.duration if span.end is None else span.end)
        width = max(x1 - x0, 1.5)
        end = "never healed" if span.end is None else f"healed at {span.end:.1f} s"
        what = f"{span.name} ({span.kind}): {span.start:.1f} s, {end}"
        if span.error:
            what += f"; could not be applied: {span.error}"
        css = "fault-window fault-error" if span.error else "fault-window"
        c.add(
            f'<rect class="{css}" data-fault="{escape(span.name)}" x="{x0:.1f}" y="{top}" '
            f'width="{width:.1f}" height="{bottom - top:.1f}"><title>{escape(what)}</title></rect>'
            f'<text class="fault-label" x="{x0 + 2:.1f}" y="{top + 11 + 11 * row}">'
            f"{escape(span.name)}</text>"
        )


def _latency(c: _Canvas, timeline: Timeline, top: float) -> None:
    bottom = top + LATENCY_H
    c.title(top + LATENCY_H / 2 - 7, "latency", "commit → apply")
    bins = timeline.latency
    if not bins:
        c.add(
            f'<text class="lbl" x="{LEFT + 8}" y="{top + LATENCY_H / 2}">no latency samples</text>'
        )
        return
    lo_exp = math.floor(math.log10(max(min(b.p50 for b in bins), 0.1)))
    hi_exp = max(lo_exp + 1, math.ceil(math.log10(max(max(b.p99 for b in bins), 0.1))))

    def y(ms: float) -> float:
        share = (math.log10(max(ms, 10.0**lo_exp)) - lo_exp) / (hi_exp - lo_exp)
        return bottom - share * LATENCY_H

    for exp in range(lo_exp, hi_exp + 1):
        gy = y(10.0**exp)
        c.add(f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT}" y1="{gy:.1f}" y2="{gy:.1f}"/>')
        c.label(gy + 3, f"{10.0**exp:g} ms", "tick")
    width = PLOT * timeline.bin_s / timeline.duration
    p50, p99, hover = [], [], []
    for b in bins:
        x0 = c.x(b.start)
        mid = x0 + width / 2
        p50.append(f"{mid:.1f},{y(b.p50):.1f}")
        p99.append(f"{mid:.1f},{y(b.p99):.1f}")
        # An invisible column per bin carries its numbers as a tooltip.
        hover.append(
            f'<rect class="bin" x="{x0:.1f}" y="{top}" width="{max(width, 1):.1f}" '
            f'height="{LATENCY_H}"><title>{b.start:g} s: p50 {b.p50:.1f} ms, p99 '
            f"{b.p99:.1f} ms ({b.count} samples)</title></rect>"
        )
    c.add(f'<polygon class="band" points="{" ".join(p99 + p50[::-1])}"/>')
    c.add(f'<polyline class="p99" points="{" ".join(p99)}"/>')
    c.add(f'<polyline class="p50" points="{" ".join(p50)}"/>')
    c.parts += hover


def _markers(c: _Canvas, timeline: Timeline, top: float) -> float:
    y = top
    for kind in MARKER_KINDS:
        counts = Counter(int(t // timeline.bin_s) for t in timeline.markers.get(kind, []))
        c.label(y + 12, f"{MARKER_LABELS[kind]} ({sum(counts.values())})")
        for i, n in sorted(counts.items()):
            cx = c.x((i + 0.5) * timeline.bin_s)
            r = min(8.0, 2.0 + 1.5 * math.sqrt(n))
            c.add(
                f'<circle class="marker {kind}" cx="{cx:.1f}" cy="{y + 9}" r="{r:.1f}" '
                f'fill="{MARKER_COLOURS[kind]}"><title>{n} {MARKER_LABELS[kind]} at '
                f"{i * timeline.bin_s:g}-{(i + 1) * timeline.bin_s:g} s</title></circle>"
            )
        y += MARKER_H
    c.label(y + 12, f"anomalies ({len(timeline.excerpts)} shown)")
    for i, ex in enumerate(timeline.excerpts):
        cx = c.x(timeline.duration if ex.t is None else ex.t)
        a = ex.anomaly
        what = f"{a.kind} {a.client} {a.date} seq {a.seq}: {a.detail}"
        c.add(
            f'<a href="#anomaly-{i}"><path class="anomaly" d="M{cx - 4:.1f},{y + 5} l8,8 m0,-8 '
            f'l-8,8"><title>{escape(what)}</title></path></a>'
        )
    return y + MARKER_H


def _lanes(c: _Canvas, timeline: Timeline, top: float) -> float:
    for i, (client, segments) in enumerate(sorted(timeline.lanes.items())):
        y = top + i * LANE_H
        c.label(y + 8, escape(client), "tick")
        for start, end, state in segments:
            x0 = c.x(start)
            c.add(
                f'<rect class="lane {state}" x="{x0:.1f}" y="{y + 1}" '
                f'width="{max(c.x(end) - x0, 0.5):.1f}" height="{LANE_H - 2}" '
                f'fill="{STATE_COLOURS[state]}"><title>{escape(client)} {state} '
                f"{start:.1f}-{end:.1f} s</title></rect>"
            )
    return top + len(timeline.lanes) * LANE_H


def _shares(c: _Canvas, timeline: Timeline, top: float) -> float:
    total = len(timeline.lanes)
    c.title(top + SHARE_H / 2 - 7, f"clients by state ({total})", "share per time bin")
    width = PLOT * timeline.bin_s / timeline.duration
    for i, share in enumerate(timeline.state_shares()):
        x0 = c.x(i * timeline.bin_s)
        y = top + SHARE_H
        for state in STATES:
            n = share[state]
            if not n:
                continue
            h = SHARE_H * n / total
            y -= h
            c.add(
                f'<rect class="share {state}" x="{x0:.1f}" y="{y:.1f}" '
                f'width="{max(width, 0.5):.1f}" height="{h:.1f}" fill="{STATE_COLOURS[state]}">'
                f"<title>{i * timeline.bin_s:g} s: {n} {state}</title></rect>"
            )
    return top + SHARE_H


def node_colours(timeline: Timeline) -> dict[str, str]:
    """A colour per node of the run, in node order."""
    names = node_order(node for segs in timeline.nodes.values() for _, _, node in segs)
    return {name: NODE_COLOURS[i % len(NODE_COLOURS)] for i, name in enumerate(names)}


def _nodes(c: _Canvas, timeline: Timeline, top: float) -> float:
    """Which node each client was on: a lane per client (segments coloured and titled by
    node), or with many clients the count of clients on each node per time bin."""
    colours = node_colours(timeline)
    if len(timeline.nodes) > LANE_LIMIT:
        return _node_counts(c, timeline, top, colours)
    c.title(top + 10, "node per client")
    top += 18
    for i, (client, segments) in enumerate(sorted(timeline.nodes.items())):
        y = top + i * LANE_H
        c.label(y + 8, escape(client), "tick")
        for start, end, node in segments:
            x0 = c.x(start)
            width = max(c.x(end) - x0, 0.5)
            c.add(
                f'<rect class="node-lane" data-node="{escape(node)}" x="{x0:.1f}" '
                f'y="{y + 1}" width="{width:.1f}" height="{LANE_H - 2}" '
                f'fill="{colours[node]}"><title>{escape(client)} on {escape(node)} '
                f"{start:.1f}-{end:.1f} s</title></rect>"
            )
            if width > 7 * len(node) + 4:
                c.add(
                    f'<text class="node-name" x="{x0 + 2:.1f}" y="{y + LANE_H - 2}">'
                    f"{escape(node)}</text>"
                )
    return top + len(timeline.nodes) * LANE_H


def node_counts(timeline: Timeline) -> list[dict[str, int]]:
    """Per time bin, how many clients were on each node at its middle."""
    bins = max(1, math.ceil(timeline.duration / timeline.bin_s))
    counts: list[dict[str, int]] = [{} for _ in range(bins)]
    for segments in timeline.nodes.values():
        for start, end, node in segments:
            first = max(0, math.ceil(start / timeline.bin_s - 0.5))
            last = min(bins - 1, math.ceil(end / timeline.bin_s - 0.5) - 1)
            for i in range(first, last + 1):
                counts[i][node] = counts[i].get(node, 0) + 1
    return counts


def _node_counts(c: _Canvas, timeline: Timeline, top: float, colours: dict[str, str]) -> float:
    total = len(timeline.nodes)
    c.title(top + SHARE_H / 2 - 7, f"clients by node ({total})", "per time bin")
    width = PLOT * timeline.bin_s / timeline.duration
    for i, count in enumerate(node_counts(timeline)):
        x0 = c.x(i * timeline.bin_s)
        y = top + SHARE_H
        for node, colour in colours.items():
            n = count.get(node, 0)
            if not n:
                continue
            h = SHARE_H * n / total
            y -= h
            c.add(
                f'<rect class="node-share" data-node="{escape(node)}" x="{x0:.1f}" '
                f'y="{y:.1f}" width="{max(width, 0.5):.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{i * timeline.bin_s:g} s: {n} on {escape(node)}</title></rect>"
            )
    return top + SHARE_H


def _axis(c: _Canvas, timeline: Timeline, y: float) -> None:
    step = next((s for s in _TICK_STEPS if timeline.duration / s <= 12), _TICK_STEPS[-1])
    c.add(f'<line class="axis" x1="{LEFT}" x2="{LEFT + PLOT}" y1="{y}" y2="{y}"/>')
    t = 0
    while t <= timeline.duration:
        x = c.x(t)
        c.add(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{y + 15}" text-anchor="middle">{t} s</text>'
        )
        t += step


def _legend(c: _Canvas, y: float, nodes: dict[str, str]) -> None:
    x = LEFT
    keys = [(STATE_COLOURS[s], s) for s in STATES] + [("#1f4f8f", "p50 latency")]
    keys += [("#9bbbe0", "p50-p99 band"), ("#b3261e", "p99 latency")]
    keys.append(("#999", "fault window"))
    keys += [(colour, node) for node, colour in nodes.items()]
    for colour, text in keys:
        c.add(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'
            f'<text class="tick" x="{x + 14}" y="{y + 9}">{escape(text)}</text>'
        )
        x += 24 + 7 * len(text)


_STYLE = (
    "<style>.lbl{font:12px sans-serif;fill:#333}.tick{font:10px sans-serif;fill:#555}"
    ".fault-window{fill:#888;fill-opacity:.18;stroke:#777;stroke-dasharray:3 2}"
    ".fault-error{fill:#c8483e}.fault-label{font:bold 10px sans-serif;fill:#444}"
    ".grid{stroke:#ddd}.axis{stroke:#555}.band{fill:#9bbbe0;fill-opacity:.6}"
    ".bin{fill:transparent}"
    ".p50{fill:none;stroke:#1f4f8f;stroke-width:1.5}"
    ".p99{fill:none;stroke:#b3261e;stroke-width:1}.anomaly{stroke:#b3261e;stroke-width:2}"
    ".node-name{font:8px sans-serif;fill:#fff}"
    "</style>"
)


def _label_rows(c: _Canvas, timeline: Timeline) -> list[int]:
    """The label row of each fault window: overlapping labels go to the next free row."""
    ends: list[float] = []  # per row, where its last label ends
    rows = []
    for span in timeline.faults:
        x0 = c.x(span.start)
        row = next((i for i, end in enumerate(ends) if end < x0), len(ends))
        if row == len(ends):
            ends.append(0.0)
        ends[row] = x0 + 8 + 6 * len(span.name)
        rows.append(row)
    return rows


def render_timeline(timeline: Timeline) -> str:
    """The timeline as an ``<svg>`` element (with an ``id`` of ``timeline``)."""
    c = _Canvas(timeline.duration)
    top = 14.0 + 11 * max(_label_rows(c, timeline), default=0)
    _latency(c, timeline, top)
    y = _markers(c, timeline, top + LATENCY_H + 10)
    if len(timeline.lanes) <= LANE_LIMIT:
        y = _lanes(c, timeline, y + 6)
    else:
        y = _shares(c, timeline, y + 6)
    if timeline.nodes:
        y = _nodes(c, timeline, y + 6)
    _axis(c, timeline, y + 4)
    shapes = c.parts
    c.parts = []
    _faults(c, timeline, 2.0, y + 4)
    c.parts += shapes
    _legend(c, y + 26, node_colours(timeline))
    height = y + 44
    return (
        f'<svg id="timeline" viewBox="0 0 {WIDTH} '
        f'{height:.0f}" width="{WIDTH}" height="{height:.0f}" role="img" '
        f'aria-label="run timeline">{_STYLE}{"".join(c.parts)}</svg>'
    )
