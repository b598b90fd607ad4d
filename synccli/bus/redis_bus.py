"""The Redis bus (redis-py asyncio): pub/sub, one channel per date.

The writing node publishes each committed event on ``synccli:events:<date>``; every node
pattern-subscribes to ``synccli:events:*`` and hands what it hears to its hub, which orders by
sequence number and asks the relay to fill any gap from the database. Pub/sub keeps nothing:
a message lost while a link is down, or while Redis restarts, is found again in the database
log (the bus going down or coming back wakes the relay for a full pass). See
docs/decisions.md for why pub/sub and not a stream.

Two connections: one publishes (a background task, batched in a pipeline, so a write never
waits for Redis), one subscribes. The subscriber pings when idle: no answer within
``DEAD_AFTER_S`` (a silent partition) counts as a lost link, like a reset. Reconnects back
off from 0.1 s to 1 s. While the link is down the node keeps serving, reports ``degraded``,
drops what it would publish, and its relay polls the database at the fast period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from synccli.bus.base import BusStatus, Counters, OnChange, OnEvent
from synccli.clock import utc_now
from synccli.domain.values import Event, parse_iso_ms
from synccli.errors import InfrastructureError, ProtocolError

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "synccli:events:"
PATTERN = CHANNEL_PREFIX + "*"
CONNECT_TIMEOUT_S = 2.0
#: Ping the subscription after this long without traffic.
KEEPALIVE_S = 0.5
#: No message and no pong for this long: the link is down.
DEAD_AFTER_S = 2.0
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 1.0
#: Events waiting to be published; past it new ones are dropped (the log has them).
PUBLISH_QUEUE = 10_000
PUBLISH_BATCH = 256

_LINK_ERRORS = (RedisError, OSError, TimeoutError)


def redact_url(url: str) -> str:
    """``url`` with its password (``redis://:PASSWORD@host``) shown as ``***``."""
    password = urlsplit(url).password
    return url if not password else url.replace(f":{password}@", ":***@", 1)


def _client(url: str) -> Redis:
    # No retries inside redis-py: a failed call means the link is down, and ``RedisBus``
    # decides what happens next (degrade, reconnect, catch up from the database).
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    return client


class LinkLost(Exception):
    """The subscription stopped answering, or a publish failed."""


class RedisBus:
    """A node's link to the others through one Redis."""

    kind = "redis"

    def __init__(self, url: str, metrics: Counters, fast_poll_s: float, safety_poll_s: float):
        self.url = url
        self._metrics = metrics
        self._fast_poll_s = fast_poll_s
        self._safety_poll_s = safety_poll_s
        # Two pools, so that a subscription connection left broken by an outage is never
        # reused to publish.
        self._client = _client(url)
        self._sub_client = _client(url)
        self._pubsub: PubSub | None = None
        # Identifies this node's own messages, which it has already published locally.
        self._node = secrets.token_hex(6).encode()
        self._queue: deque[Event] = deque()
        self._queued = asyncio.Event()
        self._kick = asyncio.Event()
        self._up = False
        self._detail = "not connected"
        self._closed = False

    async def start(self) -> None:
        """Subscribe once, so that an unreachable Redis fails the start."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S * 2):
                await self._subscribe()
        except _LINK_ERRORS as exc:
            await self.close()
            raise InfrastructureError(
                f"cannot reach the bus at {redact_url(self.url)} ({exc or type(exc).__name__}); "
                "start Redis there or change --bus"
            ) from None
        self._mark(True, "")

    def publish(self, event: Event) -> None:
        if len(self._queue) >= PUBLISH_QUEUE:
            self._metrics.inc("bus_dropped_total")
            return
        self._queue.append(event)
        self._queued.set()

    async def run(self, on_event: OnEvent, on_change: OnChange) -> None:
        publisher = asyncio.create_task(self._publisher())
        delay = RECONNECT_MIN_S
        try:
            while True:
                try:
                    if self._pubsub is None:
                        await self._subscribe()
                        delay = RECONNECT_MIN_S
                        self._mark(True, "", on_change)
                    await self._consume(on_event)
                except (*_LINK_ERRORS, LinkLost) as exc:
                    self._mark(False, str(exc) or type(exc).__name__, on_change)
                await self._drop_subscription()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    def status(self) -> BusStatus:
        return BusStatus(self.kind, self._up, self._detail)

    def poll_s(self) -> float:
        return self._safety_poll_s if self._up else self._fast_poll_s

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._drop_subscription()
        await self._client.aclose()
        await self._sub_client.aclose()

    def _mark(self, up: bool, detail: str, on_change: OnChange | None = None) -> None:
        self._detail = detail
        self._metrics.bus_up = up
        if up == self._up:
            return
        self._up = up
        if up:
            log.info("bus connected: %s", redact_url(self.url))
        else:
            log.warning("bus down (%s); serving from the database", detail)
        if on_change is not None:
            on_change()

    async def _subscribe(self) -> None:
        # A publish failure from before this subscription is old news.
        self._kick.clear()
        # The publishing connection is checked too: after a Redis restart it is stale, and
        # the first publish would otherwise fail and drop the link again.
        await self._client.ping()
        pubsub = self._sub_client.pubsub()
        self._pubsub = pubsub
        await pubsub.psubscribe(PATTERN)
        # The confirmation proves the link works end to end.
        async with asyncio.timeout(DEAD_AFTER_S):
            while await pubsub.get_message(timeout=DEAD_AFTER_S) is None:
                pass

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except _LINK_ERRORS:
                log.debug("closing a broken subscription failed", exc_info=True)

    async def _consume(self, on_event: OnEvent) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        pinged = False
        while True:
            if self._kick.is_set():
                self._kick.clear()
                raise LinkLost(self._detail or "a publish failed")
            message = await pubsub.get_message(timeout=KEEPALIVE_S)
            now = loop.time()
            if message is not None:
                last_seen, pinged = now, False
                if message["type"] == "pmessage":
                    self._deliver(message["data"], on_event)
                continue
            if now - last_seen > DEAD_AFTER_S:
                raise LinkLost(f"no answer from Redis for {DEAD_AFTER_S:.0f} s")
            if not pinged:
                await pubsub.ping()
                pinged = True

    def _deliver(self, data: bytes, on_event: OnEvent) -> None:
        node, _, body = data.partition(b"\n")
        if node == self._node:
            return
        try:
            event = Event.from_wire(json.loads(body))
        except (ValueError, ProtocolError):
            self._metrics.inc("bus_malformed_total")
            return
        self._metrics.inc("bus_consumed_total")
        lag = (utc_now() - parse_iso_ms(event.committed_at)).total_seconds()
        self._metrics.observe_bus_lag(max(lag, 0.0))
        on_event(event)

    async def _publisher(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                count = min(len(self._queue), PUBLISH_BATCH)
                batch = [self._queue.popleft() for _ in range(count)]
                if not self._up:
                    self._metrics.inc("bus_dropped_total", count)
                    continue
                try:
                    await self._send(batch)
                    self._metrics.inc("bus_published_total", count)
                except _LINK_ERRORS as exc:
                    self._metrics.inc("bus_dropped_total", count)
                    self._detail = f"publish failed: {exc or type(exc).__name__}"
                    self._kick.set()

    async def _send(self, batch: list[Event]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for event in batch:
                payload = self._node + b"\n" + event.wire_json(False).encode()
                pipe.publish(CHANNEL_PREFIX + event.date, payload)
            await pipe.execute()
