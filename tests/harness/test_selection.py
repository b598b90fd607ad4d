"""The scenario a run uses: the built-in default fitted to the duration asked for (order and
kinds kept, inside the run, a floor with one sentence), command-line thresholds recorded."""

from __future__ import annotations

import pytest

from synccli.errors import ConfigError
from synccli.harness.scenario import default_scenario, parse_scenario
from synccli.harness.selection import (
    MIN_FAULT_S,
    fit_schedule,
    scenario_for_run,
    shortest_duration,
    with_thresholds,
)
from synccli.report.thresholds import parse_override


@pytest.mark.parametrize("duration", [9.0, 10.0, 15.0, 35.9])
def test_the_default_fits_any_duration_above_its_floor(duration: float) -> None:
    full = default_scenario(packet_loss=True)
    fitted = fit_schedule(full, duration)
    assert fitted.duration_s == duration
    assert [f.kind for f in fitted.faults] == [f.kind for f in full.faults]
    assert [f.name for f in fitted.faults] == [f.name for f in full.faults]
    starts = [f.at_s for f in fitted.faults]
    assert starts == sorted(starts) and starts[0] > 0
    for before, after in zip(full.faults, fitted.faults, strict=True):
        assert after.end_s <= duration
        assert after.for_s >= MIN_FAULT_S - 0.01
        assert after.at_s == pytest.approx(before.at_s * duration / full.duration_s, abs=0.01)
        assert after.attrs == before.attrs and after.target == before.target
    # Still a valid scenario: the loader's own checks accept it.
    assert fitted.with_overrides(clients=10).faults == fitted.faults


def test_below_the_floor_one_sentence_names_the_shortest_duration() -> None:
    full = default_scenario(packet_loss=True)
    assert shortest_duration(full) == 9.0  # the 2 s reset, scaled to 0.5 s
    with pytest.raises(ConfigError) as caught:
        fit_schedule(full, 8.9)
    message = str(caught.value)
    assert "needs --duration 9 or more" in message and message.count(". ") == 0


def test_a_schedule_that_fits_is_kept() -> None:
    full = default_scenario(packet_loss=True)
    longer = fit_schedule(full, 120)
    assert longer.duration_s == 120 and longer.faults == full.faults


def test_scenario_for_run_fits_only_the_built_in_default(tmp_path: object) -> None:
    short = scenario_for_run(None, duration_s=10, clients=4)
    assert short.duration_s == 10 and short.clients == 4
    assert all(f.end_s <= 10 for f in short.faults) and short.faults
    assert scenario_for_run("default", duration_s=10).faults == short.faults
    calm = scenario_for_run(None, no_faults=True, duration_s=2)
    assert calm.faults == () and calm.duration_s == 2 and calm.name == "default-no-faults"
    with pytest.raises(ConfigError, match="needs --duration 9"):
        scenario_for_run(None, duration_s=3)
    # A named scenario keeps its own schedule: a too-short duration is its file's error.
    with pytest.raises(ConfigError, match="after duration_s"):
        scenario_for_run("server-crash", duration_s=1)


def test_command_line_thresholds_replace_the_scenario_s_and_are_recorded() -> None:
    scenario = parse_scenario(
        'seed = 1\nduration_s = 5\nclients = 2\n[thresholds]\nlost = "== 0"\n'
        'delivery_rate = ">= 0.995"\n',
        "t.toml",
    )
    changed = with_thresholds(scenario, [parse_override("delivery_rate=>=0.9")])
    assert changed.thresholds == {"lost": "== 0", "delivery_rate": ">= 0.9"}
    run = scenario_for_run(None, no_faults=True, thresholds=["latency_ms.p99<500"])
    assert run.thresholds["latency_ms.p99"] == "< 500"
    assert run.to_dict()["thresholds"]["latency_ms.p99"] == "< 500"  # in run_start's config
    with pytest.raises(ConfigError, match="bad --threshold"):
        scenario_for_run(None, no_faults=True, thresholds=["delivery_rate"])
