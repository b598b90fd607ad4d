"""``synccli simulate --browsers N``: Chromium pages are clients of a real run, checked
like the simulated ones; the pages of writers click the board's buttons."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.harness.browsers import MAX_CLICK_RATE
from synccli.history import Apply, ClientCreated, Disconnect, Write, WriteResult, load_history
from tests.conftest import seconds

pytestmark = pytest.mark.slow

SCENARIO = """\
description = "Two browsers and two simulated clients; one proxy group goes down"
seed = 5
duration_s = 6
clients = 2
writers = 2
rate = 8
dates = 2
groups = 2
appointments = 8
drain_timeout_s = 20

[[faults]]
name = "offline"
kind = "down"
at_s = 1.5
for_s = 2
target = "50%"

[thresholds]
lost = "== 0"
duplicates = "== 0"
out_of_order = "== 0"
phantoms = "== 0"
"""


def test_browsers_are_clients_of_a_run(tmp_path: Path, browser: object) -> None:
    scenario = tmp_path / "browsers.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    args = ["simulate", "--scenario", str(scenario), "--browsers", "2", "--clients", "4"]
    args += ["--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "synccli", *args, "--quiet"],
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["browser_clients"] == 2
    # Pages 0 and 1 play simulated clients 0 and 1, both writers: both click.
    assert summary["browser_writers"] == 2
    assert summary["clients"] == 6
    assert summary["lost"] == summary["duplicates"] == summary["out_of_order"] == 0
    assert summary["anomalies_total"] == 0
    assert summary["converged_clients"] == 6
    # Through the reader: the writer stores an apply shared by many clients once.
    history = load_history(out / "history.jsonl").entries
    applied = {(e.client, e.record.date) for e in history if isinstance(e.record, Apply)}
    dates = summary["dates"]
    assert len(dates) == 2
    # Each page shows the first date and follows the second.
    assert {(c, d) for c in ("b000", "b001") for d in dates} <= applied
    # The browser in the group that went down lost its socket and came back.
    assert any(
        isinstance(e.record, Disconnect) and (e.client or "").startswith("b") for e in history
    )
    for client in ("b000", "b001"):
        assert (out / f"board-{client}.png").stat().st_size > 1000
    # Every page clicked; the writes it was told were saved are in the database's log,
    # under its request id and with the page as the actor.
    created = {e.client: e.record for e in history if isinstance(e.record, ClientCreated)}
    for client in ("b000", "b001"):
        assert created[client].writer and created[client].seed is not None
        assert 0 < created[client].rate <= MAX_CLICK_RATE
    sent = {e.record.request_id: e.client for e in history if isinstance(e.record, Write)}
    confirmed = {
        e.record.request_id
        for e in history
        if isinstance(e.record, WriteResult)
        and e.record.ok
        and (sent.get(e.record.request_id) or "").startswith("b")
    }
    assert {sent[rid] for rid in confirmed} == {"b000", "b001"}
    with sqlite3.connect(out / "synccli.db") as db:
        logged = dict(db.execute("SELECT request_id, actor FROM events"))
    assert confirmed <= set(logged)
    # Every write, a page's or a simulated client's, is logged under its client's id.
    assert set(logged.values()) == {"b000", "b001", "c000", "c001"}
    assert all(actor == rid.rsplit("-", 1)[0] for rid, actor in logged.items())


def test_without_chromium_it_says_so_and_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "synccli.cli.simulate.browsers_unavailable", lambda: "browser clients need Chromium"
    )
    result = CliRunner().invoke(cli, ["simulate", "--browsers", "1", "--no-faults"])
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == ["Error: browser clients need Chromium"]
