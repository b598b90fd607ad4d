"""The checker on real histories: a real server on 127.0.0.1 over SQLite, a real client
fleet, the truth read back from the database. A healthy run passes; a server that drops
events (its ``skip-events`` self-test bug) fails with lost events."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from synccli.client.fleet import FleetConfig, run_fleet
from synccli.history import HistoryWriter, RunEnd, RunStart
from synccli.report import check_run, truth_from_store, write_outputs
from synccli.report.summary import Summary
from synccli.server.app import SyncServer
from synccli.server.config import ServerConfig
from synccli.store import open_store
from tests.conftest import seconds

DATE = "2026-11-26"


async def _run(folder: Path, server_bugs: tuple[str, ...]) -> Summary:
    folder.mkdir()
    url = f"sqlite:///{folder / 'sync.db'}"
    store = open_store(url)
    store.init_schema()
    store.seed(DATE, 10)
    server = SyncServer(ServerConfig(db_url=url, port=0, inject_bugs=server_bugs))
    await server.start()
    history = HistoryWriter(folder / "history.jsonl", time.monotonic())
    config = {"dates": [DATE]}
    history.write(None, RunStart(seed=3, run_id=folder.name, config=config, db=url))

    async def heads() -> dict[str, tuple[str, int]]:
        return {d: (c.epoch, c.head_seq) for d, c in store.heads().items()}

    fleet = FleetConfig(
        urls=[f"ws://127.0.0.1:{server.port}/ws"],
        clients=3,
        writers=2,
        dates=[DATE],
        rate=20,
        duration_s=seconds(1.5),
        seed=3,
        drain_timeout_s=seconds(2),
    )
    drained = False
    try:
        async with asyncio.timeout(seconds(30)):
            result = await run_fleet(fleet, history, asyncio.Event(), target_heads=heads)
        drained = result.drained
    finally:
        history.write(None, RunEnd(interrupted=False, drained=drained))
        history.close()
        await server.close()
    try:
        summary = check_run(folder, truth_from_store(store, [DATE]))
    finally:
        store.close()
    write_outputs(folder, summary)
    return summary


@pytest.mark.slow
def test_a_healthy_run_passes(tmp_path: Path) -> None:
    summary = asyncio.run(_run(tmp_path / "clean", ()))
    assert summary.verdict == "pass", summary.reasons
    assert summary.events_committed > 0
    # Each client expects every event after the position it first subscribed at (clients
    # connect on a ramp, so a late one may start after the first writes).
    records = [json.loads(line) for line in (tmp_path / "clean" / "history.jsonl").open()]
    starts: dict[str, int] = {}
    for r in records:
        if r["k"] == "subscribed":
            starts.setdefault(r["c"], r["seq"])
    assert len(starts) == 3
    expected = sum(summary.events_committed - start for start in starts.values())
    assert summary.delivered_pairs == summary.expected_pairs == expected
    assert (tmp_path / "clean" / "truth.json").exists()


@pytest.mark.slow
def test_a_server_that_drops_events_fails(tmp_path: Path) -> None:
    summary = asyncio.run(_run(tmp_path / "skip", ("skip-events",)))
    assert summary.verdict == "fail"
    assert summary.lost > 0
    assert any(a["kind"] == "lost" for a in summary.anomalies)
