"""Runs ``Store`` calls off the event loop.

SQLite gets ONE database thread: every write serialises there anyway (one writer at a time),
and a single thread keeps commits, and so sequence numbers, in submission order. Server
databases (ODBC) get a small pool so a slow commit does not hold up reads; events that then
commit out of order are put back in order by the hub.

Every call is bounded by ``timeout``: a database that stops answering without closing the
connection (a silent network partition) would otherwise hold a request, and the relay that
reports the database's health, for as long as TCP keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from synccli.errors import DatabaseTimeout
from synccli.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class DbRunner:
    """A thread pool bound to one store; calls give up after ``timeout`` seconds."""

    def __init__(self, store: Store, threads: int | None = None, timeout: float = 15.0) -> None:
        self.store = store
        self.timeout = timeout
        if threads is None:
            threads = 1 if store.url.startswith("sqlite") else 4
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="synccli-db")

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in a database thread; ``DatabaseTimeout`` when it takes
        longer than ``timeout`` (a call still waiting for a thread is then never started; one
        already running cannot be stopped and may still complete)."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except TimeoutError:
            raise DatabaseTimeout(
                f"the database did not answer within {self.timeout:g} s"
            ) from None

    async def close(self) -> None:
        """Close the store in its thread, then stop the pool."""
        try:
            # A thread stuck on a silent database must not hold up shutdown.
            with contextlib.suppress(DatabaseTimeout):
                await self.run(self.store.close)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
