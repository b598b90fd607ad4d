"""Per-thread connections: one per thread, reused, dropped on demand, all closed at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from synccli.errors import DatabaseUnavailable
from synccli.store.pool import Connection, ConnectionPool


class _Fake:
    def __init__(self) -> None:
        self.closed = False

    def cursor(self) -> Any:
        raise AssertionError("not used here")

    def close(self) -> None:
        self.closed = True


def test_each_thread_gets_its_own_connection_and_close_closes_all() -> None:
    made: list[_Fake] = []

    def open_() -> Connection:
        made.append(_Fake())
        return made[-1]

    pool = ConnectionPool(open_, "fake://db")
    mine = pool.get()
    assert pool.get() is mine
    seen: list[Connection] = []
    thread = threading.Thread(target=lambda: seen.append(pool.get()))
    thread.start()
    thread.join(timeout=10)
    assert seen and seen[0] is not mine and len(made) == 2
    pool.close()
    pool.close()
    assert all(conn.closed for conn in made)
    with pytest.raises(DatabaseUnavailable, match=r"fake://db is closed"):
        pool.get()


def test_a_dropped_connection_is_closed_and_replaced() -> None:
    made: list[_Fake] = []

    def open_() -> Connection:
        made.append(_Fake())
        return made[-1]

    pool = ConnectionPool(open_, "fake://db")
    first = pool.get()
    pool.drop(first)
    assert made[0].closed
    assert pool.get() is not first
    pool.close()
    assert made[1].closed


def test_close_never_closes_a_connection_another_thread_is_using() -> None:
    made: list[_Fake] = []

    def open_() -> Connection:
        made.append(_Fake())
        return made[-1]

    pool = ConnectionPool(open_, "fake://db")
    idle = pool.get()
    in_use = threading.Event()
    closed = threading.Event()
    seen: list[bool] = []

    def worker() -> None:
        conn = pool.acquire()
        in_use.set()
        closed.wait(timeout=10)
        seen.append(made[1].closed)  # still open while this thread uses it
        pool.release(conn)

    thread = threading.Thread(target=worker)
    thread.start()
    assert in_use.wait(timeout=10)
    pool.close()
    assert made[0] is idle and idle.closed
    closed.set()
    thread.join(timeout=10)
    assert seen == [False]
    assert made[1].closed  # closed by its own thread on release
