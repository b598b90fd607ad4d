"""The relay: catches this node's hub up with the database log (guarantee 9).

One task. Each pass reads ``store.heads_of`` the subscribed dates and, for every channel the
hub is behind on, reads the missing events from the log and publishes them in order; it
turns an epoch change into ``resync_required``. A pass runs when woken (a gap the hub saw,
the bus going down or coming back, a peer node falling silent or heard again) or after the
bus's poll period: 50 ms with no bus (the only way to notice other processes' writes), the
slow safety poll while a bus is up but some peer is silent, and none at all while every
peer is heard (``synccli.bus.presence``). The last pass's result is the database's health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from synccli.bus.base import RelayHost
from synccli.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


class Relay:
    """The catch-up task of one server."""

    def __init__(self, host: RelayHost) -> None:
        self.s = host

    async def run(self) -> None:
        """Pass, wait for a wake-up or the poll period, repeat until cancelled."""
        s = self.s
        while True:
            # Cleared before the pass, not after: a wake-up (a gap) reported while the pass
            # reads the database must start the next pass at once, not wait for the poll.
            s.relay_wake.clear()
            try:
                await self.pass_once()
                s.metrics.db_up = True
            except DatabaseUnavailable as exc:
                if s.metrics.db_up:
                    log.warning("database unavailable: %s", exc)
                s.metrics.db_up = False
                s.metrics.inc("db_errors_total")
            except Exception:
                log.exception("relay error")
                s.metrics.inc("internal_errors_total")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.bus.poll_s()):
                    await s.relay_wake.wait()

    async def pass_once(self) -> None:
        """Align every known channel with the database's head."""
        s = self.s
        # Only subscribed dates: a channel nobody here listens to costs nothing, and is
        # read again (``Hub.known``) when somebody subscribes.
        dates = s.hub.subscribed_dates()
        if not dates:
            return
        s.metrics.inc("relay_db_queries_total")
        heads = await s.read_heads(dates)
        for date in dates:
            durable = heads.get(date)
            if durable is None:
                continue
            if not s.hub.sync(durable):
                continue
            if not s.hub.has_subscribers(date):
                s.hub.fast_forward(durable)
                continue
            await self._catch_up(date, durable.epoch, durable.head_seq)

    async def _catch_up(self, date: str, epoch: str, target: int) -> None:
        s = self.s
        batch = s.config.max_replay
        s.metrics.inc("db_gap_fills_total")
        for _ in range(1 + target // batch):
            head = s.hub.head(date)
            position = s.hub.position(date)
            if head is None or position is None or position.epoch != epoch or head >= target:
                return
            s.metrics.inc("relay_db_queries_total")
            events = await s.read_events(date, head, min(batch, target - head))
            if not events:
                return
            for event in events:
                s.publish(event)
            s.metrics.inc("events_relayed_total", (s.hub.head(date) or 0) - head)
