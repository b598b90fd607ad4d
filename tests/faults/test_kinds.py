"""The fault-kind registry: one module per kind, read by every consumer (scenario validation,
the schedule's runners, the Toxiproxy wrapper, the embedded proxy, the docs table)."""

from __future__ import annotations

import asyncio
import pkgutil
import random
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

import synccli.faults.kinds as kinds_package
from synccli.errors import ConfigError, DatabaseUnavailable, TransientDatabaseError
from synccli.faults.kinds import Attr, FaultKind, fault_kind, fault_kinds, markdown_table
from synccli.faults.kinds import base as kinds_base
from synccli.faults.kinds.db_fault import DbFault
from synccli.faults.proxy.toxics import toxic_class, toxic_types
from synccli.faults.toxiproxy import validate_toxic
from synccli.harness import fault_runners
from synccli.harness.fault_runners import RUNNERS, FaultCall, FaultTargets
from synccli.harness.scenario import parse_scenario
from synccli.harness.schedule import FaultRunner
from synccli.history import Record

DOCS = Path(__file__).parents[2] / "docs" / "scenarios.md"
ALL_KINDS = {
    "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data",
    "down", "packet_loss", "server_kill", "db_fault", "epoch_reset",
}  # fmt: skip
TOXICS = {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}


def test_every_module_registers_the_kind_it_is_named_after() -> None:
    names = [m.name for m in pkgutil.iter_modules(kinds_package.__path__)]
    modules = [name for name in names if name != "base" and not name.startswith("_")]
    assert set(modules) == ALL_KINDS
    for name in modules:
        assert import_module(f"synccli.faults.kinds.{name}").KIND is fault_kind(name)
    assert set(fault_kinds()) == ALL_KINDS
    assert {name for name, kind in fault_kinds().items() if kind.toxic} == TOXICS


def test_every_kind_has_one_runner() -> None:
    assert set(RUNNERS) == ALL_KINDS
    toxic_runners = {RUNNERS[name] for name in TOXICS}
    assert toxic_runners == {fault_runners.run_toxic}


def test_the_docs_table_is_the_registry_s() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("| kind | attributes (default) | what happens |")
    shown = text[start : text.index("<!-- end of fault kinds -->", start)]
    assert shown == markdown_table(fault_kinds().values()), (
        "docs/scenarios.md's fault table is stale: paste `python -m synccli.faults.kinds`"
    )
    for name, kind in fault_kinds().items():
        row = next(line for line in shown.splitlines() if line.startswith(f"| `{name}` |"))
        assert all(f"`{attr}`" in row for attr in kind.attr_names), name


def test_the_embedded_proxy_has_each_toxic_with_the_same_attributes() -> None:
    assert set(toxic_types()) == TOXICS | {"noop"}
    for name in TOXICS:
        cls = toxic_class(name)
        assert cls is not None, name
        assert list(cls.GO_TYPES) == fault_kinds()[name].attr_names, name


def test_the_wrapper_validates_with_the_registry() -> None:
    for name in TOXICS:
        kind = fault_kinds()[name]
        given = {attr.name: 1 for attr in kind.attrs if attr.required}
        filled = validate_toxic(name, "upstream", given, 1.0)
        assert list(filled) == kind.attr_names
        assert all(filled[a.name] == a.default for a in kind.attrs if not a.required)
    assert validate_toxic("noop", "downstream", {}, 0.5) == {}
    with pytest.raises(ConfigError, match="unknown toxic type 'down'"):
        validate_toxic("down", "downstream", {}, 1.0)  # a kind, but no toxic
    with pytest.raises(ConfigError, match="noop toxic has no attribute 'x'"):
        validate_toxic("noop", "downstream", {"x": 1}, 1.0)


def test_the_registry_imports_nothing_above_errors_and_domain() -> None:
    code = (
        "import sys, synccli.faults.kinds\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('synccli')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    allowed = ("synccli.faults.kinds", "synccli.domain", "synccli.errors")
    above = {m for m in loaded if not m.startswith(allowed)} - {"synccli", "synccli.faults"}
    assert not above, above


def test_attribute_checks_and_rules() -> None:
    slicer = fault_kinds()["slicer"]
    values, problems = slicer.resolve({"average_size": 8})
    assert values == {"average_size": 8, "size_variation": 0, "delay": 0} and problems == []
    _, problems = slicer.resolve({"size_variation": "2", "delay": -1})
    assert problems == [
        ("average_size", "is missing"),
        ("size_variation", "must be an integer, not '2'"),
        ("delay", "must be at least 0, not -1"),
    ]  # and no rule runs on invalid values
    _, problems = slicer.resolve({"average_size": 3, "size_variation": 3})
    assert problems == [("size_variation", "must be smaller than average_size")]
    percent = Attr("percent", float, maximum=100)
    assert percent.check(5) == (5.0, None)
    assert percent.check(True)[1] == "must be a number, not True"
    assert percent.check(float("nan"))[1] == "must be a number, not nan"
    assert percent.check(101)[1] == "must be at most 100, not 101"
    assert Attr("mode", str, choices=("a", "b")).check("c")[1] == "must be one of a, b, not 'c'"


def test_a_new_kind_is_one_module_and_its_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a module and its runner add is enough for validation and the schedule."""
    pause = FaultKind("node_pause", "SIGSTOP one node", "server", (Attr("node", int, 0),))
    monkeypatch.setitem(kinds_base._KINDS, "node_pause", pause)
    applied: list[tuple[str, Any]] = []

    async def run_pause(call: FaultCall) -> Any:
        applied.append(("stop", call.spec.attrs["node"]))

        async def heal() -> None:
            applied.append(("cont", call.spec.attrs["node"]))

        return heal

    monkeypatch.setitem(RUNNERS, "node_pause", run_pause)
    text = 'duration_s = 5\n[[faults]]\nkind = "node_pause"\nat_s = 0\nfor_s = 0.01\nnode = 2\n'
    scenario = parse_scenario(text, "s.toml")
    with pytest.raises(ConfigError, match=r"target: a node_pause fault hits the server"):
        parse_scenario(text + "target = 0.5\n", "s.toml")
    runner = FaultRunner(scenario.faults, FaultTargets(), _Recorder(), seed=1)
    asyncio.run(runner.run(time.monotonic()))
    assert applied == [("stop", 2), ("cont", 2)] and runner.failed == 0


class _Recorder:
    def write(self, client_id: str | None, record: Record) -> None:
        pass


def test_db_fault_acts_only_at_its_stage() -> None:
    verify = DbFault("verify", 1.0, seed=1, delay_ms=0)
    verify("commit")
    with pytest.raises(DatabaseUnavailable, match="injected"):
        verify("verify")
    deadlock = DbFault("deadlock", 1.0, seed=1, delay_ms=0)
    deadlock("verify")
    with pytest.raises(TransientDatabaseError, match="deadlock victim"):
        deadlock("commit")
    assert deadlock.describe() == {"mode": "deadlock", "rate": 1.0, "seed": 1, "delay_ms": 0}


def test_db_fault_picks_its_victims_from_the_seed() -> None:
    def victims(seed: int) -> list[bool]:
        fault = DbFault("deadlock", 0.5, seed=seed, delay_ms=0)
        hits = []
        for _ in range(40):
            try:
                fault("commit")
            except TransientDatabaseError:
                hits.append(True)
            else:
                hits.append(False)
        return hits

    assert victims(3) == victims(3) != victims(4)
    dice = random.Random(3)
    assert victims(3) == [dice.random() < 0.5 for _ in range(40)]
