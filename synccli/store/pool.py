"""One DB-API connection per thread, opened on first use and closed together.

The server calls the store from worker threads; DB-API connections are not safe to share,
so each thread keeps its own (``threading.local``). A connection that can no longer be
trusted (lost server, failed rollback) is dropped and the next use opens a fresh one.

A connection is never closed while another thread is using it (closing a pyodbc connection
under a running statement crashes the process): ``close`` closes the idle ones at once, and
a connection that is ``acquire``d at that moment is closed by its own thread on ``release``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Protocol

from synccli.errors import DatabaseUnavailable


class Cursor(Protocol):
    """The part of a DB-API cursor the engine uses."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def execute(self, sql: str, *params: Any) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """The part of a DB-API connection the engine uses."""

    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class ConnectionPool:
    """Per-thread connections made by ``open``; ``name`` appears in errors."""

    def __init__(self, open_: Callable[[], Connection], name: str) -> None:
        self._open = open_
        self._name = name
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._busy: set[int] = set()
        self._closed = False

    def get(self) -> Connection:
        """This thread's connection, opened on first use."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise DatabaseUnavailable(f"the store for {self._name} is closed")
        conn = self._open()
        with self._lock:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    def acquire(self) -> Connection:
        """This thread's connection, marked in use until ``release``."""
        conn = self.get()
        with self._lock:
            self._busy.add(id(conn))
        return conn

    def release(self, conn: Connection) -> None:
        """End a use begun by ``acquire``; closes the connection if the pool closed meanwhile."""
        with self._lock:
            self._busy.discard(id(conn))
            late = self._closed and conn in self._connections
            if late:
                self._connections.remove(conn)
        if late:
            self._local.conn = None
            with contextlib.suppress(Exception):
                conn.close()

    def drop(self, conn: Connection) -> None:
        """Forget a connection that can no longer be trusted; the next use reopens."""
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        # The connection is already broken; closing it is best effort.
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close every thread's connection; idempotent. Later ``get`` calls raise."""
        with self._lock:
            self._closed = True
            idle = [c for c in self._connections if id(c) not in self._busy]
            self._connections = [c for c in self._connections if id(c) in self._busy]
        for conn in idle:
            # A dead connection must not make shutdown fail.
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
