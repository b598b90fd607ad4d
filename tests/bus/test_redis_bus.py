"""``RedisBus`` on its own, against a private redis-server: delivery, own messages skipped,
garbage counted and dropped, the link's state and poll period."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from synccli.bus.redis_bus import CHANNEL_PREFIX, RedisBus, redact_url
from synccli.domain.values import Event, Row
from synccli.server.metrics import Metrics
from tests.bus.helpers import redis, require_redis
from tests.conftest import seconds
from tests.server.helpers import DATE, aio


def event(seq: int) -> Event:
    row = Row(f"{DATE}-0001", DATE, "A. Patient", "Present", None, seq, "2026-11-26T10:00:00Z")
    return Event(DATE, "e1", seq, row, f"r{seq}", "2026-11-26T10:00:00.000Z")


@aio
async def test_a_node_hears_the_others_not_itself_and_drops_garbage(tmp_path: Path) -> None:
    require_redis()
    async with redis(tmp_path) as server:
        metrics_a, metrics_b = Metrics(), Metrics()
        a = RedisBus(server.url, metrics_a, 0.05, 7.0)
        b = RedisBus(server.url, metrics_b, 0.05, 7.0)
        heard_a: list[Event] = []
        heard_b: list[Event] = []
        changes: list[str] = []
        await a.start()
        await b.start()
        tasks = [
            asyncio.create_task(a.run(heard_a.append, lambda: changes.append("a"))),
            asyncio.create_task(b.run(heard_b.append, lambda: changes.append("b"))),
        ]
        raw = Redis.from_url(server.url)
        try:
            # Up, and no peer silent: the relay does not poll at all.
            assert a.status().up and a.poll_s() is None
            await raw.publish(CHANNEL_PREFIX + DATE, b"someone\n{not json")
            await raw.publish(CHANNEL_PREFIX + DATE, b"someone\n{}")
            a.publish(event(1))
            a.publish(event(2))
            async with asyncio.timeout(seconds(5)):
                while len(heard_b) < 2:
                    await asyncio.sleep(0.01)
            assert [e.seq for e in heard_b] == [1, 2]
            assert heard_b[0] == event(1)
            assert heard_a == []  # its own
            assert metrics_a.counts["bus_published_total"] == 2
            assert metrics_b.counts["bus_consumed_total"] == 2
            assert metrics_b.counts["bus_malformed_total"] == 2
            assert metrics_a.counts["bus_malformed_total"] == 2
            await server.stop()
            async with asyncio.timeout(seconds(10)):
                while a.status().up or b.status().up:
                    await asyncio.sleep(0.02)
            assert a.poll_s() == 0.05  # down: the relay polls fast again
            assert not metrics_a.bus_up
            a.publish(event(3))  # dropped, not queued for later
            async with asyncio.timeout(seconds(5)):
                while metrics_a.counts["bus_dropped_total"] < 1:
                    await asyncio.sleep(0.02)
            assert sorted(changes) == ["a", "b"]
        finally:
            await raw.aclose()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await a.close()
            await b.close()


def test_a_bus_url_is_shown_without_its_password() -> None:
    assert redact_url("redis://:s3cret@10.0.0.5:6380/2") == "redis://:***@10.0.0.5:6380/2"
    assert redact_url("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
