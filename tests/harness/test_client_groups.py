"""Named client groups: a scenario names sets of clients, a fault hits one of them alone.

The groups are resolved and validated on their own (every mistake at once, with its line),
laid out behind proxies of their own, picked by the fault schedule, and finally used in a
real run of the shipped ``waiting-room-offline`` scenario: the waiting room drops and comes
back, and no other client is ever cut off.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from synccli.errors import ConfigError
from synccli.harness.fault_runners import FaultTargets
from synccli.harness.layout import ProxyLayout, apportion
from synccli.harness.scenario import SCENARIO_DIR, find_scenario, parse_scenario
from synccli.harness.schedule import FaultRunner
from tests.conftest import SYNCCLI, seconds, simulate_scenario

HEAD = """\
duration_s = 20
clients = 10
writers = 2
groups = 6
"""
FAULT = """
[[faults]]
kind = "down"
at_s = 2
for_s = 3
clients = "{clients}"
"""


def scenario_text(groups: str, clients: str = "waiting_room") -> str:
    return HEAD + "\n[client_groups]\n" + groups + FAULT.format(clients=clients)


def error_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, "s.toml")
    return str(caught.value).splitlines()


def test_counted_groups_take_free_clients_of_their_kind_around_the_ranges() -> None:
    text = scenario_text(
        "front_desk = { writers = 2 }\n"
        "waiting_room = { readers = 3 }\n"
        "lobby = { clients = 2 }\n"
        "kiosk = { first = 3, last = 4 }\n"
    )
    scenario = parse_scenario(text, "s.toml")
    members = {group.name: group.members for group in scenario.client_groups}
    # The range is placed first; the waiting room's readers go around it.
    assert members == {
        "front_desk": (0, 1),
        "waiting_room": (2, 5, 6),
        "lobby": (7, 8),
        "kiosk": (3, 4),
    }
    assert [g.name for g in scenario.client_groups] == [
        "front_desk", "waiting_room", "lobby", "kiosk",
    ]  # fmt: skip
    assert scenario.faults[0].clients == "waiting_room"
    # Written back as the file gave it, and it loads back to the same scenario.
    assert scenario.to_dict()["client_groups"]["kiosk"] == {"first": 3, "last": 4}
    assert parse_scenario(scenario.to_toml(), "s.toml") == scenario


def test_every_mistake_of_the_groups_is_reported_at_once_with_its_line() -> None:
    text = scenario_text(
        "front_desk = { writers = 3 }\n"  # line 7: more writers than the scenario has
        "readers = { clients = 1 }\n"  # 8: a built-in name
        "kiosk = { first = 8, last = 12 }\n"  # 9: past the fleet of 10
        "a = { first = 2, last = 4 }\n"  # 10
        "b = { first = 4, last = 5 }\n"  # 11: c004 is in a too
        "c = { readers = 1, first = 6 }\n"  # 12: two sizes
        "d = {}\n"  # 13: empty
        "e = { clients = 0 }\n"  # 14: at least one
        "f = { first = 7, last = 6 }\n"  # 15: backwards
        '"x y" = { clients = 1 }\n',  # 16: not a name
        clients="lobby",  # line 22: unknown
    )
    problems = error_of(text)
    expected = [
        "s.toml:7: client_groups.front_desk.writers: asks for 3 writers, only 2 are left",
        "s.toml:8: client_groups.readers: 'readers' is a built-in set of clients",
        "s.toml:9: client_groups.kiosk.last: client 12 is past the fleet: the scenario has 10",
        "s.toml:11: client_groups.b.first: overlaps a: c004 would be in two groups",
        "s.toml:12: client_groups.c.first: a group has one size",
        "s.toml:13: client_groups.d: is empty",
        "s.toml:14: client_groups.e.clients: must be at least 1",
        "s.toml:15: client_groups.f.last: 6 is before first (7)",
        "s.toml:16: client_groups.x y: a group name is letters, digits, _ and - only",
        "s.toml:22: faults[1].clients: unknown clients 'lobby' (known: all, readers, "
        "writers, front_desk, kiosk, a, b, c, d, e, f, x y)",
    ]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_a_fault_on_an_invalid_group_is_not_also_unknown() -> None:
    problems = error_of(scenario_text("waiting_room = { readers = 9 }\n"))
    assert len(problems) == 1
    assert "asks for 9 readers, only 8 are left: the scenario has 8 readers" in problems[0]


def test_groups_of_one_kind_count_what_other_groups_hold() -> None:
    problems = error_of(
        scenario_text("waiting_room = { first = 2, last = 8 }\nhall = { readers = 2 }\n")
    )
    assert problems == [
        "s.toml:8: client_groups.hall.readers: asks for 2 readers, only 1 is left: the "
        "scenario has 8 readers, 7 of them in other groups"
    ]


def test_too_few_proxy_groups_for_the_named_groups_is_refused() -> None:
    text = scenario_text("front_desk = { writers = 2 }\nwaiting_room = { readers = 4 }\n")
    problems = error_of(text.replace("groups = 6", "groups = 2"))
    assert problems == [
        "s.toml:4: groups: 2 client groups and the clients in none need 3 proxy groups of "
        "their own: set groups to at least 3"
    ]
    readers = error_of(
        scenario_text("waiting_room = { clients = 5 }\n", clients="readers").replace(
            "groups = 6", "groups = 2"
        )
    )
    # The waiting room holds both writers: its writers, its readers and the rest apart.
    assert readers == [
        "s.toml:4: groups: 1 client group and the clients in none, writers apart from "
        "readers, need 3 proxy groups of their own: set groups to at least 3"
    ]


def test_fewer_clients_on_the_command_line_is_judged_against_the_groups() -> None:
    with pytest.raises(ConfigError) as caught:
        find_scenario("waiting-room-offline", clients=5)
    assert str(caught.value).endswith(
        "waiting-room-offline.toml:15: client_groups.waiting_room.readers: asks for 4 "
        "readers, only 3 are left: the scenario has 3 readers"
    )


def test_each_named_group_sits_behind_proxies_of_its_own() -> None:
    named = (("front_desk", (0, 1)), ("waiting_room", (2, 3, 4, 5)), ("exam", (6, 7, 8)))
    layout = ProxyLayout(clients=10, writers=2, groups=6, split=False, named=named)
    # Three groups and the one client in none (c009): four cells, six proxies.
    assert layout.cells == [(0, 1), (2, 3, 4, 5), (6, 7, 8), (9,)]
    assert layout.total == 6
    by_group: dict[int, set[int]] = {}
    for index in range(10):
        by_group.setdefault(layout.group_of(index), set()).add(index)
    for name, members in named:
        groups = layout.groups_of(name)
        assert groups and set(layout.clients_in(groups)) == {f"c{i:03d}" for i in members}
        assert all(by_group[g] <= set(members) for g in groups)
    assert layout.groups_of("all") == list(range(6))
    # Writers apart from readers as well: the waiting room's readers keep their own groups.
    split = ProxyLayout(clients=10, writers=3, groups=8, split=True, named=named)
    assert split.cells == [(0, 1), (2,), (3, 4, 5), (6, 7, 8), (9,)]
    writers = split.clients_in(split.groups_of("writers"))
    assert writers == ["c000", "c001", "c002"]
    assert set(split.clients_in(split.groups_of("waiting_room"))) == {
        "c002", "c003", "c004", "c005",
    }  # fmt: skip


def test_apportion_gives_each_cell_at_least_one_and_never_more_than_its_clients() -> None:
    assert apportion([3, 7], 4) == [1, 3]
    assert apportion([2, 2], 3) == [2, 1]
    assert apportion([1, 9], 10) == [1, 9]
    assert apportion([4, 1, 1], 2) == [1, 1, 1]  # too few asked: one each still
    assert sum(apportion([2, 4, 3], 4)) == 4


class _Recorder:
    def write(self, client: str | None, record: Any) -> None:
        pass


def test_a_share_of_a_named_group_never_reaches_another() -> None:
    scenario = find_scenario("waiting-room-offline")
    layout = ProxyLayout.of(scenario)
    runner = FaultRunner((), FaultTargets(groups=layout.total), _Recorder(), 5, layout)
    room = {"c002", "c003", "c004", "c005"}
    for index in range(20):
        half = layout.clients_in(runner._pick_groups(index, 0.5, "waiting_room"))
        assert set(half) < room and half
        assert set(layout.clients_in(runner._pick_groups(index, 1.0, "waiting_room"))) == room


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


@pytest.mark.slow
def test_a_fault_on_the_waiting_room_drops_exactly_its_clients(tmp_path: Path) -> None:
    # The shipped scenario, shortened: 6 s of load, the waiting room down from 1.5 s to 4 s.
    text = (SCENARIO_DIR / "waiting-room-offline.toml").read_text()
    for old, new in [("duration_s = 20", "duration_s = 6"), ("at_s = 6", "at_s = 1.5"),
                     ("for_s = 6", "for_s = 2.5")]:  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    scenario = tmp_path / "waiting-room.toml"
    scenario.write_text(text)
    out = tmp_path / "run"
    summary = simulate_scenario(scenario, out, 90)
    assert summary["verdict"] == "pass"
    records = _records(out)
    room = {"c002", "c003", "c004", "c005"}
    start = next(r for r in records if r["k"] == "fault" and r["phase"] == "start")
    end = next(r for r in records if r["k"] == "fault" and r["phase"] == "end")
    assert set(start["clients"]) == room
    # Cut off: every disconnect but the clean ones at the end of the run (1000).
    cut = [r for r in records if r["k"] == "disconnect" and r.get("code") != 1000]
    assert {r["c"] for r in cut} == room
    assert all(start["t"] <= r["t"] <= end["t"] for r in cut)
    failed = {r["c"] for r in records if r["k"] == "connect_failed"}
    assert failed <= room
    # Each of them came back after the heal and caught up by replay.
    for client in room:
        resumed = [
            r for r in records
            if r["c"] == client and r["k"] == "subscribed" and r["t"] >= end["t"]
        ]  # fmt: skip
        assert resumed and resumed[0]["recovered"] is True, client
    # The front desk kept writing through the window.
    writes = [r for r in records if r["k"] == "write_result" and r["ok"]]
    assert any(start["t"] <= r["t"] <= end["t"] for r in writes)
    assert summary["converged_clients"] == 9 and summary["replay_resumes"] >= 4
    gate = subprocess.run(
        [*SYNCCLI, "report", str(out), "--gate", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr
