"""The relay's wake-up: a gap reported while the relay is reading is not lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synccli.domain.channels import Channel
from synccli.store import Store
from tests.conftest import seconds
from tests.server.helpers import aio, client, running_server


class GatedHeads:
    """Delegates to a store; ``heads_of`` counts its calls and holds the first one until
    ``release`` is set (the relay is then busy reading)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def heads_of(self, dates: Iterable[str]) -> dict[str, Channel]:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(timeout=seconds(10))
        return self._store.heads_of(dates)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@aio
async def test_a_wake_during_a_relay_pass_runs_another_pass(tmp_path: Path) -> None:
    # A long poll interval: only a wake-up can start the next pass within the test.
    async with running_server(tmp_path, relay_poll_s=60.0) as server, client(server) as a:
        await a.subscribe()  # the relay polls only subscribed dates
        services = server.services
        assert services is not None
        gated = GatedHeads(services.store)
        services.store = gated  # type: ignore[assignment]
        services.relay_wake.set()
        assert await asyncio.to_thread(gated.entered.wait, seconds(5))
        services.relay_wake.set()  # e.g. a write published an event past a gap
        gated.release.set()
        async with asyncio.timeout(seconds(5)):
            while gated.calls < 2:
                await asyncio.sleep(0.01)
