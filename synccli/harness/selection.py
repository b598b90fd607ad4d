"""The scenario a run uses: a named file, or the built-in default with its fault schedule
fitted to the duration asked for; then the command line's overrides and thresholds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from synccli.errors import ConfigError
from synccli.harness.scenario import DEFAULT_NAME, Scenario, default_scenario, find_scenario
from synccli.report.thresholds import Threshold, merge, parse_override, parse_thresholds

#: The shortest a fault of a fitted schedule may last: a shorter one is over before a client
#: has noticed it (a reset needs traffic in its window, a drop-out a failed reconnect).
MIN_FAULT_S = 0.5


def shortest_duration(scenario: Scenario, min_fault_s: float = MIN_FAULT_S) -> float:
    """The shortest duration ``fit_schedule`` accepts for ``scenario``: the one at which its
    shortest fault lasts ``min_fault_s``."""
    spans = [fault.for_s for fault in scenario.faults if fault.for_s > 0]
    if not spans:
        return 0.0
    return scenario.duration_s * min(1.0, min_fault_s / min(spans))


def fit_schedule(scenario: Scenario, duration_s: float) -> Scenario:
    """``scenario`` shortened to ``duration_s`` seconds of load, its fault schedule scaled by
    the same factor: the faults keep their order, kinds, overlaps and share of the run. A
    schedule that already fits is kept as it is. Below ``shortest_duration`` it is a
    ``ConfigError`` that names that duration."""
    if duration_s >= scenario.duration_s or not scenario.faults:
        return dataclasses.replace(scenario, duration_s=duration_s)
    floor = shortest_duration(scenario)
    if duration_s < floor:
        raise ConfigError(
            f"the {scenario.name} scenario needs --duration {math.ceil(floor)} or more (its "
            f"shortest fault would last under {MIN_FAULT_S:g} s); give a longer --duration, "
            "--no-faults or a --scenario"
        )
    factor = duration_s / scenario.duration_s

    def scaled(seconds: float) -> float:
        # Rounded down to 10 ms: readable in the report, and never past the end of the run.
        return math.floor(seconds * factor * 100) / 100

    faults = tuple(
        dataclasses.replace(fault, at_s=scaled(fault.at_s), for_s=scaled(fault.for_s))
        for fault in scenario.faults
    )
    return dataclasses.replace(scenario, duration_s=duration_s, faults=faults)


def with_thresholds(scenario: Scenario, overrides: Iterable[Threshold]) -> Scenario:
    """``scenario`` with ``overrides`` replacing its thresholds metric by metric, so the run
    folder records (and ``synccli report`` re-checks) the gate the run was judged by."""
    merged = merge(parse_thresholds(scenario.thresholds), overrides)
    return dataclasses.replace(scenario, thresholds={t.metric: t.expr for t in merged})


def is_builtin(ref: str | None) -> bool:
    """Whether ``ref`` (a ``--scenario`` value, or none) names the built-in default."""
    return ref is None or ref == DEFAULT_NAME


def scenario_for_run(
    ref: str | None,
    *,
    no_faults: bool = False,
    thresholds: Iterable[str] = (),
    **overrides: Any,
) -> Scenario:
    """The scenario ``synccli simulate`` runs: ``ref`` (a name or a file) or the built-in
    default (no ``ref``, or ``default``) fitted to ``duration_s``; without faults if
    ``no_faults``; with the ``overrides`` (``Scenario.with_overrides``; ``None`` values are
    ignored) and the command-line ``thresholds`` (``METRIC=EXPR``, as ``synccli report
    --threshold``)."""
    parsed = [parse_override(text) for text in thresholds]
    given = {key: value for key, value in overrides.items() if value is not None}
    if no_faults:
        given["faults"] = ()
    if ref is not None and not is_builtin(ref):
        # Over the file before it is validated: a longer --duration may fit a late fault.
        scenario = find_scenario(ref, **given)
    else:
        base = default_scenario(given.get("clients", 10))
        if "duration_s" in given and not no_faults:
            base = fit_schedule(base, given["duration_s"])
        scenario = base.with_overrides(**given)
    if no_faults:
        # Named for what ran: `default-no-faults` is not the default scenario.
        scenario = dataclasses.replace(scenario, name=f"{scenario.name}-no-faults")
    return with_thresholds(scenario, parsed)
