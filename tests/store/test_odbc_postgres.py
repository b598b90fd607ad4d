"""The ODBC backend on the local PostgreSQL through psqlODBC: the contract suite, two writer
processes on one date, and a writer killed in the middle of a storm."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synccli.errors import DatabaseUnavailable
from synccli.store import open_store
from synccli.store.dialect import POSTGRESQL, ErrorKind
from synccli.store.odbc import OdbcStore
from synccli.store.sql import SqlStore
from tests.conftest import seconds
from tests.store.contract import DATE, NOW, Raw, StoreContract, update
from tests.store.pg import admin_connection, empty_schema, throwaway_database, url_of

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database() as name:
        yield name


@pytest.fixture
def admin(database: str) -> Iterator[Any]:
    conn = empty_schema(database)
    yield conn
    conn.close()


@pytest.fixture
def store(database: str, admin: Any) -> Iterator[SqlStore]:
    opened = open_store(url_of(database))
    assert isinstance(opened, OdbcStore)
    opened.init_schema()
    yield opened
    opened.close()


@pytest.fixture
def raw(admin: Any) -> Raw:
    def run(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in admin.execute(sql).fetchall()]

    return run


class TestPostgresContract(StoreContract):
    """The shared contract on PostgreSQL through pyodbc."""


def _writers(url: str, count: int, seeds: list[int]) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.writer", url, DATE, "4", str(count), str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]


def _assert_log_matches_rows(store: SqlStore, raw: Raw) -> list[int]:
    """Gap-free log; each appointment's events are one version step each, in log order, and
    the last one is the row as it stands: no event without its change and no change without
    its event. Returns the sequence numbers."""
    events = store.events_since(DATE, 0, 1_000_000)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, store.channel(DATE).head_seq + 1))
    assert int(raw("SELECT COUNT(*) FROM requests")[0][0]) == len(events)
    for row in store.snapshot(DATE)[1]:
        mine = [e.row for e in events if e.row.appointment_id == row.appointment_id]
        assert [r.version for r in mine] == list(range(2, row.version + 1))
        assert (mine[-1] if mine else row) == row
    return seqs


def test_two_processes_on_one_date_stay_gap_free(store: SqlStore, raw: Raw, database: str) -> None:
    store.seed(DATE, 4)
    writers = _writers(url_of(database), 60, [1, 2])
    printed: list[int] = []
    for writer in writers:
        out, _ = writer.communicate(timeout=seconds(60))
        assert writer.returncode == 0
        printed += [int(line) for line in out.split()]
    seqs = _assert_log_matches_rows(store, raw)
    assert sorted(printed) == seqs, "every acknowledged write is in the log exactly once"


def test_killing_a_writer_mid_storm_leaves_no_half_write(
    store: SqlStore, raw: Raw, database: str
) -> None:
    store.seed(DATE, 4)
    victim, survivor = _writers(url_of(database), 100_000, [3, 4])
    assert victim.stdout is not None
    acknowledged = []
    try:
        for line in victim.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 40:
                break
    finally:
        victim.send_signal(signal.SIGKILL)
        survivor.send_signal(signal.SIGKILL)
        victim.wait(timeout=seconds(10))
        survivor.wait(timeout=seconds(10))
    # A write is one statement: the server may still be running (and then commit) the one
    # a writer sent just before it died. Check the log once those sessions are gone.
    _wait_until_no_statement_runs(database)
    seqs = _assert_log_matches_rows(store, raw)
    assert set(acknowledged) <= set(seqs)


def _wait_until_no_statement_runs(database: str) -> None:
    """Return once no other session of ``database`` is running a statement (bounded)."""
    watcher = admin_connection(database)
    try:
        for _ in range(1000):
            running = watcher.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = ? "
                "AND state <> 'idle' AND pid <> pg_backend_pid()",
                database,
            ).fetchone()[0]
            if not running:
                return
            time.sleep(0.01)  # polling another session: there is no event to wait on
        raise AssertionError("a killed writer's statement is still running")
    finally:
        watcher.close()


def test_bad_credentials_and_unknown_database_are_one_clear_sentence(database: str) -> None:
    url = url_of("no_such_db_here").replace("postgres@", "postgres:hunter2@")
    store = open_store(url)
    with pytest.raises(DatabaseUnavailable) as caught:
        store.channel(DATE)
    message = str(caught.value)
    assert "hunter2" not in message and "no_such_db_here" in message
    assert "\n" not in message


def test_a_lost_connection_is_reopened_and_the_write_retried(
    store: SqlStore, raw: Raw, admin: Any, database: str
) -> None:
    store.seed(DATE, 1)
    store.channel(DATE)
    killed = admin.execute(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = ? AND pid <> pg_backend_pid()",
        database,
    ).fetchone()[0]
    assert killed >= 1
    outcome = store.write(update("after-loss", 1, "Present"), NOW)
    assert outcome.seq == 1 and outcome.event is not None
    assert int(raw("SELECT COUNT(*) FROM events")[0][0]) == 1


def test_a_real_deadlock_is_classified_as_transient(admin: Any, database: str) -> None:
    admin.execute("CREATE TABLE locks (id INT PRIMARY KEY, n INT)")
    admin.execute("INSERT INTO locks VALUES (1, 0), (2, 0)")
    first, second = admin_connection(database), admin_connection(database)
    errors: list[BaseException] = []

    def cross(conn: Any, a: int, b: int, ready: threading.Barrier) -> None:
        try:
            conn.execute("BEGIN")
            conn.execute("UPDATE locks SET n = n + 1 WHERE id = ?", a)
            ready.wait(timeout=seconds(10))
            conn.execute("UPDATE locks SET n = n + 1 WHERE id = ?", b)
        except Exception as exc:
            errors.append(exc)
        finally:
            conn.execute("ROLLBACK")

    ready = threading.Barrier(2)
    threads = [
        threading.Thread(target=cross, args=(first, 1, 2, ready)),
        threading.Thread(target=cross, args=(second, 2, 1, ready)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds(20))
    first.close()
    second.close()
    assert len(errors) == 1, errors
    assert POSTGRESQL.classify(errors[0]) is ErrorKind.TRANSIENT


def test_verify_catches_a_row_not_stored_as_written(store: SqlStore, raw: Raw, admin: Any) -> None:
    """The verify step checks the row the UPDATE returned: a trigger that rewrites it makes
    the write roll back instead of publishing an event that is not the stored row."""
    store.seed(DATE, 1)
    admin.execute(
        "CREATE FUNCTION tamper() RETURNS trigger AS $$ BEGIN NEW.state_time := 'tampered'; "
        "RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    admin.execute(
        "CREATE TRIGGER tamper BEFORE UPDATE ON appointments FOR EACH ROW EXECUTE FUNCTION tamper()"
    )
    with pytest.raises(DatabaseUnavailable, match="not stored as written"):
        store.write(update("tampered", 1, "Present"), NOW)
    assert raw("SELECT COUNT(*) FROM events")[0][0] == 0
    assert raw("SELECT COUNT(*) FROM requests")[0][0] == 0
    assert raw("SELECT state, version FROM appointments") == [("Scheduled", 1)]


def _wait_for_a_lock_waiter(database: str) -> None:
    """Return once a session of ``database`` waits for a lock (bounded)."""
    watcher = admin_connection(database)
    try:
        for _ in range(500):
            waiting = watcher.execute(
                "SELECT COUNT(*) FROM pg_stat_activity "
                "WHERE datname = ? AND wait_event_type = 'Lock'",
                database,
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.01)  # polling another session: there is no event to wait on
        raise AssertionError("the retry never waited for the row lock")
    finally:
        watcher.close()


def test_a_retry_racing_its_own_first_attempt_gets_the_stored_outcome(
    store: SqlStore, database: str
) -> None:
    """The first attempt holds the row lock when the retry (same request id) arrives; once the
    first commits, the retry must answer with its outcome, not ``invalid_transition``."""
    store.seed(DATE, 1)
    store.channel(DATE)
    retry_store = open_store(url_of(database))
    holding, release = threading.Event(), threading.Event()

    def hold(stage: str) -> None:
        if stage == "commit":
            holding.set()
            assert release.wait(timeout=seconds(10))

    store.hook = hold
    first = threading.Thread(target=store.write, args=(update("twice", 1, "Present"), NOW))
    first.start()
    try:
        assert holding.wait(timeout=seconds(10))
        outcomes: list[Any] = []
        retry = threading.Thread(
            target=lambda: outcomes.append(retry_store.write(update("twice", 1, "Present"), NOW))
        )
        retry.start()
        _wait_for_a_lock_waiter(database)
        release.set()  # the first attempt commits while the retry waits for the row
        first.join(timeout=seconds(10))
        retry.join(timeout=seconds(10))
    finally:
        release.set()
        store.hook = None
        retry_store.close()
    [outcome] = outcomes
    assert outcome.replayed and outcome.seq == 1 and outcome.event is None
