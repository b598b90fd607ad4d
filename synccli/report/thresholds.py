"""Thresholds in a k6-like syntax: ``{"delivery_rate": ">= 0.995", "latency_ms.p99": "< 500"}``.

An expression is an operator (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) and a number, or
the name of another metric (``"converged_clients": "== clients"``). Defaults hold the
guarantees (nothing lost, duplicated, reordered or invented; every client converged; 99.5%
delivered, and on time); a scenario's thresholds and then the command line's override them
metric by metric.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from synccli.errors import ConfigError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPR = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S+?)\s*(%?)\s*$")

# Names the scenario files accept for summary metrics (synccli/harness/scenario.py).
ALIASES = {
    "unconverged_clients": "not_converged",
    "gaps": "gaps_detected",
    "events": "events_committed",
    "writes": "writes.sent",
    "write_errors": "writes.failed",
}
LATENCY_KEYS = ("p50", "p90", "p99", "p999", "max", "count")
RECOVERY_KEYS = ("p50", "p99", "max", "count")
# Summary fields that are threshold metrics under their own name.
PLAIN_METRICS = (
    "clients",
    "duration_s",
    "events_committed",
    "expected_pairs",
    "delivered_pairs",
    "delivery_rate",
    "on_time_rate",
    "lost",
    "duplicates",
    "out_of_order",
    "phantoms",
    "epoch_mixups",
    "not_converged",
    "converged_clients",
    "retries",
    "ack_timeouts",
    "gaps_detected",
    "gap_recoveries",
    "replay_resumes",
    "replayed_events",
    "snapshot_resyncs",
    "never_recovered",
    "resyncs",
    "reconnects",
    "rollbacks",
)
METRICS = frozenset(
    {
        *PLAIN_METRICS,
        "writes.sent",
        "writes.ok",
        "writes.failed",
        "faults_no_trace",
        "latency_ms.mean",
        "loop_lag_ms.p99",
        "loop_lag_ms.max",
    }
    | set(ALIASES)
    | {f"latency_ms.{key}" for key in LATENCY_KEYS}
    | {f"recovery_ms.{key}" for key in RECOVERY_KEYS}
)
_PERCENTILE = re.compile(r"^latency_ms\.p(\d{1,4})$")

DEFAULT_THRESHOLDS: dict[str, str] = {
    "lost": "== 0",
    "duplicates": "== 0",
    "out_of_order": "== 0",
    "phantoms": "== 0",
    "epoch_mixups": "== 0",
    "converged_clients": "== clients",
    "delivery_rate": ">= 0.995",
    "on_time_rate": ">= 0.995",
}

# Metrics whose failure proves a bug even in a run that is otherwise inconclusive: they
# cannot be explained by a run cut short.
INVARIANTS = frozenset({"duplicates", "out_of_order", "phantoms", "epoch_mixups"})


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metric`` compared with ``op`` to a number or to another metric."""

    metric: str
    op: str
    target: float | str
    expr: str


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """A threshold checked against a run. ``ok`` is None when the metric was not measured."""

    metric: str
    expr: str
    observed: float | None
    ok: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "expr": self.expr, "observed": self.observed, "ok": self.ok}


def is_metric(name: str) -> bool:
    """Whether a threshold may name ``name`` (``latency_ms.pNN`` takes any percentile)."""
    return name in METRICS or _PERCENTILE.match(name) is not None


def percentile_of(name: str) -> float | None:
    """The quantile a ``latency_ms.pNN`` name stands for: p95 → 0.95, p999 → 0.999."""
    match = _PERCENTILE.match(name)
    if match is None:
        return None
    digits = match.group(1)
    return 1.0 if digits == "100" else int(digits) / 10 ** max(2, len(digits))


def parse_threshold(metric: str, expr: object) -> Threshold:
    """Parse one threshold; an unknown metric or a bad expression raises ``ConfigError``.
    A number may end in ``%`` (``>= 99.5%`` is ``>= 0.995``)."""
    if not is_metric(metric):
        raise ConfigError(
            f"unknown threshold metric {metric!r}: use one of {', '.join(sorted(METRICS))}"
        )
    match = _EXPR.match(expr) if isinstance(expr, str) else None
    if match is None:
        raise ConfigError(
            f"bad threshold for {metric}: {expr!r} is not an operator (<, <=, >, >=, ==, !=) "
            'followed by a number, e.g. ">= 0.995"'
        )
    op, value, percent = match.groups()
    if is_metric(value) and not percent:
        return Threshold(metric, op, value, f"{op} {value}")
    try:
        target = float(value) / (100 if percent else 1)
    except ValueError:
        raise ConfigError(
            f"bad threshold for {metric}: {value!r} in {expr!r} is neither a number nor a metric"
        ) from None
    return Threshold(metric, op, target, f"{op} {value}{percent}")


def parse_thresholds(mapping: Mapping[str, object]) -> list[Threshold]:
    """Parse ``{metric: expr}``."""
    return [parse_threshold(metric, expr) for metric, expr in mapping.items()]


def parse_override(text: str) -> Threshold:
    """Parse a command-line threshold: ``METRIC=EXPR`` (``delivery_rate=>=0.99``) or the
    expression glued to the metric (``lost==0``, ``latency_ms.p99<500``)."""
    match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(.*)$", text)
    if match is None or not match.group(2):
        raise ConfigError(
            f"bad --threshold {text!r}: write METRIC=EXPR, e.g. 'delivery_rate=>=0.99' or 'lost==0'"
        )
    metric, rest = match.groups()
    if rest.startswith("=") and _EXPR.match(rest[1:]):
        rest = rest[1:]
    return parse_threshold(metric, rest)


def merge(*layers: Iterable[Threshold]) -> list[Threshold]:
    """Later layers replace earlier ones metric by metric; order of first appearance kept."""
    merged: dict[str, Threshold] = {}
    for layer in layers:
        for threshold in layer:
            merged[threshold.metric] = threshold
    return list(merged.values())


def evaluate(
    thresholds: Iterable[Threshold], metrics: Mapping[str, float | None]
) -> list[ThresholdResult]:
    """Check each threshold against ``metrics`` (flat names as in ``METRICS``)."""
    results = []
    for t in thresholds:
        observed = metrics.get(t.metric)
        target = metrics.get(t.target) if isinstance(t.target, str) else t.target
        ok = None if observed is None or target is None else OPERATORS[t.op](observed, target)
        results.append(ThresholdResult(t.metric, t.expr, observed, ok))
    return results
