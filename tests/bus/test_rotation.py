"""Without a balancer, clients get the node list and move to the next node on reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synccli.client.local import FleetConfig, client_config
from synccli.client.simulated import SimulatedClient
from synccli.harness import cluster
from synccli.harness.run import RunConfig, Simulation
from synccli.harness.scenario import parse_scenario
from synccli.harness.server_process import free_port
from tests.bus.helpers import require_redis
from tests.client import builders
from tests.client.builders import RecordingSink
from tests.conftest import seconds
from tests.server.helpers import DATE, aio, running_server


def test_each_client_starts_from_its_own_node_and_cycles_through_all() -> None:
    urls = [f"ws://127.0.0.1:{port}/ws" for port in (1001, 1002, 1003)]
    fleet = FleetConfig(
        urls=urls, clients=4, writers=0, dates=[DATE], rate=0, duration_s=1, seed=1, rotate=True
    )
    rotations = [client_config(fleet, index).urls for index in range(4)]
    assert rotations[1] == (urls[1], urls[2], urls[0])
    assert rotations[3] == tuple(urls)
    assert client_config(fleet, 1).url == urls[1]
    fixed = FleetConfig(urls=urls, clients=2, writers=0, dates=[DATE], rate=0, duration_s=1, seed=1)
    assert client_config(fixed, 1).urls == ()


@aio
async def test_a_client_whose_node_is_gone_connects_to_the_next(tmp_path: Path) -> None:
    gone = f"ws://127.0.0.1:{free_port()}/ws"
    async with running_server(tmp_path) as server:
        sink = RecordingSink()
        config = builders.client_config("c001", gone, seed=1, urls=(gone, server.url))
        client = SimulatedClient(config, sink)
        client.start()
        try:
            async with asyncio.timeout(seconds(10)):
                while not sink.of("connect"):
                    await asyncio.sleep(0.02)
        finally:
            await client.close()
    assert sink.of("connect_failed")[0]["attempt"] == 1
    assert sink.of("connect")[0]["attempt"] == 2


SCENARIO = """
duration_s = 8
clients = 4
writers = 2
rate = 20
groups = 2
seed = 3

[server]
nodes = 2

[[faults]]
kind = "node_kill"
at_s = 2
for_s = 3
node = 1

[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
"""


@pytest.mark.slow
def test_a_cluster_without_haproxy_fails_over_by_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_redis()
    monkeypatch.setattr(cluster.HaproxyProcess, "available", staticmethod(lambda: False))
    scenario = parse_scenario(SCENARIO, str(tmp_path / "rotation.toml"))
    run = Simulation(RunConfig(scenario=scenario, out_dir=tmp_path / "run", progress=False))
    outcome = asyncio.run(run.run(asyncio.Event()))
    summary = outcome.summary
    assert outcome.exit_code == 0, summary.reasons
    assert any("clients rotate through the nodes" in note for note in outcome.notes)
    assert summary.lost == summary.duplicates == summary.out_of_order == 0
    assert summary.events_committed > 0
    assert summary.reconnects >= 1
