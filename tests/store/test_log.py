"""The log as a tool on SQLite and PostgreSQL: the audit columns of a write, the board
rebuilt at every sequence number against the rows the database had at that commit
(hypothesis over random write sequences), retention, and the migration from schema 1."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synccli.audit import check_head, earliest_seq, rebuild, seq_at
from synccli.audit.entries import LogLine
from synccli.domain.channels import WriteRequest
from synccli.domain.states import STATES
from synccli.domain.values import Row
from synccli.errors import ConfigError, DatabaseUnavailable, WriteRejected
from synccli.history import fast_json
from synccli.store.base import SCHEMA_VERSION
from synccli.store.dialect import TABLES, Dialect
from synccli.store.sql import SqlStore
from tests.store.backends import Backend
from tests.store.contract import DATE, NOW, appt

#: The events table of schema 1, as synccli before the audit trail created it.
V1_EVENTS = {
    "sqlite": (
        "CREATE TABLE events (date TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL, "
        "appointment_id TEXT NOT NULL, request_id TEXT NULL, payload TEXT NOT NULL, "
        "committed_at TEXT NOT NULL, PRIMARY KEY (date, seq))"
    ),
    "postgresql": (
        "CREATE TABLE events (date VARCHAR(10) NOT NULL, seq BIGINT NOT NULL, "
        "event_id VARCHAR(128) NOT NULL, appointment_id VARCHAR(128) NOT NULL, "
        "request_id VARCHAR(128) NULL, payload TEXT NOT NULL, committed_at VARCHAR(32) NOT NULL, "
        "PRIMARY KEY (date, seq))"
    ),
}
_OLD_COLUMNS = "date, seq, event_id, appointment_id, request_id, payload, committed_at"


# ------------------------------------------------------------------ the audit columns


def test_a_write_records_its_actor_request_and_prior_state(store: SqlStore) -> None:
    store.seed(DATE, 2)
    store.write(WriteRequest("r1", appt(1), "Present", actor="dr-who"), NOW)
    store.write(WriteRequest("r2", appt(1), "Seated"), NOW + timedelta(seconds=1))
    page = store.log_page(DATE, 0, 10)
    assert page.channel is not None and page.channel.head_seq == 2
    first, second = page.entries
    assert (first.seq, first.actor, first.request_id) == (1, "dr-who", "r1")
    assert (first.from_state, first.row.state, first.row.version) == ("Scheduled", "Present", 2)
    assert first.before is not None and first.before.state_time is None
    assert second.actor is None and second.before == first.row
    assert [e.seq for e in store.log_page(DATE, 1, 10).entries] == [2]
    assert store.log_page(DATE, 0, 10, appt(2)).entries == []


#: Text the database must escape as JSON exactly as Python reads it back.
AWKWARD = 'Zoë "Q" \\ \x01\t 日本 \u2028 😀'


@pytest.fixture(params=["msgspec", "json"])
def decoder(request: pytest.FixtureRequest) -> Iterator[str]:
    fast_json.use_stdlib(request.param == "json")
    yield request.param
    fast_json.use_stdlib(False)


@pytest.mark.parametrize("built_in_python", [False, True])
def test_the_lines_the_database_builds_are_the_entries_shown(
    store: SqlStore, backend: Backend, built_in_python: bool, decoder: str
) -> None:
    if built_in_python:  # as on SQL Server: no select_log_lines, lines built from entries
        store.dialect = dataclasses.replace(
            store.dialect, select_log_lines=None, select_log_lines_of=None
        )
    assert fast_json.DECODER in (decoder, "json")  # json: msgspec is not installed
    store.seed(DATE, 2)
    backend.raw("UPDATE appointments SET patient = ? WHERE appointment_id = ?", AWKWARD, appt(1))
    for i, state in enumerate(["Present", "Present", "Seated"]):
        request = WriteRequest(f"r{i}{AWKWARD}", appt(1 + i % 2), state, actor=AWKWARD * i or None)
        store.write(request, NOW + timedelta(seconds=i))
    page = store.log_lines(DATE, 0, 10)
    assert page.channel is not None and page.channel.head_seq == 3
    assert page.lines == [LogLine.of(e) for e in store.log_page(DATE, 0, 10).entries]
    first = page.lines[0]
    assert (first.patient, first.to_state, first.version, first.actor) == (
        AWKWARD,
        "Present",
        2,
        None,
    )
    assert [line.seq for line in store.log_lines(DATE, 1, 1).lines] == [2]
    assert [line.seq for line in store.log_lines(DATE, 0, 10, appt(1)).lines] == [1, 3]
    assert store.log_lines(DATE, 3, 10).lines == []
    assert store.log_lines(DATE, 0, 10, "nobody").lines == []
    assert store.log_lines("2031-01-01", 0, 10).channel is None


def test_log_reads_write_nothing_for_an_unknown_date(store: SqlStore, backend: Backend) -> None:
    assert store.log_page("2031-01-01", 0, 10).channel is None
    day = store.day_log("2031-01-01")
    assert (day.channel, day.rows, day.entries, day.head) == (None, [], [], 0)
    assert backend.raw("SELECT COUNT(*) FROM channels")[0][0] == 0
    assert store.appointment_date("2031-01-01-0001") is None


# ------------------------------------------------------------------ the board at any seq

_dates = (date(2030, 1, 1) + timedelta(days=n) for n in itertools.count())
_writes = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(STATES), st.sampled_from([None, "ann", "bob"])),
    max_size=25,
)


def _record_day(
    store: SqlStore, day: str, writes: list[tuple[int, str, str | None]]
) -> dict[int, list[Row]]:
    """Seed ``day``, apply ``writes`` (refused ones commit nothing); the stored rows after
    each commit, by sequence number (0: the seeded day)."""
    store.seed(day, 4)
    seen = {0: store.snapshot(day)[1]}
    for i, (number, state, actor) in enumerate(writes):
        request = WriteRequest(f"{day}-r{i}", appt(number, day), state, actor=actor)
        try:
            outcome = store.write(request, NOW + timedelta(seconds=i))
        except WriteRejected:
            continue
        seen[outcome.seq] = store.snapshot(day)[1]
    return seen


def _anonymous(writes: list[tuple[int, str]]) -> list[tuple[int, str, str | None]]:
    return [(number, state, None) for number, state in writes]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=_writes)
def test_the_board_at_every_seq_is_the_rows_at_that_commit(
    store: SqlStore, writes: list[tuple[int, str, str | None]]
) -> None:
    day = next(_dates).isoformat()
    seen = _record_day(store, day, writes)
    log = store.day_log(day)
    assert log.head == max(seen) and earliest_seq(log) == 0
    for seq, rows in seen.items():
        board = rebuild(log, seq)
        assert board.rows == rows, seq
        assert board.committed_at == (None if seq == 0 else log.entries[seq - 1].committed_at)
        # The database's pick of the deciding entries rebuilds the same board.
        picked = store.board_log(day, seq=seq)
        assert picked.at == seq and rebuild(picked, seq) == board, seq
        assert len(picked.entries) <= 3 * len(rows)
        if seq:
            moment = log.entries[seq - 1].committed_at
            by_time = store.board_log(day, moment=moment)
            assert by_time.at == seq_at(log, moment) == seq_at(by_time, moment)
    assert check_head(log) == []


def test_retention_limits_the_rebuild_to_what_is_kept(store: SqlStore) -> None:
    writes = [(1, "Present"), (2, "Cancelled"), (1, "Seated"), (3, "NoShow"), (1, "Dismissed")]
    seen = _record_day(store, DATE, _anonymous(writes))
    assert store.prune(NOW + timedelta(seconds=2)) == 2
    log = store.day_log(DATE)
    assert (log.min_seq, earliest_seq(log)) == (3, 2)
    for seq in range(2, 6):
        assert rebuild(log, seq).rows == seen[seq]
    with pytest.raises(ConfigError, match="from sequence 2 to 5, not 1; events up to 2 were"):
        rebuild(log, 1)
    with pytest.raises(ConfigError, match="not 6"):
        rebuild(log, 6)
    assert seq_at(log, "2026-11-26T10:15:33.500Z") == 4
    with pytest.raises(ConfigError, match="before the first event"):
        seq_at(log, "2026-11-26T10:15:31.000Z")
    for seq in range(2, 6):
        picked = store.board_log(DATE, seq=seq)
        assert earliest_seq(picked) == 2 and rebuild(picked, seq).rows == seen[seq]
    with pytest.raises(ConfigError, match="from sequence 2 to 5, not 1"):
        rebuild(store.board_log(DATE, seq=1), 1)
    early = store.board_log(DATE, moment="2026-11-26T10:15:31.000Z")
    assert early.at == -1
    with pytest.raises(ConfigError, match=r"before the first event \(2026-11-26T10:15:32"):
        seq_at(early, "2026-11-26T10:15:31.000Z")
    with pytest.raises(ValueError, match="decides the board at 3 only"):
        rebuild(store.board_log(DATE, seq=3), 4)
    with pytest.raises(ValueError, match="needs every entry"):
        check_head(store.board_log(DATE, seq=3))


def test_the_head_check_fails_when_the_rows_and_the_log_disagree(
    store: SqlStore, backend: Backend
) -> None:
    _record_day(store, DATE, _anonymous([(1, "Present"), (1, "Seated")]))
    assert check_head(store.day_log(DATE)) == []
    backend.raw("UPDATE appointments SET state = 'NoShow' WHERE appointment_id = ?", appt(1))
    assert check_head(store.day_log(DATE)) == [
        f"{appt(1)} is stored at version 3 (NoShow) but the log ends at version 3 (Seated)"
    ]
    backend.raw("UPDATE events SET from_state = 'Cancelled' WHERE seq = 2")
    problems = check_head(store.day_log(DATE))
    assert problems[0].startswith("event 2 of") and "Cancelled" in problems[0]


def test_db_status_reports_the_oldest_kept_event(store: SqlStore) -> None:
    _record_day(store, DATE, _anonymous([(1, "Present"), (2, "Present"), (3, "Present")]))
    store.prune(NOW + timedelta(seconds=1))
    (status,) = store.status()
    assert (status.pruned, status.events, status.oldest_kept) == (1, 2, "2026-11-26T10:15:31.123Z")


# ------------------------------------------------------------------ migration from schema 1


def _make_v1(backend: Backend) -> list[tuple[Any, ...]]:
    """A schema-1 database with a day of three committed events; the events as stored."""
    d, raw = backend.dialect, backend.raw
    for table in TABLES:
        ddl = d.table_ddl(table)
        for statement in (V1_EVENTS[d.name], ddl[1]) if table == "events" else ddl:
            raw(statement)
    raw("INSERT INTO schema_version (version) VALUES (1)")
    raw("INSERT INTO channels (date, epoch, head_seq, min_seq) VALUES (?, 'e1', 3, 1)", DATE)
    rows = {n: Row(appt(n), DATE, f"Patient {n}", "Scheduled", None, 1, "seed") for n in (1, 2)}
    for seq, (number, state) in enumerate([(1, "Present"), (2, "NoShow"), (1, "Seated")], 1):
        stamp = f"2026-11-26T09:00:0{seq}.000Z"
        old = rows[number]
        rows[number] = Row(
            old.appointment_id, DATE, old.patient, state, stamp, old.version + 1, stamp
        )
        raw(
            f"INSERT INTO events ({_OLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            DATE,
            seq,
            f"{DATE}:e1:{seq}",
            appt(number),
            f"v1-{seq}",
            json.dumps(rows[number].to_wire()),
            stamp,
        )
    for row in rows.values():
        raw(
            "INSERT INTO appointments (appointment_id, date, patient, state, state_time, version, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.appointment_id,
            DATE,
            row.patient,
            row.state,
            row.state_time,
            row.version,
            row.updated_at,
        )
    return raw(f"SELECT {_OLD_COLUMNS} FROM events ORDER BY seq")


def test_init_migrates_a_schema_1_database_keeping_every_event(backend: Backend) -> None:
    before = _make_v1(backend)
    store = backend.make_store()
    try:
        store.init_schema()
        store.init_schema()
        assert backend.raw("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        assert backend.raw(f"SELECT {_OLD_COLUMNS} FROM events ORDER BY seq") == before
        log = store.day_log(DATE)
        unknown = [(seq, None, None) for seq in (1, 2, 3)]
        assert [(e.seq, e.actor, e.before) for e in log.entries] == unknown
        # Schema-1 events do not know the row before them: the earliest board is after the
        # last appointment's first one.
        assert earliest_seq(log) == 2 and check_head(log) == []
        store.write(WriteRequest("v2-1", appt(2), "Present", actor="ann"), NOW)
        log = store.day_log(DATE)
        new = log.entries[-1]
        assert (new.seq, new.actor, new.from_state, new.before) == (
            4,
            "ann",
            "NoShow",
            log.entries[1].row,
        )
        assert rebuild(log, 4).rows == store.snapshot(DATE)[1]
        assert check_head(log) == []
    finally:
        store.close()


def test_a_failed_migration_leaves_schema_1(backend: Backend, monkeypatch: Any) -> None:
    _make_v1(backend)
    store = backend.make_store()
    # The last column fails after the others were added: all of it must roll back.
    broken = (*backend.dialect.add_event_columns[:-1], "ALTER TABLE events ADD COLUMN (")
    monkeypatch.setattr(store, "dialect", _replace(backend.dialect, add_event_columns=broken))
    try:
        with pytest.raises(DatabaseUnavailable):
            store.init_schema()
        assert backend.raw("SELECT version FROM schema_version") == [(1,)]
        assert len(backend.raw(f"SELECT {_OLD_COLUMNS} FROM events")) == 3
        with pytest.raises(Exception, match="actor"):
            backend.raw("SELECT actor FROM events")
    finally:
        store.close()


def _replace(dialect: Dialect, **changes: Any) -> Dialect:
    return dataclasses.replace(dialect, **changes)
