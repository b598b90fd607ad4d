"""Scenario files: the shipped ones load, and every mistake names its file, line and field."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from synccli.errors import ConfigError
from synccli.faults.kinds import fault_kinds
from synccli.harness.scenario import (
    DEFAULTS,
    SCENARIO_DIR,
    FaultSpec,
    Scenario,
    default_scenario,
    find_scenario,
    list_scenarios,
    load_scenario,
    parse_scenario,
)
from synccli.harness.scenario_fields import (
    DURATION_HINT,
    ScenarioError,
    key_lines,
    parse_duration,
)

SHIPPED = sorted(SCENARIO_DIR.glob("*.toml"))

BASE = """\
name = "base"
description = "a test scenario"
seed = 7
duration_s = 30
clients = 4
writers = 2
rate = 5

[server]
ack_timeout_s = 2

[[faults]]
kind = "down"
at_s = 2
for_s = 3
target = "50%"

[[faults]]
kind = "latency"
at_s = 10
for_s = 5
latency = 200

[thresholds]
lost = "== 0"
"latency_ms.p99" = "< 500"
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_scenario(textwrap.dedent(text), "s.toml")
    return str(info.value)


def with_line(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def test_base_parses_with_defaults_filled() -> None:
    scenario = parse_scenario(BASE, "s.toml")
    assert scenario.name == "base" and scenario.seed == 7
    assert scenario.groups == 4  # min(clients, 10)
    assert scenario.appointments == 30 and scenario.drain_timeout_s == 30.0
    assert scenario.server.ack_timeout_s == 2.0 and scenario.server.max_retries is None
    assert scenario.faults[0] == FaultSpec(2.0, 3.0, "down", 0.5, "both", {}, "down-1")
    assert scenario.faults[1].attrs == {"latency": 200, "jitter": 0}
    assert scenario.faults[1].end_s == 15.0
    assert scenario.thresholds == {"lost": "== 0", "latency_ms.p99": "< 500"}
    assert scenario.expect_traces is True


def test_name_defaults_to_file_stem_and_no_faults_expects_no_traces() -> None:
    scenario = parse_scenario("duration_s = 5\nclients = 1\n", "dir/quiet.toml")
    assert scenario.name == "quiet"
    assert scenario.expect_traces is False
    assert scenario.thresholds == {"delivery_rate": ">= 0.995"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_validates_and_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description, "every shipped scenario says what it tests"
    assert 20 <= scenario.duration_s <= 90
    assert parse_scenario(scenario.to_toml(), str(path)) == scenario


def test_the_checklist_is_shipped() -> None:
    names = {path.stem for path in SHIPPED}
    assert {
        "single-checkin", "concurrent-writers-5", "db-deadlock", "packet-loss",
        "normal-ack-flow", "connection-killed-mid-message", "client-offline-10s",
        "concurrent-users-10", "sequential-updates", "disconnect-30s-gap-detection",
        "missed-event-replay", "over-100-missed-events", "reconnect-verification",
        "sequence-mismatch-resync", "server-crash", "soak-everything", "ci-gate",
    } <= names  # fmt: skip


def test_ci_gate_has_disconnections_loss_and_a_kill_within_two_minutes() -> None:
    gate = load_scenario(SCENARIO_DIR / "ci-gate.toml")
    kinds = {fault.kind for fault in gate.faults}
    assert {"down", "packet_loss", "server_kill"} <= kinds
    assert gate.duration_s + gate.drain_timeout_s < 100  # leaves room for start and report


def test_over_100_missed_events_writes_enough_while_offline() -> None:
    scenario = load_scenario(SCENARIO_DIR / "over-100-missed-events.toml")
    (offline,) = scenario.faults
    # Even with one writer inside the offline group, the others write > 150 meanwhile.
    others = scenario.rate * (scenario.writers - 1) / scenario.writers
    assert others * offline.for_s > 150


def test_default_scenario_fits_the_brief() -> None:
    scenario = default_scenario(10, packet_loss=True)
    assert 30 <= scenario.duration_s <= 45
    kinds = [fault.kind for fault in scenario.faults]
    assert "down" in kinds and "reset_peer" in kinds and "packet_loss" in kinds
    down = next(fault for fault in scenario.faults if fault.kind == "down")
    assert down.target == pytest.approx(0.3)


def test_default_scenario_without_loss_and_with_few_clients() -> None:
    scenario = default_scenario(2, packet_loss=False)
    assert "packet_loss" not in {fault.kind for fault in scenario.faults}
    assert scenario.clients == 2 and scenario.writers == 2 and scenario.groups == 2


# ------------------------------------------------------------------ errors: file:line: field


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        ("seed = 7", "seed = 7\ncolour = 1", "s.toml:4: colour:", "unknown key"),
        ('kind = "latency"', 'kind = "lag"', "s.toml:19: faults[2].kind:", "unknown fault kind"),
        ("latency = 200", "jitter = 5", "s.toml:18: faults[2].latency:", "is missing"),
        ("latency = 200", 'latency = "200ms"', "s.toml:22: faults[2].latency:", "an integer"),
        ("latency = 200", "latency = -5", "s.toml:22: faults[2].latency:", "at least 0"),
        ("latency = 200", "latency = 200\nspeed = 1", "s.toml:23: faults[2].speed:", "unknown"),
        ('target = "50%"', "target = 1.5", "s.toml:16: faults[1].target:", "(0, 1]"),
        ('target = "50%"', 'target = "0%"', "s.toml:16: faults[1].target:", "(0, 1]"),
        ('target = "50%"', 'target = "half"', "s.toml:16: faults[1].target:", "share like"),
        ("for_s = 5", "for_s = 25", "s.toml:21: faults[2].for_s:", "after duration_s"),
        ("at_s = 2", "at_s = -1", "s.toml:14: faults[1].at_s:", "at least 0"),
        ("writers = 2", "writers = 5", "s.toml:6: writers:", "more than the 4 clients"),
        ("clients = 4", "clients = true", "s.toml:5: clients:", "an integer"),
        ("duration_s = 30", "duration_s = 0", "s.toml:4: duration_s:", "more than 0"),
        ("rate = 5", "rate = 5\ngroups = 9", "s.toml:8: groups:", "more than the 4 clients"),
        ("ack_timeout_s = 2", "ack_timeout = 2", "s.toml:10: server.ack_timeout:", "unknown"),
        ('lost = "== 0"', 'lost = "zero"', "s.toml:25: thresholds.lost:", "an operator"),
        ('lost = "== 0"', 'lost = "=> 0"', "s.toml:25: thresholds.lost:", "an operator"),
        ('lost = "== 0"', 'lots = "== 0"', "s.toml:25: thresholds.lots:", "unknown threshold"),
        ('lost = "== 0"', "lost = 0", "s.toml:25: thresholds.lost:", "a string"),
        ("rate = 5", 'rate = 5\ndates = ["2026-02-30"]', "s.toml:8: dates:", "not a date"),
        ("rate = 5", "rate = 5\ndates = 0", "s.toml:8: dates:", "at least 1"),
        (
            'kind = "down"',
            'kind = "down"\nstream = "upstream"',
            "s.toml:14: faults[1].stream:",
            "has no stream",
        ),
    ],
)
def test_error_names_file_line_and_field(old: str, new: str, where: str, words: str) -> None:
    message = error_of(with_line(old, new))
    assert message.startswith(where), message
    assert words in message


def test_fault_kind_specific_rules() -> None:
    head = "duration_s = 30\nclients = 2\n\n[[faults]]\n"
    loss = error_of(head + 'kind = "packet_loss"\nat_s = 1\nfor_s = 2\npercent = 5\ntarget = 0.5\n')
    assert loss.startswith("s.toml:9: faults[1].target:") and "must be 1.0" in loss
    too_much = error_of(head + 'kind = "packet_loss"\nat_s = 1\nfor_s = 2\npercent = 150\n')
    assert too_much.startswith("s.toml:8: faults[1].percent:")
    mode = error_of(head + 'kind = "db_fault"\nat_s = 1\nfor_s = 2\nmode = "flaky"\n')
    assert mode.startswith("s.toml:8: faults[1].mode:") and "verify, deadlock, slow_commit" in mode
    slow = error_of(head + 'kind = "db_fault"\nat_s = 1\nfor_s = 2\nmode = "slow_commit"\n')
    assert "faults[1].delay_ms:" in slow and "delay_ms > 0" in slow
    slices = error_of(head + 'kind = "slicer"\nat_s = 1\nfor_s = 2\naverage_size = 4\n'
                      'size_variation = 4\n')  # fmt: skip
    assert slices.startswith("s.toml:9: faults[1].size_variation: must be smaller than")
    no_for = error_of(head + 'kind = "server_kill"\nat_s = 1\n')
    assert no_for.startswith("s.toml:4: faults[1].for_s: is missing")
    reset = parse_scenario(head + 'kind = "epoch_reset"\nat_s = 1\n', "s.toml")
    assert reset.faults[0].for_s == 0


def test_clients_of_a_fault_are_readers_writers_or_all() -> None:
    readers = with_line('target = "50%"', 'target = "50%"\nclients = "readers"')
    assert parse_scenario(readers, "s.toml").faults[0].clients == "readers"
    assert parse_scenario(BASE, "s.toml").faults[0].clients == "all"
    unknown = error_of(with_line('target = "50%"', 'target = "50%"\nclients = "front-desk"'))
    assert unknown.startswith("s.toml:17: faults[1].clients: unknown clients 'front-desk'")
    assert "(known: all, readers, writers)" in unknown and len(unknown.splitlines()) == 1
    no_readers = error_of(readers.replace("writers = 2", "writers = 4"))
    assert no_readers.startswith("s.toml:17: faults[1].clients: the scenario has no readers")
    no_writers = error_of(
        readers.replace("writers = 2\nrate = 5", "writers = 0").replace('"readers"', '"writers"')
    )
    assert no_writers.startswith("s.toml:16: faults[1].clients: the scenario has no writers")
    one_group = error_of(readers.replace("rate = 5", "rate = 5\ngroups = 1"))
    assert (
        one_group.startswith("s.toml:18: faults[1].clients:")
        and "groups to at least 2" in one_group
    )
    head = "duration_s = 30\nclients = 2\n\n[[faults]]\n"
    kill = error_of(head + 'kind = "server_kill"\nat_s = 1\nfor_s = 2\nclients = "writers"\n')
    assert kill.startswith("s.toml:8: faults[1].clients: a server_kill fault hits every client")
    both = error_of(head + 'kind = "down"\nat_s = 1\nfor_s = 2\nclients = 3\ntarget = 2\n')
    assert "faults[1].clients: must be a string" in both and "faults[1].target:" in both


def test_duplicate_names_and_overlapping_kills_are_refused() -> None:
    kill = '[[faults]]\nname = "{n}"\nkind = "server_kill"\nat_s = {at}\nfor_s = 5\n'
    head = "duration_s = 30\nclients = 2\n"
    same = error_of(head + kill.format(n="k", at=1) + kill.format(n="k", at=10))
    assert same.startswith("s.toml:9: faults[2].name:") and "used twice" in same
    overlap = error_of(head + kill.format(n="a", at=1) + kill.format(n="b", at=3))
    assert overlap.startswith("s.toml:11: faults[2].at_s:") and "overlaps" in overlap


def test_rate_without_writers_is_refused() -> None:
    assert error_of("duration_s = 5\nclients = 2\nwriters = 0\nrate = 3\n").startswith(
        "s.toml:4: rate:"
    )


def test_a_minimal_file_takes_the_default_run_s_load() -> None:
    text = 'name = "minimal"\n\n[[faults]]\nkind = "down"\nat_s = 5\nfor_s = 5\n'
    scenario = parse_scenario(text, "minimal.toml")
    builtin = default_scenario(packet_loss=False)
    for key in ("seed", "duration_s", "clients", "writers", "dates", "rate", "appointments"):
        assert getattr(scenario, key) == getattr(builtin, key) == DEFAULTS[key], key
    assert scenario.faults == (FaultSpec(5.0, 5.0, "down", 1.0, "both", {}, "down-1"),)
    assert scenario.groups == 10 and scenario.expect_traces is True


def test_defaults_that_follow_other_fields() -> None:
    few = parse_scenario("clients = 2\n", "s.toml")
    assert (few.writers, few.rate) == (2, 15.0)
    readers = parse_scenario("writers = 0\n", "s.toml")
    assert (readers.clients, readers.writers, readers.rate) == (10, 0, 0.0)
    # An override re-derives what the file left out, and keeps what it set.
    assert few.with_overrides(clients=1).writers == 1
    with pytest.raises(ConfigError, match="writers: 2 writers is more than the 1 clients"):
        parse_scenario("clients = 2\nwriters = 2\n", "s.toml").with_overrides(clients=1)


def test_every_error_of_a_file_is_reported_at_once_by_line() -> None:
    text = """\
        clients = 0
        duration_s = "1x"

        [[faults]]
        kind = "latency"
        at_s = 1
        for_s = 2
        latency = -3
        """
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.toml")
    assert info.value.problems == [
        "s.toml:1: clients: must be at least 1, not 0",
        "s.toml:2: duration_s: '1x' is not a duration: use seconds (15) or a duration like "
        '"30s", "2m", "1m30s"',
        "s.toml:8: faults[1].latency: must be at least 0, not -3",
    ]
    assert str(info.value) == "\n".join(info.value.problems)


def test_an_error_does_not_pile_up_others_that_follow_from_it() -> None:
    # An unknown kind's attributes are not called unknown keys; a bad duration_s does not
    # make every fault "end after duration_s".
    text = BASE.replace('kind = "latency"', 'kind = "lag"').replace(
        "duration_s = 30", "duration_s = -1"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    assert [p.split(": ")[1] for p in info.value.problems] == ["duration_s", "faults[2].kind"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15", 15.0), ("2.5", 2.5), ("30s", 30.0), ("2m", 120.0), ("1m30s", 90.0),
     ("1h", 3600.0), ("500ms", 0.5), ("1m0.5s", 60.5), (" 45s ", 45.0)],
)  # fmt: skip
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1x", "30 s", "1s30m", "1m1m", "-5", "1.2.3s", "1e3"])
def test_bad_durations_are_one_sentence(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"{text!r} is not a duration: use {DURATION_HINT}"


def test_durations_in_a_file() -> None:
    text = 'duration_s = "1m30s"\ndrain_timeout_s = "10s"\n\n[server]\nheartbeat_s = "500ms"\n'
    text += '\n[[faults]]\nkind = "down"\nat_s = "1m"\nfor_s = "15s"\n'
    scenario = parse_scenario(text, "s.toml")
    assert (scenario.duration_s, scenario.drain_timeout_s) == (90.0, 10.0)
    assert scenario.server.heartbeat_s == 0.5
    assert (scenario.faults[0].at_s, scenario.faults[0].for_s) == (60.0, 15.0)
    assert scenario.with_overrides(duration_s="2m").duration_s == 120.0
    message = error_of('duration_s = "forever"\n')
    assert message.startswith("s.toml:1: duration_s: 'forever' is not a duration")


def test_non_finite_numbers() -> None:
    assert error_of("duration_s = nan\n").startswith("s.toml:1: duration_s: must be a number")
    assert error_of("duration_s = inf\n").startswith("s.toml:1: duration_s: must be at most")
    # Infinity where it means "never" is kept, and written back as TOML's inf.
    scenario = parse_scenario("on_time_s = inf\n", "s.toml")
    assert "on_time_s = inf" in scenario.to_toml()
    assert parse_scenario(scenario.to_toml(), "s.toml") == scenario


def test_toml_syntax_error_passes_line_and_column() -> None:
    message = error_of("clients = 2\nduration_s = \n")
    assert message.startswith("s.toml:2:14: invalid TOML: Invalid value")


def test_faults_must_be_an_array_of_tables() -> None:
    assert error_of("duration_s = 5\nclients = 1\nfaults = 3\n").startswith("s.toml:3: faults:")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


# ------------------------------------------------------------------------- line scanning


def test_key_lines_ignores_multiline_strings_and_reads_quoted_and_dotted_keys() -> None:
    text = textwrap.dedent('''\
        description = """
        clients = 99
        """
        server.heartbeat_s = 2
        [thresholds]
        "latency_ms.p99" = "< 5"
        [[faults]]
        kind = "down"
        [[faults]]
        kind = "latency"
        ''')
    lines = key_lines(text)
    assert ("clients",) not in lines
    assert lines[("server", "heartbeat_s")] == 4
    assert lines[("thresholds", "latency_ms.p99")] == 6
    assert lines[("faults", 0, "kind")] == 8
    assert lines[("faults", 1)] == 9


# --------------------------------------------------------------------- overrides and lookups


def test_overrides_apply_and_revalidate() -> None:
    scenario = parse_scenario(BASE, "s.toml")
    bigger = scenario.with_overrides(clients=20, rate=None, seed=3)
    assert (bigger.clients, bigger.seed, bigger.rate, bigger.groups) == (20, 3, 5.0, 4)
    smaller = scenario.with_overrides(clients=2)
    assert smaller.groups == 2
    assert smaller.faults == scenario.faults
    with pytest.raises(ConfigError, match="writers: 2 writers is more than the 1 clients"):
        scenario.with_overrides(clients=1)
    with pytest.raises(ConfigError, match=r"faults\[2\]\.for_s: .* after duration_s"):
        scenario.with_overrides(duration_s=12)
    with pytest.raises(ConfigError, match="cannot override colour"):
        scenario.with_overrides(colour="red")
    dated = scenario.with_overrides(dates=["2026-01-02", "2026-01-03"])
    assert dated.dates == ("2026-01-02", "2026-01-03")


def test_date_list_counts_from_today_or_keeps_the_list() -> None:
    scenario = parse_scenario(BASE + "", "s.toml").with_overrides(dates=3)
    assert scenario.date_list(date(2026, 12, 31)) == ["2026-12-31", "2027-01-01", "2027-01-02"]
    listed = parse_scenario(with_line("rate = 5", "rate = 5\ndates = [2026-11-26]"), "s.toml")
    assert listed.date_list(date(2030, 1, 1)) == ["2026-11-26"]


def test_list_and_find(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('description = "fine"\nduration_s = 5\nclients = 1\n')
    (tmp_path / "bad.toml").write_text("duration_s = 5\nclients = 0\nseed = -1\n")
    listed = list_scenarios(tmp_path)
    assert [(name, desc) for name, _, desc in listed] == [
        (
            "bad",
            f"INVALID: {tmp_path / 'bad.toml'}:2: clients: must be at least 1, not 0 (and 1 more)",
        ),
        ("good", "fine"),
    ]
    assert find_scenario("good", tmp_path).description == "fine"
    assert find_scenario(str(tmp_path / "good.toml"), tmp_path).name == "good"
    assert isinstance(find_scenario("default", tmp_path), Scenario)
    with pytest.raises(ConfigError, match=r"no scenario named 'nope'.*known: bad, good, default"):
        find_scenario("nope", tmp_path)


def test_options_apply_over_the_file_before_it_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "late.toml"
    path.write_text('[[faults]]\nkind = "down"\nat_s = 40\nfor_s = 5\n\n[[faults]]\nkind = "x"\n')
    with pytest.raises(ConfigError) as alone:
        load_scenario(path)
    assert str(alone.value).splitlines() == [
        f"{path}:4: faults[1].for_s: the fault ends at 45 s, after duration_s",
        f"{path}:7: faults[2].kind: unknown fault kind 'x' (known: {', '.join(fault_kinds())})",
    ]
    late = find_scenario(str(path), duration_s=60, faults=[])
    assert (late.duration_s, late.faults, late.expect_traces) == (60.0, (), False)
    path.write_text('groups = 4\n[[faults]]\nkind = "down"\nat_s = 40\nfor_s = 5\n')
    assert load_scenario(path, duration_s=60, seed=None).faults[0].end_s == 45
    few = load_scenario(path, clients=2, duration_s=60)  # fewer clients lower groups too
    assert few.groups == 2
    with pytest.raises(ConfigError) as both:
        load_scenario(path, clients=2, writers=5)
    assert str(both.value).splitlines() == [
        "command line: writers: 5 writers is more than the 2 clients",
        f"{path}:5: faults[1].for_s: the fault ends at 45 s, after duration_s",
    ]
    with pytest.raises(ConfigError, match="cannot override colour"):
        load_scenario(path, colour="red")
