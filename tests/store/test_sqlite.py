"""The SQLite backend: the contract suite, durability across a SIGKILL, file errors."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synccli.domain.channels import WriteRequest
from synccli.domain.states import allowed_targets
from synccli.errors import ConfigError, DatabaseUnavailable, TransientDatabaseError
from synccli.store import open_store
from synccli.store.dialect import SQLITE
from synccli.store.pool import Connection
from synccli.store.sql import ATTEMPTS
from synccli.store.sqlite import WAL_AUTOCHECKPOINT_PAGES, SqliteStore
from tests.conftest import seconds
from tests.store.contract import DATE, NOW, Raw, StoreContract, appt, update

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sync.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore.from_url(f"sqlite:///{db_path}")
    opened.init_schema()
    yield opened
    opened.close()


@pytest.fixture
def raw(db_path: Path) -> Iterator[Raw]:
    conn = sqlite3.connect(db_path)

    def run(sql: str) -> list[tuple[Any, ...]]:
        return conn.execute(sql).fetchall()

    yield run
    conn.close()


class TestSqliteContract(StoreContract):
    """The shared contract on a SQLite file."""


def test_open_store_picks_sqlite_and_uses_wal(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}")
    try:
        assert isinstance(store, SqliteStore)
        store.init_schema()
        mode = sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        # Durability stays FULL (2); only the checkpoint interval is longer than SQLite's.
        conn = store.connect()
        try:
            cur = conn.cursor()
            assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2
            pages = cur.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            assert pages == WAL_AUTOCHECKPOINT_PAGES > 1000
        finally:
            conn.close()
    finally:
        store.close()


def test_missing_folder_is_named_in_the_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nope" / "sync.db")
    with pytest.raises(DatabaseUnavailable, match="nope"):
        store.init_schema()


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-db.db"
    bogus.write_bytes(b"this is not a database" * 100)
    store = SqliteStore(bogus)
    with pytest.raises(DatabaseUnavailable, match=r"not-a-db\.db"):
        store.init_schema()
    store.close()


def test_missing_schema_says_run_db_init(db_path: Path) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(DatabaseUnavailable, match="db init"):
        store.channel(DATE)
    store.close()


def test_memory_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="memory"):
        SqliteStore.from_url("sqlite:///:memory:")


def test_two_stores_on_one_file_share_the_log(store: SqliteStore, db_path: Path) -> None:
    other = SqliteStore(db_path)
    try:
        store.seed(DATE, 2)
        store.write(update("a", 1, "Present"), NOW)
        assert other.write(update("b", 2, "Present"), NOW).seq == 2
        assert [e.seq for e in store.events_since(DATE, 0, 10)] == [1, 2]
    finally:
        other.close()


def test_committed_writes_survive_sigkill(store: SqliteStore, db_path: Path) -> None:
    store.seed(DATE, 5)
    store.close()
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.store.writer", f"sqlite:///{db_path}", DATE, "5", "100000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged: list[int] = []
    try:
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 200:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=seconds(10))
    assert len(acknowledged) == 200
    reopened = SqliteStore(db_path)
    try:
        events = reopened.events_since(DATE, 0, 1_000_000)
        head = reopened.channel(DATE).head_seq
        assert [e.seq for e in events] == list(range(1, head + 1))
        assert set(acknowledged) <= {e.seq for e in events}
        latest = {e.row.appointment_id: e.row for e in events}
        rows = {r.appointment_id: r for r in reopened.snapshot(DATE)[1]}
        assert all(rows[key] == row for key, row in latest.items())
        row = rows[appt(1)]
        after = WriteRequest("after-kill", row.appointment_id, allowed_targets(row.state)[0])
        assert reopened.write(after, NOW).seq == head + 1
    finally:
        reopened.close()


class _FlakyCursor:
    """A cursor that fails the channel bump with SQLite's busy error ``failures`` times."""

    def __init__(self, inner: sqlite3.Cursor, budget: list[int]) -> None:
        self.inner = inner
        self.budget = budget

    def execute(self, sql: str, *params: Any) -> Any:
        if sql == SQLITE.bump_channel and self.budget[0] > 0:
            self.budget[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return self.inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _FlakyConnection:
    def __init__(self, inner: sqlite3.Connection, budget: list[int]) -> None:
        self.inner = inner
        self.budget = budget

    def cursor(self) -> Any:
        return _FlakyCursor(self.inner.cursor(), self.budget)

    def close(self) -> None:
        self.inner.close()


class _FlakyStore(SqliteStore):
    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.budget = [failures]

    def _open(self) -> Connection:
        inner = super()._open()
        assert isinstance(inner, sqlite3.Connection)
        return _FlakyConnection(inner, self.budget)

    def in_transaction(self, conn: Connection) -> bool:
        return isinstance(conn, _FlakyConnection) and conn.inner.in_transaction


def test_transient_errors_are_retried_inside_write(store: SqliteStore, db_path: Path) -> None:
    store.seed(DATE, 1)
    flaky = _FlakyStore(db_path, failures=ATTEMPTS - 1)
    try:
        outcome = flaky.write(update("r1", 1, "Present"), NOW)
        assert outcome.seq == 1 and flaky.budget == [0]
        assert [e.seq for e in store.events_since(DATE, 0, 10)] == [1]
    finally:
        flaky.close()


def test_transient_errors_give_up_after_the_bound_and_write_nothing(
    store: SqliteStore, db_path: Path, raw: Raw
) -> None:
    store.seed(DATE, 1)
    flaky = _FlakyStore(db_path, failures=ATTEMPTS)
    try:
        with pytest.raises(TransientDatabaseError, match="busy"):
            flaky.write(update("r1", 1, "Present"), NOW)
    finally:
        flaky.close()
    assert raw("SELECT COUNT(*) FROM events")[0][0] == 0
    assert raw("SELECT COUNT(*) FROM requests")[0][0] == 0
    assert store.snapshot(DATE)[1][0].version == 1
