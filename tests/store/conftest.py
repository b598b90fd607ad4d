"""The log tests' fixtures: ``backend`` (a fresh SQLite file, then a fresh PostgreSQL schema),
``store`` (a store with its schema on that backend) and ``pg_database`` (one throwaway
PostgreSQL database per module). Modules with a store of their own (``test_sqlite``,
``test_odbc_postgres``) define their own ``store`` fixture, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synccli.store.sql import SqlStore
from tests.store.backends import KINDS, Backend, backend_of
from tests.store.pg import admin_connection, throwaway_database


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    admin_connection().close()
    with throwaway_database() as name:
        yield name


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backend_of(request, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[SqlStore]:
    opened = backend.make_store()
    opened.init_schema()
    yield opened
    opened.close()
