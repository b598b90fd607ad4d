"""A fresh, empty SQLite file or PostgreSQL schema for the log tests, with a way to run raw
statements beside the store (``backend_of``; PostgreSQL needs ``throwaway_database``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synccli.store import open_store
from synccli.store.dialect import POSTGRESQL, SQLITE, Dialect
from synccli.store.sql import SqlStore
from tests.store.pg import empty_schema, url_of

Raw = Callable[..., list[tuple[Any, ...]]]

#: The ``backend`` fixture's parameters: SQLite, and PostgreSQL marked ``postgres``.
KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Backend:
    """A fresh, empty database of one kind: ``make_store`` opens a store on it, ``raw``
    runs one statement on a separate autocommit connection."""

    def __init__(self, dialect: Dialect, url: str, raw: Raw) -> None:
        self.dialect, self.url, self.raw = dialect, url, raw

    def make_store(self) -> SqlStore:
        store = open_store(self.url)
        assert isinstance(store, SqlStore)
        return store


def sqlite_backend(path: Path) -> Backend:
    def raw(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    return Backend(SQLITE, f"sqlite:///{path}", raw)


def pg_backend(database: str) -> Iterator[Backend]:
    admin = empty_schema(database)

    def raw(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = admin.execute(sql, *params)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    yield Backend(POSTGRESQL, url_of(database), raw)
    admin.close()


def backend_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backend a ``KINDS``-parametrised fixture asks for (PostgreSQL in the module's
    ``pg_database``)."""
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path / "log.db")
    else:
        yield from pg_backend(request.getfixturevalue("pg_database"))
