"""The cluster's fault kinds: validation through the registry, the node choice, and a clean
failure where the run has no cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synccli.errors import ConfigError, FaultError
from synccli.harness.cluster import Cluster, RedisProcess
from synccli.harness.fault_runners import RUNNERS, FaultCall, FaultTargets, pick_node
from synccli.harness.scenario import FaultSpec, parse_scenario
from synccli.harness.server_process import ServerProcess
from synccli.history import Record

KINDS = ("node_kill", "node_pause", "bus_kill", "bus_partition")


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, client_id: str | None, record: Record) -> None:
        self.records.append(record)


def cluster_of(count: int, tmp_path: Path) -> Cluster:
    nodes = [
        ServerProcess("sqlite:///x.db", "127.0.0.1", 1 + i, tmp_path / f"{i}.log")
        for i in range(count)
    ]
    return Cluster(nodes, RedisProcess(tmp_path / "r.log"), None)


def call(kind: str, targets: FaultTargets, **attrs: Any) -> FaultCall:
    spec = FaultSpec(1.0, 2.0, kind, attrs=attrs, name=f"{kind}-1")
    return FaultCall(spec, [0], targets, Sink(), seed=5)


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_cluster_each_kind_fails_cleanly(kind: str) -> None:
    async def apply() -> None:
        await RUNNERS[kind](call(kind, FaultTargets()))

    with pytest.raises(FaultError, match="needs a cluster: run with --nodes 2"):
        asyncio.run(apply())


def test_the_node_is_counted_from_one_or_seeded(tmp_path: Path) -> None:
    cluster = cluster_of(3, tmp_path)
    targets = FaultTargets(cluster=cluster)
    assert pick_node(call("node_kill", targets, node=3), cluster) == 2
    seeded = pick_node(call("node_kill", targets, node=0), cluster)
    assert seeded == pick_node(call("node_kill", targets, node=0), cluster)
    assert 0 <= seeded < 3
    with pytest.raises(FaultError, match="node 4 does not exist"):
        pick_node(call("node_kill", targets, node=4), cluster)


def test_a_partition_mode_and_overlapping_kills_are_refused() -> None:
    base = "duration_s = 30\nclients = 2\n[server]\nnodes = 2\n"
    bad_mode = '[[faults]]\nkind = "bus_partition"\nat_s = 1\nfor_s = 2\nmode = "loud"\n'
    with pytest.raises(ConfigError, match="mode"):
        parse_scenario(base + bad_mode, "bad.toml")
    kill = '[[faults]]\nkind = "node_kill"\nat_s = {}\nfor_s = 5\n'
    with pytest.raises(ConfigError, match="overlap"):
        parse_scenario(base + kill.format(1) + kill.format(3), "overlap.toml")
    share = '[[faults]]\nkind = "bus_kill"\nat_s = 1\nfor_s = 2\ntarget = 0.5\n'
    with pytest.raises(ConfigError, match="target must be 1"):
        parse_scenario(base + share, "share.toml")
