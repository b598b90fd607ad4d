"""``synccli simulate`` runs a cluster: N nodes on one database, its own Redis, HAProxy in
front, the fault proxies between the clients and the balancer. The checker finds nothing
lost, duplicated or out of order when a node is killed, paused, or the bus fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from synccli.harness.scenario import SCENARIO_DIR
from tests.bus.helpers import require_redis
from tests.conftest import require, simulate_scenario

pytestmark = pytest.mark.slow

SHIPPED = SCENARIO_DIR

STORM = """
description = "a node SIGKILLed during a write storm"
seed = 7
duration_s = 12
clients = 9
writers = 3
rate = 45
groups = 3

[server]
nodes = 3

[[faults]]
kind = "node_kill"
at_s = 3
for_s = 4
node = 1

[[faults]]
kind = "down"
at_s = 8
for_s = 1
target = 0.34

[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
phantoms = "== 0"
delivery_rate = ">= 0.995"
"""


def _require_cluster_tools() -> None:
    require_redis()
    require(shutil.which("haproxy") is not None, "haproxy is not installed")


def _simulate(
    scenario: Path, out: Path, *options: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = simulate_scenario(scenario, out, timeout=120, options=options)
    lines = (out / "history.jsonl").read_text().splitlines()
    return summary, [json.loads(line) for line in lines if line]


def _no_anomaly(summary: dict[str, Any]) -> None:
    assert summary["verdict"] == "pass"
    assert summary["events_committed"] > 0
    for kind in ("lost", "duplicates", "out_of_order", "phantoms", "epoch_mixups"):
        assert summary[kind] == 0, kind
    assert summary["faults"] and not any(f["no_trace"] or f["error"] for f in summary["faults"])


def test_a_node_killed_in_a_write_storm_fails_its_clients_over(tmp_path: Path) -> None:
    _require_cluster_tools()
    scenario = tmp_path / "storm.toml"
    scenario.write_text(STORM)
    summary, records = _simulate(scenario, tmp_path / "run")
    _no_anomaly(summary)
    (cluster,) = [r for r in records if r["k"] == "cluster"]
    assert cluster["balancer"] == "haproxy" and len(cluster["nodes"]) == 3
    killed = [r for r in records if r["k"] == "server" and r.get("event") == "kill"]
    assert [r["node"] for r in killed] == [0]
    # The killed node's clients came back through the balancer while it was down, so on
    # the other two nodes: they accepted more connections than the 9 clients' first ones.
    per_node = next(r for r in records if r["k"] == "server_metrics")["nodes"]
    survivors = sum(m["synccli_connections_total"] for m in per_node[1:])
    assert survivors > 9 * 2 / 3
    assert summary["reconnects"] >= 3
    assert (tmp_path / "run" / "haproxy.cfg").read_text().count("check") >= 3


@pytest.mark.parametrize("name", ["nodes-3-failover", "bus-restart", "bus-partition"])
def test_shipped_cluster_scenarios_pass_with_zero_anomalies(tmp_path: Path, name: str) -> None:
    _require_cluster_tools()
    summary, _ = _simulate(SHIPPED / f"{name}.toml", tmp_path / "run")
    _no_anomaly(summary)


def test_ci_gate_on_a_cluster_passes_and_reports_which_node_each_client_was_on(
    tmp_path: Path,
) -> None:
    from synccli.faults.loss import check_available

    _require_cluster_tools()
    reason = check_available()
    require(reason is None, f"packet loss is not possible here: {reason}")
    out = tmp_path / "run"
    summary, records = _simulate(SHIPPED / "ci-gate-cluster.toml", out)
    _no_anomaly(summary)
    faults = {f["kind"]: f for f in summary["faults"]}
    assert {"down", "reset_peer", "packet_loss", "node_kill", "server_kill"} <= set(faults)
    # The balancer accepted inside the namespace: the kernel dropped the clients' packets.
    assert faults["packet_loss"]["evidence"]["packets_dropped"] > 0
    assert "bind fd@" in (out / "haproxy.cfg").read_text()
    # Every client's connections named their node; the summary counts them per node.
    connects = [r for r in records if r["k"] == "connect"]
    assert connects and all(r.get("node") in {"node1", "node2", "node3"} for r in connects)
    nodes = summary["nodes"]
    assert set(nodes["per_node"]) == {"node1", "node2", "node3"}
    assert sum(n["connects"] for n in nodes["per_node"].values()) == len(connects)
    # The killed nodes' clients moved to the others.
    assert nodes["moves"] >= 1
    assert sum(n["moved_in"] for n in nodes["per_node"].values()) == nodes["moves"]
    page = (out / "report.html").read_text()
    assert "node per client" in page
    for node in ("node1", "node2", "node3"):
        assert f'class="node-lane" data-node="{node}"' in page


def test_a_cluster_runs_with_tls_and_per_user_tokens(tmp_path: Path) -> None:
    """``--tls`` (which brings per-user tokens): one certificate and one token secret on
    every node, TLS passed through HAProxy; the kill fails over as without it."""
    _require_cluster_tools()
    scenario = tmp_path / "storm.toml"
    scenario.write_text(STORM)
    out = tmp_path / "run"
    summary, records = _simulate(scenario, out, "--tls")
    _no_anomaly(summary)
    assert all(r["url"].startswith("wss://") for r in records if r["k"] == "client")
    assert "mode tcp" in (out / "haproxy.cfg").read_text()
    for index in range(3):
        log = (out / f"server-{index}.log").read_text()
        assert "listening on wss://" in log
    # The node's name crossed the balancer inside TLS; every node served some client.
    assert set(summary["nodes"]["per_node"]) == {"node1", "node2", "node3"}
    assert not [r for r in records if r["k"] == "connect_failed" and "401" in r["error"]]
