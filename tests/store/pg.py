"""A throwaway PostgreSQL database reached through psqlODBC, for the ODBC tests.

``throwaway_database()`` creates ``synccli_test_<random>`` on the local server and drops it
afterwards; without pyodbc, the driver or the server the calling test skips (fails in CI).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import require

HOST = "127.0.0.1"
PORT = 5432
DRIVER = "PostgreSQL Unicode"


def admin_connection(database: str = "postgres") -> Any:
    """An autocommit pyodbc connection, or a skip naming what is missing."""
    try:
        import pyodbc
    except ImportError as exc:
        require(False, f"pyodbc cannot be loaded: {exc}")
        raise
    require(DRIVER in pyodbc.drivers(), f"the ODBC driver {DRIVER!r} is not installed")
    try:
        return pyodbc.connect(
            f"DRIVER={{{DRIVER}}};SERVER={HOST};PORT={PORT};DATABASE={database};UID=postgres",
            autocommit=True,
            timeout=5,
        )
    except pyodbc.Error as exc:
        require(False, f"PostgreSQL on {HOST}:{PORT} is not reachable as postgres: {exc}")
        raise


def url_of(database: str) -> str:
    driver = DRIVER.replace(" ", "+")
    return f"postgresql+pyodbc://postgres@{HOST}:{PORT}/{database}?driver={driver}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create a fresh database, yield its name, drop it (and its sessions) at the end."""
    admin = admin_connection()
    name = f"synccli_test_{random.Random().getrandbits(48):012x}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?", name
        )
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def empty_schema(database: str) -> Any:
    """An admin connection to ``database`` after its ``public`` schema was emptied."""
    conn = admin_connection(database)
    conn.execute("DROP SCHEMA public CASCADE")
    conn.execute("CREATE SCHEMA public")
    return conn
