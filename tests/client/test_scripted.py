"""``SimulatedClient`` against a scripted server: a real websockets server on 127.0.0.1 that
plays a fixed script, for the cases a correct server rarely produces (duplicates, reorders,
gaps, resyncs) and for reconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from synccli.client.simulated import SimulatedClient
from synccli.domain.values import Event
from synccli.protocol.messages import MissedEvents, Subscribed
from tests.client.builders import DATE, EPOCH, RecordingSink, client_config, event, row
from tests.conftest import seconds

Script = Callable[["Peer"], Awaitable[None]]


class Received(list[dict[str, Any]]):
    """Every message the scripted server received, with a way to wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def add(self, message: dict[str, Any]) -> None:
        self.append(message)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[Received], bool]) -> None:
        async with asyncio.timeout(seconds(5)):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()


class Peer:
    """The server side of one scripted connection."""

    def __init__(self, ws: ServerConnection, log: Received) -> None:
        self.ws = ws
        self.log = log

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(seconds(5)):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        self.log.add(message)
        return message

    async def expect(self, kind: str) -> dict[str, Any]:
        """The next message of ``kind``, skipping acks (they come whenever)."""
        for _ in range(100):
            message = await self.recv()
            if message["type"] == kind:
                return message
            assert message["type"] == "ack", message
        raise AssertionError(f"no {kind}")

    async def send(self, *messages: Any) -> None:
        for message in messages:
            if isinstance(message, Event) or not isinstance(message, dict):
                message = message.to_wire()
            await self.ws.send(json.dumps(message))

    async def snapshot(self, seq: int = 0, epoch: str = EPOCH) -> None:
        await self.expect("subscribe")
        await self.send(Subscribed(DATE, epoch, seq, False, snapshot=[row("a1"), row("a2")]))

    async def hold(self) -> None:
        """Keep the connection open, logging what the client sends."""
        while True:
            await self.recv()


@asynccontextmanager
async def scripted(
    *scripts: Script, token: str | None = None
) -> AsyncIterator[tuple[str, Received]]:
    """A server that plays ``scripts[n]`` on its n-th connection (the last one repeats)."""
    log = Received()
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        script = scripts[min(connections, len(scripts) - 1)]
        connections += 1
        try:
            await script(Peer(ws, log))
        except Exception:
            # A client that went away (or a script that timed out) just ends the script;
            # the test's own assertions on the client side decide the outcome.
            return

    def check_token(ws: ServerConnection, request: Request) -> Response | None:
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return Response(401, "Unauthorized", Headers(), b"")
        return None

    async with serve(handler, "127.0.0.1", 0, process_request=check_token) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws", log


@asynccontextmanager
async def running(url: str, **kw: Any) -> AsyncIterator[tuple[SimulatedClient, RecordingSink]]:
    sink = RecordingSink()
    client = SimulatedClient(client_config("c001", url, seed=1, **kw), sink)
    client.start()
    try:
        yield client, sink
    finally:
        await client.close()


def applied_seqs(sink: RecordingSink) -> list[int]:
    return [r["seq"] for r in sink.of("apply")]


def has_applied(*seqs: int) -> Callable[[RecordingSink], bool]:
    return lambda sink: applied_seqs(sink)[-len(seqs) :] == list(seqs)


def acks(log: list[dict[str, Any]]) -> list[int]:
    return [m["sequenceNum"] for m in log if m["type"] == "ack"]


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds(20)):
            await test()

    asyncio.run(bounded())


def test_duplicates_are_applied_once_and_acked() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(event(1), event(2), event(1), event(2))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, log), running(url) as (_, sink):
            await sink.wait_for(lambda s: len(s.of("dup")) == 2, seconds(5))
            assert applied_seqs(sink) == [1, 2]
            await log.wait_for(lambda received: 2 in acks(received))
            assert all(m.get("epoch") == EPOCH for m in log if m["type"] == "ack")

    run(body)


def test_reordered_events_are_applied_in_order() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(event(1), event(3), event(2))
        request = await peer.expect("request_missed_events")
        assert request["lastSequenceNum"] == 1
        await peer.send(MissedEvents(DATE, EPOCH, 3, [event(2), event(3)]))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, log), running(url) as (_, sink):
            await sink.wait_for(has_applied(1, 2, 3), seconds(5))
            await sink.wait_for(lambda s: len(s.of("dup")) == 2, seconds(5))
            assert applied_seqs(sink) == [1, 2, 3]
            assert [m["type"] for m in log].count("request_missed_events") == 1

    run(body)


def test_gap_is_requested_once_and_filled() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(event(1), event(3), event(4))
        request = await peer.expect("request_missed_events")
        assert (request["lastSequenceNum"], request["epoch"]) == (1, EPOCH)
        await peer.send(MissedEvents(DATE, EPOCH, 4, [event(2), event(3), event(4)]))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, log), running(url) as (_, sink):
            await sink.wait_for(lambda s: bool(s.of("gap_recovered")), seconds(5))
            assert applied_seqs(sink) == [1, 2, 3, 4]
            assert sink.of("gap_recovered")[0]["seq"] == 4
            await log.wait_for(lambda received: 4 in acks(received))
            assert [m["type"] for m in log].count("request_missed_events") == 1

    run(body)


def test_unanswered_gap_request_is_repeated_after_the_timeout() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(event(2))
        await peer.expect("request_missed_events")
        await peer.expect("request_missed_events")
        await peer.send(MissedEvents(DATE, EPOCH, 2, [event(1), event(2)]))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, _), running(url, gap_timeout=0.2) as (_, sink):
            await sink.wait_for(has_applied(1, 2), seconds(5))

    run(body)


def test_missed_last_event_is_noticed_by_heartbeat() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(
            event(1), {"type": "heartbeat", "positions": {DATE: {"epoch": EPOCH, "sequenceNum": 2}}}
        )
        await peer.expect("request_missed_events")
        await peer.send(MissedEvents(DATE, EPOCH, 2, [event(2)]))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, _), running(url) as (_, sink):
            await sink.wait_for(has_applied(1, 2), seconds(5))

    run(body)


def test_resync_required_resubscribes_fresh_and_takes_the_new_epoch() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(
            event(1), {"type": "resync_required", "date": DATE, "reason": "epoch_changed"}
        )
        again = await peer.expect("subscribe")
        assert "since" not in again
        await peer.send(Subscribed(DATE, "e2", 5, False, snapshot=[row("a1", 9)]))
        await peer.send(event(6, epoch="e2", version=10))
        await peer.hold()

    async def body() -> None:
        async with scripted(script) as (url, _), running(url) as (client, sink):
            await sink.wait_for(
                lambda s: any(r["epoch"] == "e2" for r in s.of("apply")), seconds(5)
            )
            assert sink.of("resync") == [
                {"c": "c001", "k": "resync", "date": DATE, "reason": "epoch_changed"}
            ]
            channel = client.session.channels[DATE]
            assert (channel.epoch, channel.seq, channel.rows["a1"].version) == ("e2", 6, 10)

    run(body)


def test_closed_connection_reconnects_and_resumes_with_since() -> None:
    async def first(peer: Peer) -> None:
        await peer.snapshot()
        await peer.send(event(1), event(2))
        await peer.ws.close(4000, "ack retries exhausted")

    async def second(peer: Peer) -> None:
        subscribe = await peer.expect("subscribe")
        assert subscribe["since"] == {"epoch": EPOCH, "sequenceNum": 2}
        await peer.send(Subscribed(DATE, EPOCH, 3, True, events=[event(3)]))
        await peer.hold()

    async def body() -> None:
        async with scripted(first, second) as (url, _), running(url) as (_, sink):
            await sink.wait_for(has_applied(1, 2, 3), seconds(5))
            assert [r["code"] for r in sink.of("disconnect")] == [4000]
            assert [r["attempt"] for r in sink.of("connect")] == [1, 2]
            assert sink.of("subscribed")[-1]["recovered"] is True

    run(body)


def test_bearer_token_is_sent_and_refusal_is_recorded() -> None:
    async def script(peer: Peer) -> None:
        await peer.snapshot(seq=3)
        await peer.hold()

    async def body() -> None:
        async with scripted(script, token="s3cret") as (url, _):
            async with running(url, token="wrong", backoff_max=0.1) as (_, sink):
                await sink.wait_for(lambda s: len(s.of("connect_failed")) >= 2, seconds(5))
                assert sink.of("connect_failed")[0]["error"] == "HTTP 401"
                assert not sink.of("connect")
            async with running(url, token="s3cret") as (_, sink):
                await sink.wait_for(lambda s: bool(s.of("subscribed")), seconds(5))

    run(body)
