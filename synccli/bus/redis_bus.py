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

Every node also announces itself on ``synccli:nodes`` (``presence``) and keeps its entry in
the ``synccli:members`` hash up to date. While every known node is heard the relay reads
nothing from the database (no poll while idle); it polls only while a peer is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from synccli.bus.presence import HEARTBEAT_S, Beat, Member, Presence
from synccli.clock import utc_now
from synccli.domain.values import Event, parse_iso_ms
from synccli.errors import InfrastructureError, ProtocolError

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "synccli:events:"
PATTERN = CHANNEL_PREFIX + "*"
#: Where nodes announce themselves, and the list of members with their last announcement.
BEATS = "synccli:nodes"
MEMBERS = "synccli:members"
#: A peer silent this long is taken for gone (one last relay pass, then forgotten).
FORGET_AFTER_S = 60.0
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

    def __init__(
        self,
        url: str,
        metrics: Counters,
        fast_poll_s: float,
        safety_poll_s: float,
        node_name: str | None = None,
    ):
        self.url = url
        self._metrics = metrics
        self._fast_poll_s = fast_poll_s
        self._safety_poll_s = safety_poll_s
        # Two pools, so that a subscription connection left broken by an outage is never
        # reused to publish.
        self._client = _client(url)
        self._sub_client = _client(url)
        self._pubsub: PubSub | None = None
        # Identifies this process's own messages, which it has already published locally.
        self._session = secrets.token_hex(6)
        self._node = self._session.encode()
        #: The name this node announces (its ``--node-name``, else its session): a restart
        #: under the same name tells the others at once that the old process is gone.
        self.name = node_name or self._session
        self._presence = Presence(self.name, DEAD_AFTER_S, FORGET_AFTER_S)
        #: How many times this node changed the log without publishing the change (a failed
        #: publish, a channel reset), announced in every beat.
        self._drops = 0
        self._beat_now = asyncio.Event()
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
            self._dropped(1)
            return
        self._queue.append(event)
        self._queued.set()

    def log_changed(self) -> None:
        self._drops += 1
        self._beat_now.set()

    async def run(self, on_event: OnEvent, on_change: OnChange) -> None:
        publisher = asyncio.create_task(self._publisher())
        heartbeat = asyncio.create_task(self._heartbeat())
        delay = RECONNECT_MIN_S
        try:
            while True:
                try:
                    if self._pubsub is None:
                        await self._subscribe()
                        delay = RECONNECT_MIN_S
                        self._mark(True, "", on_change)
                    await self._consume(on_event, on_change)
                except (*_LINK_ERRORS, LinkLost) as exc:
                    self._mark(False, str(exc) or type(exc).__name__, on_change)
                await self._drop_subscription()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
        finally:
            publisher.cancel()
            heartbeat.cancel()
            await asyncio.gather(publisher, heartbeat, return_exceptions=True)

    def status(self) -> BusStatus:
        return BusStatus(self.kind, self._up, self._detail)

    def poll_s(self) -> float | None:
        if not self._up:
            return self._fast_poll_s
        return self._safety_poll_s if self._presence.polling() else None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._up:
            # Goodbye, so that the others run one pass now and do not poll for a minute.
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S / 4):
                    await self._announce(leaving=True)
            except _LINK_ERRORS:
                log.debug("the goodbye on the bus failed", exc_info=True)
        await self._drop_subscription()
        await self._client.aclose()
        await self._sub_client.aclose()

    def _mark(self, up: bool, detail: str, on_change: OnChange | None = None) -> None:
        self._detail = detail
        self._metrics.bus_up = up
        if up == self._up:
            return
        self._up = up
        if not up:
            # What was heard before the outage says nothing now: the reconnect reads the
            # membership list again, and the relay runs a full pass.
            self._presence.forget_all()
            self._count_peers()
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
        await pubsub.subscribe(BEATS)
        # The confirmation proves the link works end to end.
        async with asyncio.timeout(DEAD_AFTER_S):
            while await pubsub.get_message(timeout=DEAD_AFTER_S) is None:
                pass
        await self._read_members()

    async def _read_members(self) -> None:
        """Learn the nodes that announced themselves before this subscription (one of them
        may be cut off from Redis right now, and writing); drop the long-gone ones."""
        raw = await self._client.hgetall(MEMBERS)
        now_ms = utc_now().timestamp() * 1000
        members: dict[str, Member] = {}
        gone: list[bytes | str] = []
        for key, value in raw.items():
            try:
                entry = json.loads(value)
                age = max(0.0, (now_ms - float(entry["at_ms"])) / 1000)
                member = Member(str(entry["session"]), int(entry["drops"]), age)
            except (ValueError, KeyError, TypeError):
                gone.append(key)
                continue
            if member.age_s >= FORGET_AFTER_S:
                gone.append(key)
            name = key.decode(errors="replace") if isinstance(key, bytes) else key
            members[name] = member
        if gone:
            await self._client.hdel(MEMBERS, *gone)
        self._presence.seed(members, asyncio.get_running_loop().time())
        self._count_peers()

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except _LINK_ERRORS:
                log.debug("closing a broken subscription failed", exc_info=True)

    async def _consume(self, on_event: OnEvent, on_change: OnChange) -> None:
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
            if self._presence.tick(now):
                self._count_peers()
                on_change()
            if message is not None:
                last_seen, pinged = now, False
                if message["type"] == "pmessage":
                    self._deliver(message["data"], on_event)
                elif message["type"] == "message":
                    self._beat(message["data"], now, on_change)
                continue
            if now - last_seen > DEAD_AFTER_S:
                raise LinkLost(f"no answer from Redis for {DEAD_AFTER_S:.0f} s")
            if not pinged:
                await pubsub.ping()
                pinged = True

    def _beat(self, data: bytes, now: float, on_change: OnChange) -> None:
        try:
            beat = Beat.decode(data)
        except ValueError:
            self._metrics.inc("bus_malformed_total")
            return
        if beat.node == self.name and beat.session != self._session:
            self._metrics.inc("bus_name_clashes_total")
            return  # another process under this node's name: a configuration error
        news = self._presence.heard(beat, now)
        self._count_peers()
        if news:
            on_change()

    def _count_peers(self) -> None:
        self._metrics.bus_peers = len(self._presence.peers())
        self._metrics.bus_peers_silent = len(self._presence.silent())

    def _dropped(self, count: int) -> None:
        self._metrics.inc("bus_dropped_total", count)
        self._drops += 1

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
                    self._dropped(count)
                    continue
                try:
                    await self._send(batch)
                    self._metrics.inc("bus_published_total", count)
                except _LINK_ERRORS as exc:
                    self._dropped(count)
                    self._detail = f"publish failed: {exc or type(exc).__name__}"
                    self._kick.set()

    async def _heartbeat(self) -> None:
        """Announce this node every ``HEARTBEAT_S`` while the link is up. A failed
        announcement drops the link like a failed publish."""
        while True:
            if self._up:
                try:
                    await self._announce()
                except _LINK_ERRORS as exc:
                    self._detail = f"announcing failed: {exc or type(exc).__name__}"
                    self._kick.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await self._beat_now.wait()
            self._beat_now.clear()

    async def _announce(self, leaving: bool = False) -> None:
        beat = Beat(self.name, self._session, self._drops, leaving)
        async with self._client.pipeline(transaction=False) as pipe:
            # A beat promises nothing about events still queued: each is published later,
            # or dropped, and a drop raises the count the next beat carries.
            pipe.publish(BEATS, beat.encode())
            if leaving:
                pipe.hdel(MEMBERS, self.name)
            else:
                entry = {
                    "session": self._session,
                    "drops": self._drops,
                    "at_ms": int(utc_now().timestamp() * 1000),
                }
                pipe.hset(MEMBERS, self.name, json.dumps(entry))
            await pipe.execute()

    async def _send(self, batch: list[Event]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for event in batch:
                payload = self._node + b"\n" + event.wire_json(False).encode()
                pipe.publish(CHANNEL_PREFIX + event.date, payload)
            await pipe.execute()
