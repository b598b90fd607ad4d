"""A fault that spares the writers: readers and writers behind separate proxies.

The layout is checked on its own (who sits behind which group, what a share of readers or
writers picks), then in a real run of the shipped ``front-desk-online`` scenario: every
reader's proxy goes down, the writers keep writing through the window, and the gate passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synccli.harness.fault_runners import FaultTargets
from synccli.harness.scenario import SCENARIO_DIR, FaultSpec, load_scenario
from synccli.harness.schedule import FaultRunner, ProxyLayout
from tests.conftest import seconds


def test_writers_get_their_own_groups_and_every_group_has_clients() -> None:
    layout = ProxyLayout(clients=10, writers=3, groups=4)
    assert layout.writer_groups == 1 and layout.total == 4
    assert {layout.group_of(i) for i in range(3)} == {0}
    assert {layout.group_of(i) for i in range(3, 10)} == {1, 2, 3}
    assert layout.groups_of("writers") == [0] and layout.groups_of("readers") == [1, 2, 3]
    assert layout.clients_in([0]) == ["c000", "c001", "c002"]
    urls = layout.client_urls(["w", "r1", "r2", "r3"])
    assert urls[:3] == ["w"] * 3 and "w" not in urls[3:]
    # More groups than readers: no proxy is left without a client.
    small = ProxyLayout(clients=3, writers=1, groups=3)
    assert small.total == 3 and small.clients_in([1, 2]) == ["c001", "c002"]


def test_without_a_client_pick_the_layout_is_unchanged() -> None:
    layout = ProxyLayout(clients=9, writers=2, groups=3, split=False)
    assert [layout.group_of(i) for i in range(9)] == [i % 3 for i in range(9)]
    assert layout.groups_of("readers") == [0, 1, 2]
    scenario = load_scenario(SCENARIO_DIR / "client-offline-10s.toml")
    assert not ProxyLayout.of(scenario).split
    assert ProxyLayout.of(load_scenario(SCENARIO_DIR / "front-desk-online.toml")).split


class _Recorder:
    def write(self, client: str | None, record: Any) -> None:
        pass


def test_a_share_is_taken_within_the_chosen_clients() -> None:
    layout = ProxyLayout(clients=20, writers=4, groups=10)
    runner = FaultRunner((), FaultTargets(groups=layout.total), _Recorder(), 5, layout)
    readers = layout.groups_of("readers")
    for index in range(20):
        picked = runner._pick_groups(index, 0.5, "readers")
        assert set(picked) <= set(readers) and len(picked) == len(readers) // 2
        writers = layout.clients_in(runner._pick_groups(index, 1.0, "writers"))
        assert writers == ["c000", "c001", "c002", "c003"]


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


@pytest.mark.slow
def test_a_reader_outage_spares_the_front_desk(tmp_path: Path) -> None:
    # The shipped scenario, shortened: 6 s of load, the screens offline from 1.5 s to 4 s.
    text = (SCENARIO_DIR / "front-desk-online.toml").read_text()
    for old, new in [("duration_s = 20", "duration_s = 6"), ("at_s = 6", "at_s = 1.5"),
                     ("for_s = 6", "for_s = 2.5")]:  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    scenario = tmp_path / "front-desk.toml"
    scenario.write_text(text)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "synccli", "simulate", "--scenario", str(scenario)]
    result = subprocess.run(
        [*command, "--clients", "6", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=seconds(90),
    )
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 0, (summary["reasons"], result.stdout[-2000:], result.stderr)
    assert summary["verdict"] == "pass"
    records = _records(out)
    start = next(r for r in records if r["k"] == "fault" and r["phase"] == "start")
    end = next(r for r in records if r["k"] == "fault" and r["phase"] == "end")
    readers, writers = {"c002", "c003", "c004", "c005"}, {"c000", "c001"}
    assert set(start["clients"]) == readers and start["groups"] == [1, 2]
    in_window = [r for r in records if start["t"] <= r["t"] <= end["t"]]
    writes_ok = [r for r in in_window if r["k"] == "write_result" and r["ok"]]
    assert writes_ok and {r["c"] for r in writes_ok} <= writers
    reconnected = {r["c"] for r in records if r["k"] == "connect" and r.get("attempt", 1) > 1}
    disconnected = {r["c"] for r in in_window if r["k"] == "disconnect"}
    assert disconnected == readers and reconnected == readers
    window = summary["faults"][0]
    assert window["traces"]["reconnect"] >= 4 and not window["no_trace"]
    gate = subprocess.run(
        [sys.executable, "-m", "synccli", "report", str(out), "--gate", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr


def test_a_fault_on_readers_only_keeps_its_clients_in_the_spec() -> None:
    scenario = load_scenario(SCENARIO_DIR / "front-desk-online.toml")
    assert scenario.faults[0] == FaultSpec(
        6.0, 6.0, "down", 1.0, "both", {}, "screens-offline", "readers"
    )
    assert scenario.to_dict()["faults"][0]["clients"] == "readers"
