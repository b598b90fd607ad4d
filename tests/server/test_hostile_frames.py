"""Hostile frames against a real server: refused as malformed, nothing written, and the log
holds the client's values escaped on one line, never a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from synccli.store import open_store
from tests.server.helpers import DATE, aio, appt, client, db_url, running_server

WRITE = {"type": "update_appointment_state", "appointmentId": appt(1), "state": "Present"}
HOSTILE: list[tuple[str, str]] = [
    ("[" * 30_000 + "]" * 30_000, "bad_json"),  # 60 KB, under the frame limit
    (json.dumps({**WRITE, "requestId": "\ud800"}), "bad_message"),
    (json.dumps({**WRITE, "requestId": "r\n2026-11-26 INFO forged line"}), "bad_message"),
    (json.dumps({**WRITE, "requestId": "r-1", "appointmentId": "a\rb"}), "bad_message"),
]


@aio
async def test_hostile_frames_are_malformed_and_logged_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="synccli")
    async with running_server(tmp_path) as server, client(server) as a:
        assert server.services is not None
        for frame, code in HOSTILE:
            await a.send(frame)
            reply = await a.expect("result" if "r-1" in frame else "error")
            got = reply["error"]["code"] if reply["type"] == "result" else reply["code"]
            assert got == code, (frame[:80], reply)
        assert server.services.metrics.counts["malformed_total"] == len(HOSTILE)
        assert server.services.metrics.counts["internal_errors_total"] == 0
        await a.send({"type": "get_snapshot", "date": DATE})
        snapshot = await a.expect("snapshot")
        assert all(row["version"] == 1 for row in snapshot["appointments"])
    store = open_store(db_url(tmp_path))
    try:
        assert store.channel(DATE).head_seq == 0
    finally:
        store.close()
    server_records = [r for r in caplog.records if r.name.startswith("synccli.")]
    assert sum("malformed" in r.getMessage() for r in server_records) >= 3
    for record in server_records:
        text = record.getMessage()
        assert record.exc_info is None, text
        assert "\n" not in text and "\r" not in text and "forged" not in text, text
        text.encode("utf-8")  # no lone surrogate reached the log
