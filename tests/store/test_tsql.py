"""Every statement the SQL Server dialect can issue is valid T-SQL (parsed by sqlglot).

The statements come from ``Dialect.statements()``; a recording run on SQLite proves the
engine executes nothing else, so a new statement cannot skip this check.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from synccli.clock import utc_now
from synccli.store.dialect import DIALECTS, MSSQL, POSTGRESQL, SQLITE, TABLES, Dialect
from synccli.store.pool import Connection
from synccli.store.sqlite import SqliteStore
from synccli.store.write_sql import WRITE_PARAMS
from tests.store.contract import DATE, NOW, update


def parse_tsql(sql: str) -> None:
    """Parse ``sql`` strictly: a statement sqlglot only keeps as an opaque command fails."""
    statements = [s for s in sqlglot.parse(sql, read="tsql") if s is not None]
    assert statements, f"no statement in {sql!r}"
    for statement in statements:
        assert not isinstance(statement, exp.Command), f"not understood as T-SQL: {sql!r}"


@pytest.mark.parametrize(("name", "sql"), sorted(MSSQL.statements().items()))
def test_every_mssql_statement_parses_as_tsql(name: str, sql: str) -> None:
    parse_tsql(sql)


@pytest.mark.parametrize(
    "broken",
    [
        "SELEC appointment_id FROM appointments",
        "UPDATE channels SET head_seq = WHERE date = ?",
        "SELECT (1 FROM channels",
        "ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON",
    ],
)
def test_the_check_fails_on_a_broken_statement(broken: str) -> None:
    with pytest.raises((sqlglot.errors.ParseError, AssertionError)):
        parse_tsql(broken)


@pytest.mark.parametrize("dialect", list(DIALECTS.values()), ids=list(DIALECTS))
def test_each_statement_takes_the_same_parameters_everywhere(dialect: Dialect) -> None:
    # SQLite has no one-round-trip write: those statements are held to their parameter list.
    reference = {**SQLITE.statements(), "write_once": "?" * len(WRITE_PARAMS)}
    reference["write_in_tx"] = reference["write_once"]
    reference["create_write_function"] = ""
    for name, sql in dialect.statements().items():
        assert sql.count("?") == reference[name].count("?"), name


def test_the_one_round_trip_write_exists_where_the_network_is() -> None:
    assert SQLITE.write_once is None
    for dialect in (POSTGRESQL, MSSQL):
        assert dialect.write_once is not None and dialect.write_in_tx is not None
    # One batch on SQL Server: its own transaction around the body, the answer after COMMIT.
    assert MSSQL.write_once is not None and MSSQL.write_in_tx is not None
    assert MSSQL.write_once.startswith(MSSQL.begin_write)
    assert "COMMIT TRANSACTION" in MSSQL.write_once
    assert "COMMIT" not in MSSQL.write_in_tx and "BEGIN" not in MSSQL.write_in_tx


class _Recording:
    """A connection whose cursors record every statement they execute."""

    def __init__(self, inner: sqlite3.Connection, seen: list[str]) -> None:
        self.inner = inner
        self.seen = seen

    def cursor(self) -> Any:
        return _RecordingCursor(self.inner.cursor(), self.seen)

    def close(self) -> None:
        self.inner.close()

    @property
    def in_transaction(self) -> bool:
        return self.inner.in_transaction


class _RecordingCursor:
    def __init__(self, inner: sqlite3.Cursor, seen: list[str]) -> None:
        self.inner = inner
        self.seen = seen

    def execute(self, sql: str, *params: Any) -> Any:
        self.seen.append(sql)
        return self.inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _RecordingStore(SqliteStore):
    def __init__(self, path: Path, seen: list[str]) -> None:
        super().__init__(path)
        self.seen = seen

    def _open(self) -> Connection:
        inner = super()._open()
        assert isinstance(inner, sqlite3.Connection)
        return _Recording(inner, self.seen)

    def in_transaction(self, conn: Connection) -> bool:
        return isinstance(conn, _Recording) and conn.in_transaction


def test_the_engine_runs_only_dialect_statements(tmp_path: Path) -> None:
    seen: list[str] = []
    store = _RecordingStore(tmp_path / "rec.db", seen)
    store.init_schema()
    store.seed(DATE, 2)
    store.write(update("r1", 1, "Present"), NOW)
    store.write(update("r1", 1, "Present"), NOW)
    store.events_since(DATE, 0, 10)
    store.snapshot(DATE)
    store.snapshot("2030-01-01")
    store.heads()
    store.status()
    store.prune(utc_now())
    store.reset_channel(DATE)
    store.close()
    known = set(SQLITE.statements().values())
    assert set(seen) <= known
    # The run covers the write path, so the check above is not vacuous.
    assert {SQLITE.bump_channel, SQLITE.insert_event, SQLITE.lock_channels} <= set(seen)


def test_docs_show_the_schema_exactly_as_created() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sqlserver.md").read_text()
    for table in TABLES:
        for statement in MSSQL.table_ddl(table):
            assert f"{statement};\n" in doc, statement
