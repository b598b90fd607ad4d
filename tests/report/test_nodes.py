"""Which node each client was on: the summary's per-node counts and the timeline's node
lanes (a lane per client coloured by node, or counts per node with many clients)."""

from __future__ import annotations

from synccli.report import render_html
from synccli.report.summary import Summary
from tests.report.builders import BASE_W, Run


def _failover(clients: int) -> Summary:
    """Clients spread over node1..node3; at 2 s node2 dies and its clients move on."""
    run = Run()
    run.commit(40)
    run.fault("start", BASE_W + 2.0, name="kill", kind="node_kill")
    run.fault("end", BASE_W + 3.0, name="kill", kind="node_kill")
    for i in range(clients):
        client = f"c{i:04d}"
        first = f"node{i % 3 + 1}"
        run.rec(client, "connect", BASE_W, attempt=1, node=first)
        run.subscribed(client, 0, w=BASE_W + 0.01)
        if first == "node2":
            run.apply(client, *range(1, 20))
            run.rec(client, "disconnect", BASE_W + 2.0, code=1006, reason="")
            moved = "node1" if i % 2 else "node3"
            run.rec(client, "connect", BASE_W + 2.2, attempt=2, node=moved)
            run.subscribed(client, 19, w=BASE_W + 2.21, recovered=True, events=2)
            for seq in range(20, 23):
                run.apply(client, seq, delay=BASE_W + 2.22 - run.commit_w[seq], replay=True)
            run.apply(client, *range(23, 41))
        else:
            run.apply(client, *range(1, 41))
        run.final(client)
    return run.summary()


def test_summary_counts_clients_connections_and_moves_per_node() -> None:
    summary = _failover(6)  # node2 has c0001 (moves to node1) and c0004 (to node3)
    assert summary.verdict == "pass"
    assert summary.nodes == {
        "moves": 2,
        "per_node": {
            "node1": {"clients": 3, "connects": 3, "moved_in": 1},
            "node2": {"clients": 2, "connects": 2, "moved_in": 0},
            "node3": {"clients": 3, "connects": 3, "moved_in": 1},
        },
    }
    assert summary.to_dict()["nodes"] == summary.nodes


def test_a_run_without_node_names_has_no_node_view() -> None:
    run = Run()
    run.commit(5)
    run.clean_client("c1")
    summary = run.summary()
    assert summary.nodes is None and summary.to_dict()["nodes"] is None
    page = render_html(summary)
    assert "node per client" not in page and 'class="node-lane"' not in page


def test_timeline_draws_a_lane_per_client_coloured_by_node() -> None:
    page = render_html(_failover(6))
    svg = page[page.index('<svg id="timeline"') : page.index("</svg>")]
    assert "node per client" in svg
    assert "<title>c0001 on node2 0.0-2.0 s</title>" in svg
    assert "<title>c0001 on node1 2.2-" in svg
    assert svg.count('class="node-lane"') == 8  # six first connections, two moves
    colours = {
        node: svg.split(f'data-node="{node}"', 1)[1].split('fill="', 1)[1][:7]
        for node in ("node1", "node2", "node3")
    }
    assert len(set(colours.values())) == 3
    for node in ("node1", "node2", "node3"):
        assert f">{node}</text>" in svg  # in the legend


def test_many_clients_draw_counts_per_node_per_bin() -> None:
    page = render_html(_failover(300))
    svg = page[page.index('<svg id="timeline"') : page.index("</svg>")]
    assert 'class="node-lane"' not in svg and "clients by node (300)" in svg
    # At 1 s a third of the 300 are on each node; at 3 s node2 has none, the others half.
    assert "<title>1 s: 100 on node2</title>" in svg
    assert "<title>3 s: 150 on node1</title>" in svg and "<title>3 s: 150 on node3</title>" in svg
    assert "<title>3 s: 0 on node2</title>" not in svg and "3 s: 100 on node2" not in svg
