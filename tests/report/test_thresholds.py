"""Threshold parsing (k6-like), overrides from the command line, and evaluation."""

from __future__ import annotations

import pytest

from synccli.errors import ConfigError
from synccli.report.thresholds import (
    DEFAULT_THRESHOLDS,
    Threshold,
    evaluate,
    merge,
    parse_override,
    parse_threshold,
    parse_thresholds,
    percentile_of,
)


@pytest.mark.parametrize(
    ("expr", "op", "target"),
    [
        (">= 0.995", ">=", 0.995),
        ("<500", "<", 500.0),
        ("  == 0 ", "==", 0.0),
        ("!= 3", "!=", 3.0),
        ("<= 1e3", "<=", 1000.0),
        ("> -1", ">", -1.0),
        (">= 99.5%", ">=", 0.995),
        ("== clients", "==", "clients"),
    ],
)
def test_expressions_parse(expr: str, op: str, target: float | str) -> None:
    threshold = parse_threshold("delivery_rate", expr)
    assert (threshold.op, threshold.target) == (op, target)


@pytest.mark.parametrize(
    "expr",
    ["0.995", ">= ", "=> 1", "~ 1", ">= abc", ">= 1 2", "", ">=nothing_known", 0.5, None],
)
def test_bad_expressions_are_config_errors_naming_the_metric(expr: object) -> None:
    with pytest.raises(ConfigError, match="delivery_rate"):
        parse_threshold("delivery_rate", expr)


def test_unknown_metric_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown threshold metric 'delivery'"):
        parse_threshold("delivery", ">= 1")


def test_scenario_names_and_any_latency_percentile_are_accepted() -> None:
    for name in (
        "unconverged_clients",
        "gaps",
        "write_errors",
        "latency_ms.mean",
        "latency_ms.p95",
    ):
        assert parse_threshold(name, "< 1").metric == name
    assert percentile_of("latency_ms.p95") == 0.95
    assert percentile_of("latency_ms.p999") == 0.999
    assert percentile_of("latency_ms.p100") == 1.0
    assert percentile_of("lost") is None


@pytest.mark.parametrize(
    ("text", "metric", "expr"),
    [
        ("delivery_rate=>=0.99", "delivery_rate", ">= 0.99"),
        ("lost==0", "lost", "== 0"),
        ("lost===0", "lost", "== 0"),
        ("latency_ms.p99<500", "latency_ms.p99", "< 500"),
        ("latency_ms.p99=<500", "latency_ms.p99", "< 500"),
    ],
)
def test_command_line_overrides(text: str, metric: str, expr: str) -> None:
    threshold = parse_override(text)
    assert (threshold.metric, threshold.expr) == (metric, expr)


@pytest.mark.parametrize("text", ["lost", "=0", "lost=0", "lost=", "nope<1"])
def test_bad_overrides(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_override(text)


def test_merge_replaces_metric_by_metric_and_keeps_order() -> None:
    merged = merge(parse_thresholds(DEFAULT_THRESHOLDS), [parse_override("lost<=2")])
    assert [t.metric for t in merged] == list(DEFAULT_THRESHOLDS)
    assert merged[0] == Threshold("lost", "<=", 2.0, "<= 2")


def test_evaluate_numbers_metric_references_and_missing_values() -> None:
    thresholds = parse_thresholds(
        {
            "lost": "== 0",
            "converged_clients": "== clients",
            "retries": "< 5",
            "delivery_rate": ">= 0.995",
        }
    )
    metrics = {
        "lost": 1,
        "converged_clients": 3,
        "clients": 3,
        "retries": None,
        "delivery_rate": 0.995,
    }
    assert [r.ok for r in evaluate(thresholds, metrics)] == [False, True, None, True]
