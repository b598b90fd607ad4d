"""Bad input: the right error code, the connection stays usable, nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.server.helpers import DATE, aio, appt, client, running_server

LONG = "x" * 200
W: dict[str, Any] = {
    "type": "update_appointment_state",
    "appointmentId": appt(1),
    "state": "Present",
}

# (frame, expected error code) — answered with a bare ``error``.
ERRORS: list[tuple[str, str]] = [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_message"),
    ("42", "bad_message"),
    ('{"date": "2026-11-26"}', "bad_message"),
    ('{"type": 7}', "bad_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "subscribe"}', "bad_message"),
    ('{"type": "subscribe", "date": "2026-13-45"}', "bad_message"),
    ('{"type": "subscribe", "date": "26/11/2026"}', "bad_message"),
    ('{"type": "subscribe", "date": "2026-11-26", "since": 5}', "bad_message"),
    ('{"type": "subscribe", "date": "2026-11-26", "since": {"epoch": "e"}}', "bad_message"),
    ('{"type": "ack"}', "bad_message"),
    ('{"type": "ack", "date": "2026-11-26", "sequenceNum": -1}', "bad_message"),
    ('{"type": "ack", "messageId": 5}', "bad_message"),
    ('{"type": "request_missed_events", "date": "2026-11-26"}', "bad_message"),
    (
        '{"type": "request_missed_events", "date": "2026-11-26", "lastSequenceNum": "3"}',
        "bad_message",
    ),
    (
        '{"type": "request_missed_events", "date": "2026-11-26", "lastSequenceNum": true}',
        "bad_message",
    ),
    ('{"type": "get_snapshot", "date": null}', "bad_message"),
    ('{"type": "unsubscribe", "date": 20261126}', "bad_message"),
    (json.dumps({**W}), "bad_message"),  # a write without requestId
    (json.dumps({**W, "requestId": 12}), "bad_message"),
    (json.dumps({**W, "requestId": LONG}), "bad_message"),
]

# Writes with a string requestId: always a ``result`` with ok false.
BAD_WRITES: list[tuple[dict[str, Any], str]] = [
    ({**W, "appointmentId": 5}, "bad_message"),
    ({**W, "appointmentId": LONG}, "bad_message"),
    ({**W, "state": None}, "bad_message"),
    ({**W, "state": ""}, "bad_message"),
    ({**W, "expectedVersion": "1"}, "bad_message"),
    ({**W, "expectedVersion": 2**60}, "bad_message"),
    ({**W, "state": "Flying"}, "invalid_state"),
    ({**W, "state": "Seated"}, "invalid_transition"),
    ({**W, "appointmentId": "nope"}, "not_found"),
]


@aio
async def test_each_bad_message_gets_its_code_and_nothing_is_written(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        for frame, code in ERRORS:
            await a.send(frame)
            error = await a.expect("error")
            assert error["code"] == code, (frame, error)
            assert error["message"]
            await a.send({"type": "get_snapshot", "date": DATE})  # resets the malformed run
            await a.expect("snapshot")
        for index, (write, code) in enumerate(BAD_WRITES):
            await a.send({**write, "requestId": f"bad-{index}"})
            result = await a.expect("result")
            assert result["requestId"] == f"bad-{index}"
            assert (result["ok"], result["error"]["code"]) == (False, code), write
        await a.send({"type": "get_snapshot", "date": DATE})
        snapshot = await a.expect("snapshot")
        assert snapshot["sequenceNum"] == 0
        assert {row["state"] for row in snapshot["appointments"]} == {"Scheduled"}


@aio
async def test_ten_malformed_in_a_row_are_tolerated_the_eleventh_closes_1008(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        for _ in range(10):
            await a.send("{oops")
            assert (await a.expect("error"))["code"] == "bad_json"
        await a.send({"type": "get_snapshot", "date": DATE})
        await a.expect("snapshot")  # still open and usable after 10
        for _ in range(11):
            await a.send("{oops")
        with pytest.raises(ConnectionClosed):
            for _ in range(20):
                await a.recv()
        assert a.ws.close_code == 1008


@aio
async def test_rejected_writes_do_not_count_as_malformed(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        for index in range(15):
            result = await a.write(99, request_id=f"nf-{index}")
            assert result["error"]["code"] == "not_found"
        await a.send({"type": "get_snapshot", "date": DATE})
        await a.expect("snapshot")


@aio
async def test_oversized_frame_closes_1009(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_frame_bytes=1024) as server, client(server) as a:
        await a.send({"type": "get_snapshot", "date": DATE, "pad": "x" * 2000})
        with pytest.raises(ConnectionClosed):
            await a.recv()
        assert a.ws.close_code == 1009


@aio
async def test_token_missing_or_wrong_is_401_right_token_works(tmp_path: Path) -> None:
    async with running_server(tmp_path, token="s3cret") as server:
        for headers in (None, {"Authorization": "Bearer nope"}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401
        async with client(server, additional_headers={"Authorization": "Bearer s3cret"}) as a:
            assert (await a.subscribe())["recovered"] is False
        async with connect(server.url + "?token=s3cret") as ws:
            await ws.send(json.dumps({"type": "get_snapshot", "date": DATE}))
            assert json.loads(await ws.recv())["type"] == "snapshot"


@aio
async def test_other_paths_are_404(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{server.port}/other"):
                pass
        assert refused.value.response.status_code == 404
