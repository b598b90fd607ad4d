"""Time to recover: how long after a fault healed each client had caught up again.

A client is *behind* when a fault heals if an event it expects, committed before the
fault's end, had not reached it by then (applied, or covered by a snapshot). Its time to
recover is from the fault's end until the last such event reached it; a client that never
got one of them never recovered. A client that had everything when the fault ended is not
counted: it had nothing to recover from. The counts of each way back (replay on resume,
gap fill, snapshot resync) are ``metrics.Counters``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

from synccli.report.metrics import FaultWindow, percentiles
from synccli.report.thresholds import RECOVERY_KEYS


def note_catch_up(
    client: str,
    pairs: Sequence[tuple[float | None, float | None]],
    windows: Iterable[FaultWindow],
) -> None:
    """Record, for every window that ended, when ``client`` had all of its expected
    ``(committed_w, delivered_w)`` pairs committed before the end. One call per (client,
    date): a client has recovered when every one of its dates has."""
    ends = [(w, w.end_w) for w in windows if w.end_w is not None and w.error is None]
    if not ends:
        return
    # By commit time, with the latest delivery so far (inf: one never arrived), so each
    # window is one binary search however long the run.
    known = sorted(
        (committed, math.inf if delivered is None else delivered)
        for committed, delivered in pairs
        if committed is not None
    )
    commits = [committed for committed, _ in known]
    latest = list(itertools.accumulate((delivered for _, delivered in known), max))
    for window, end in ends:
        i = bisect.bisect_right(commits, end) - 1
        if i < 0 or latest[i] <= end:
            continue
        lag = None if latest[i] == math.inf else latest[i] - end
        if client in window.caught_up:
            before = window.caught_up[client]
            lag = None if before is None or lag is None else max(before, lag)
        window.caught_up[client] = lag


def recovery_ms(lags_s: Iterable[float]) -> dict[str, float | int | None]:
    """``{p50, p99, max, count}`` of recovery times given in seconds, in milliseconds."""
    stats = percentiles([lag * 1000.0 for lag in lags_s])
    return {key: stats[key] for key in RECOVERY_KEYS}


def window_recovery(window: FaultWindow) -> dict[str, Any]:
    """A window's ``recovery`` entry in ``summary.json``: clients behind when it healed, how
    many never caught up, and the time the others took."""
    lags = [lag for lag in window.caught_up.values() if lag is not None]
    return {
        "behind": len(window.caught_up),
        "never": len(window.caught_up) - len(lags),
        "ms": recovery_ms(lags),
    }


def overall_recovery(windows: Iterable[FaultWindow]) -> tuple[dict[str, Any], int]:
    """The recovery times over every window and client, and how many never recovered."""
    lags: list[float] = []
    never = 0
    for window in windows:
        for lag in window.caught_up.values():
            if lag is None:
                never += 1
            else:
                lags.append(lag)
    return recovery_ms(lags), never
