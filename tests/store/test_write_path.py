"""The write path in one round trip (PostgreSQL; SQL Server's batch is checked as T-SQL)
answers exactly as the step-by-step path does, writes exactly the same rows, writes nothing
when the database fails in the middle, and costs the round trips it claims. SQLite runs the
step-by-step path; the same cases hold it to the same answers and counts."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synccli.domain.channels import WriteRequest
from synccli.domain.values import Row
from synccli.errors import DatabaseUnavailable, WriteRejected
from synccli.store import open_store
from synccli.store.base import SCHEMA_VERSION
from synccli.store.dialect import POSTGRESQL
from synccli.store.sql import SqlStore
from synccli.store.sqlite import SqliteStore
from tests.store.backends import sqlite_backend
from tests.store.contract import DATE, NOW, appt
from tests.store.pg import empty_schema, throwaway_database, url_of

# A patient name that needs escaping in JSON (quotes, backslash, non-ASCII, a tab).
AWKWARD = 'Zoë "Z" O\'Brien \\ \t 北'


@dataclass
class Backend:
    name: str
    make_store: Callable[[], SqlStore]
    raw: Callable[..., list[tuple[Any, ...]]]
    #: A fresh, empty database (schema dropped).
    wipe: Callable[[], None]
    #: Statements that make every insert into ``requests`` fail (a trigger), and undo it.
    break_requests: tuple[str, ...]
    mend_requests: tuple[str, ...]


def _sqlite(tmp_path: Path) -> Iterator[Backend]:
    path = tmp_path / "write.db"
    raw = sqlite_backend(path).raw

    def wipe() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    yield Backend(
        "sqlite",
        lambda: SqliteStore(path),
        raw,
        wipe,
        (
            "CREATE TRIGGER boom BEFORE INSERT ON requests "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        ),
        ("DROP TRIGGER boom",),
    )


def _postgres() -> Iterator[Backend]:
    with throwaway_database() as database:
        admin = empty_schema(database)

        def raw(sql: str, *params: Any) -> list[tuple[Any, ...]]:
            cur = admin.execute(sql, *params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

        def wipe() -> None:
            admin.execute("DROP SCHEMA public CASCADE")
            admin.execute("CREATE SCHEMA public")

        def make() -> SqlStore:
            opened = open_store(url_of(database))
            assert isinstance(opened, SqlStore)
            return opened

        try:
            yield Backend(
                "postgresql",
                make,
                raw,
                wipe,
                (
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER boom BEFORE INSERT ON requests "
                    "FOR EACH ROW EXECUTE FUNCTION boom()",
                ),
                ("DROP TRIGGER boom ON requests", "DROP FUNCTION boom()"),
            )
        finally:
            admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    found = _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
    yield from found


#: The ways the write path can go, in order, on appointments 1 and 2 of DATE. Each is a
#: request and, for readability, what it should come to.
CASES: list[tuple[WriteRequest, str]] = [
    (WriteRequest("r1", appt(1), "Present", None, "ann"), "ok"),
    (WriteRequest("r2", appt(1), "Seated", 2), "ok (expected version)"),
    (WriteRequest("r3", appt(1), "Present", 2), "conflict (stale version)"),
    (WriteRequest("r4", appt(2), "Seated"), "invalid_transition"),
    (WriteRequest("r5", appt(2), "Bogus"), "invalid_state"),
    (WriteRequest("r6", appt(9999), "Present"), "not_found"),
    (WriteRequest("r1", appt(1), "Present", None, "ann"), "replayed"),
    (WriteRequest("r1", appt(2), "Present"), "request_id_reused"),
    (WriteRequest("r1", appt(9999), "Present"), "request_id_reused (no such appointment)"),
    (WriteRequest("r2", appt(1), "Seated"), "request_id_reused (no expected version)"),
    (WriteRequest("r3", appt(1), "Dismissed", 3), "ok (a rejected id is free)"),
    (WriteRequest("r7", appt(2), "Present", None, "bob"), "ok (awkward patient name)"),
    (WriteRequest("r7", appt(2), "Present", None, "bob"), "replayed (awkward patient name)"),
]


def _answers(store: SqlStore) -> list[tuple[object, ...]]:
    """Every case's answer as comparable values (the epoch only as "the channel's")."""
    answers: list[tuple[object, ...]] = []
    for request, _ in CASES:
        try:
            outcome = store.write(request, NOW)
        except WriteRejected as exc:
            answers.append(("rejected", exc.code, str(exc)))
            continue
        event = outcome.event
        if event is not None:
            assert event.epoch == store.channel(DATE).epoch
        described = None if event is None else (event.seq, event.row, event.action_id)
        answers.append(("ok", outcome.row, outcome.seq, outcome.replayed, described))
    return answers


def _stored(backend: Backend, epoch: str) -> tuple[object, ...]:
    """The events and request records as written, parsed, with the epoch named."""
    events = [
        (*row[:2], str(row[2]).replace(epoch, "EPOCH"), *row[3:5], json.loads(row[5]), *row[6:])
        for row in backend.raw(
            "SELECT date, seq, event_id, appointment_id, request_id, payload, committed_at, "
            "actor, from_state, from_state_time, from_updated_at FROM events ORDER BY seq"
        )
    ]
    requests = [
        (*row[:3], json.loads(row[3]), row[4])
        for row in backend.raw(
            "SELECT request_id, date, seq, result, created_at FROM requests ORDER BY request_id"
        )
    ]
    return events, requests


Run = tuple[list[tuple[object, ...]], list[Row], int, tuple[object, ...]]


def _run_cases(backend: Backend, one_round_trip: bool) -> Run:
    backend.wipe()
    store = backend.make_store()
    store.one_round_trip = one_round_trip
    try:
        store.init_schema()
        store.seed(DATE, 2)
        # Seeding stamps the rows with the clock: the same stamp in both runs.
        backend.raw("UPDATE appointments SET updated_at = 'seeded'")
        backend.raw(
            "UPDATE appointments SET patient = ? WHERE appointment_id = ?", AWKWARD, appt(2)
        )
        answers = _answers(store)
        channel, rows = store.snapshot(DATE)
        return answers, rows, channel.head_seq, _stored(backend, channel.epoch)
    finally:
        store.close()


def test_the_one_round_trip_write_answers_and_stores_as_the_steps_do(backend: Backend) -> None:
    steps = _run_cases(backend, one_round_trip=False)
    once = _run_cases(backend, one_round_trip=True)
    assert once == steps
    answers, rows, head, _ = once
    # Not vacuous: the cases come out as their labels say.
    kinds = [a[1] if a[0] == "rejected" else ("replayed" if a[3] else "ok") for a in answers]
    assert kinds == [
        "ok",
        "ok",
        "conflict",
        "invalid_transition",
        "invalid_state",
        "not_found",
        "replayed",
        "request_id_reused",
        "request_id_reused",
        "request_id_reused",
        "ok",
        "ok",
        "replayed",
    ]
    assert head == 4 and rows[1].patient == AWKWARD and rows[1].state == "Present"


def _footprint(backend: Backend) -> tuple[object, ...]:
    return tuple(
        backend.raw(sql)
        for sql in (
            "SELECT COUNT(*) FROM events",
            "SELECT COUNT(*) FROM requests",
            "SELECT date, epoch, head_seq, min_seq FROM channels ORDER BY date",
            "SELECT appointment_id, state, state_time, version, updated_at FROM appointments "
            "ORDER BY appointment_id",
        )
    )


@pytest.mark.parametrize("one_round_trip", [True, False], ids=["once", "steps"])
@pytest.mark.parametrize("first_write", [True, False], ids=["new-channel", "known-channel"])
def test_a_database_error_mid_write_writes_nothing(
    backend: Backend, one_round_trip: bool, first_write: bool
) -> None:
    """The last insert of the write fails (a trigger on ``requests``): the row update, the
    channel bump and the event before it must all be rolled back."""
    backend.wipe()
    store = backend.make_store()
    store.one_round_trip = one_round_trip
    try:
        store.init_schema()
        if first_write:
            # The appointment exists but its date has no channel yet: the write creates it.
            backend.raw(
                "INSERT INTO appointments (appointment_id, date, patient, state, state_time, "
                "version, updated_at) VALUES (?, ?, 'P', 'Scheduled', NULL, 1, 'seed')",
                appt(1),
                DATE,
            )
        else:
            store.seed(DATE, 1)
            store.write(WriteRequest("w0", appt(1), "Present"), NOW)
        before = _footprint(backend)
        for statement in backend.break_requests:
            backend.raw(statement)
        with pytest.raises(DatabaseUnavailable, match="injected failure"):
            store.write(
                WriteRequest("w1", appt(1), "Seated" if not first_write else "Present"), NOW
            )
        assert _footprint(backend) == before
        for statement in backend.mend_requests:
            backend.raw(statement)
        outcome = store.write(
            WriteRequest("w1", appt(1), "Seated" if not first_write else "Present"), NOW
        )
        assert outcome.seq == (1 if first_write else 2)
    finally:
        store.close()


class _Counting:
    """A connection whose cursors count the statements they execute (each is a round trip
    to a server database)."""

    def __init__(self, inner: Any, counter: itertools.count[int]) -> None:
        self._inner = inner
        self._counter = counter

    def cursor(self) -> Any:
        return _CountingCursor(self._inner.cursor(), self._counter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CountingCursor:
    def __init__(self, inner: Any, counter: itertools.count[int]) -> None:
        self._inner = inner
        self._counter = counter

    def execute(self, sql: str, *params: Any) -> Any:
        next(self._counter)
        return self._inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _counted(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[], object]], int]:
    """Make ``store`` (not used yet) count statements; returns ``trips(call)``: the
    statements ``call`` ran."""
    counter = itertools.count()
    plain = store._connect
    monkeypatch.setattr(store, "_connect", lambda: _Counting(plain(), counter))
    if isinstance(store, SqliteStore):
        monkeypatch.setattr(store, "in_transaction", lambda conn: bool(conn.in_transaction))

    def trips(call: Callable[[], object]) -> int:
        start = next(counter)
        with contextlib.suppress(WriteRejected):
            call()
        return next(counter) - start - 1

    return trips


def test_round_trips_per_write(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    backend.wipe()
    store = backend.make_store()
    trips = _counted(store, monkeypatch)
    try:
        store.init_schema()
        store.seed(DATE, 2)

        def write(request_id: str, number: int, state: str, expected: int | None = None) -> int:
            return trips(
                lambda: store.write(WriteRequest(request_id, appt(number), state, expected), NOW)
            )

        one = store.dialect.write_once is not None
        counts = {
            "ok": write("c1", 1, "Present"),
            "replayed": write("c1", 1, "Present"),
            "not_found": write("c2", 9999, "Present"),
            # A rejection looks the id up once more (a retry racing its own first attempt).
            "conflict": write("c3", 1, "Seated", expected=1),
            "invalid_transition": write("c4", 2, "Seated"),
        }
        store.one_round_trip = False
        counts["ok, step by step"] = write("c5", 1, "Seated")
        store.one_round_trip = True

        def hooked() -> int:
            store.hook = lambda stage: None
            try:
                return write("c6", 1, "Dismissed")
            finally:
                store.hook = None

        counts["ok, with a hook"] = hooked()
    finally:
        store.close()
    steps = {"ok": 7, "replayed": 3, "not_found": 4, "conflict": 4, "invalid_transition": 4}
    expected = (
        {"ok": 1, "replayed": 1, "not_found": 1, "conflict": 2, "invalid_transition": 2}
        if one
        else steps
    )
    # With a hook the one statement runs between BEGIN and COMMIT.
    assert counts == {**expected, "ok, step by step": 7, "ok, with a hook": 3 if one else 7}
    assert one == (backend.name == "postgresql")


@pytest.fixture
def postgres() -> Iterator[Backend]:
    yield from _postgres()


@pytest.mark.postgres
def test_db_init_adds_the_write_function_to_a_schema_2_database(postgres: Backend) -> None:
    backend = postgres
    store = backend.make_store()
    try:
        store.init_schema()
        store.seed(DATE, 1)
        # A schema-2 database: the tables, no function.
        backend.raw("DROP FUNCTION synccli_write")
        backend.raw("UPDATE schema_version SET version = 2")
        with pytest.raises(DatabaseUnavailable, match="db init"):
            store.write(WriteRequest("m1", appt(1), "Present"), NOW)
        assert backend.raw("SELECT COUNT(*) FROM events") == [(0,)]
        store.init_schema()
        store.init_schema()
        assert backend.raw("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        assert store.write(WriteRequest("m1", appt(1), "Present"), NOW).seq == 1
    finally:
        store.close()


def test_the_function_is_what_db_init_creates() -> None:
    assert SCHEMA_VERSION == 3
    assert POSTGRESQL.create_write_function is not None
    assert POSTGRESQL.create_write_function.startswith("CREATE OR REPLACE FUNCTION synccli_write(")
    assert POSTGRESQL.write_once is not None
    assert POSTGRESQL.write_once.startswith("SELECT * FROM synccli_write(")
