"""Shared frames and batched fan-out: the bytes websockets would send, built once per payload,
written once per connection per event-loop iteration."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.frames import Frame, Opcode

from synccli.clock import utc_now
from synccli.protocol.messages import UpdateAppointmentState
from synccli.server.framing import Fanout, FrameCache
from tests.server.helpers import DATE, aio, appt, client, running_server


def frame(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_frame_is_what_websockets_would_send_for_every_length() -> None:
    cache = FrameCache()
    for size in (0, 125, 126, 65535, 65536):  # the three header forms and their edges
        payload = b"x" * size
        assert cache.framed(payload) == frame(payload)


def test_frame_is_built_once_per_payload_object_until_cleared() -> None:
    cache = FrameCache()
    payload = b'{"type":"appointments_updated"}'
    first = cache.framed(payload)
    assert cache.framed(payload) is first
    other = bytes(bytearray(payload))  # equal, but another event's payload
    assert cache.framed(other) is not first
    assert cache.framed(other) == first
    cache.clear()
    assert cache.framed(payload) is not first


def test_joined_frames_keep_order_and_are_built_once_per_sequence() -> None:
    cache = FrameCache()
    a, b = b'{"seq":1}', b'{"seq":2}'
    joined = cache.joined([a, b])
    assert joined == frame(a) + frame(b)
    assert cache.joined([a, b]) is joined
    assert cache.joined([b, a]) == frame(b) + frame(a)
    assert cache.joined([a]) is cache.framed(a)


def test_fanout_runs_every_flush_once_at_the_next_iteration() -> None:
    async def scenario() -> list[str]:
        fanout, calls = Fanout(), []
        fanout.frames.framed(b"x")
        fanout.schedule(lambda: calls.append("a"))
        fanout.schedule(lambda: calls.append("b"))
        assert calls == []  # nothing runs before the current callback returns
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert fanout.frames._framed == {}  # frames do not outlive the flush
        return calls

    assert asyncio.run(scenario()) == ["a", "b"]


@aio
async def test_events_published_together_reach_a_subscriber_in_one_write(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path) as server, client(server) as a:
        services = server.services
        assert services is not None and server._server is not None
        subscribed = await a.subscribe()
        (ws,) = server._server.connections
        writes: list[bytes] = []
        write = ws.transport.write

        def spy(data: bytes | bytearray | memoryview) -> None:
            writes.append(bytes(data))
            write(data)

        ws.transport.write = spy  # type: ignore[method-assign]
        events = []
        for n in (1, 2):
            request = UpdateAppointmentState.parse(
                {
                    "type": "update_appointment_state",
                    "requestId": f"r{n}",
                    "appointmentId": appt(n),
                    "state": "Present",
                }
            )
            outcome = await services.db.run(services.store.write, request.to_request(), utc_now())
            events.append(outcome.event)
        for event in events:  # in one callback, as when several commits finish together
            assert event is not None
            services.publish(event)
        first = await a.expect("appointments_updated")
        second = await a.expect("appointments_updated")
        assert [first["sequenceNum"], second["sequenceNum"]] == [
            subscribed["sequenceNum"] + 1,
            subscribed["sequenceNum"] + 2,
        ]
        assert first["date"] == DATE
        assert len(writes) == 1
        assert services.metrics.counts["events_sent_total"] == 2
