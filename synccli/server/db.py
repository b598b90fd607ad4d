"""Runs ``Store`` calls off the event loop.

SQLite gets ONE database thread: every write serialises there anyway (one writer at a time),
and a single thread keeps commits, and so sequence numbers, in submission order. Server
databases (ODBC) get a small pool so a slow commit does not hold up reads; events that then
commit out of order are put back in order by the hub.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from synccli.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class DbRunner:
    """A thread pool bound to one store."""

    def __init__(self, store: Store, threads: int | None = None) -> None:
        self.store = store
        if threads is None:
            threads = 1 if store.url.startswith("sqlite") else 4
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="synccli-db")

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in a database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    async def close(self) -> None:
        """Close the store in its thread, then stop the pool."""
        try:
            await self.run(self.store.close)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
